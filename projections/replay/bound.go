package replay

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/atlas-mmm/atlas/projections"
)

// Spec is one end of a replay range as given on the command line (see ParseSpec).
type Spec struct {
	Raw     string
	Time    time.Time
	All     *int64                   // one offset for every partition of every topic
	Offsets map[int]int64            // partition → offset, in every topic
	Topics  map[string]map[int]int64 // topic → partition → offset
}

// ParseSpec reads --from or --to:
//
//	""                         the start of the log (--from) or its end when the replay starts (--to)
//	2025-06-01T00:00:00Z       an RFC 3339 time: the first message accepted at or after it
//	1200                       offset 1200 in every partition of every topic
//	0:120,1:98                 offsets by partition, in every topic (other partitions: unbounded)
//	atlas.results/0:120,...    offsets of one topic's partitions (they win over the forms above)
//
// Items of the offset forms can be mixed, comma-separated; a time stands alone.
// Offsets are the log's own: Kafka offsets, or JetStream stream sequences.
func ParseSpec(s string) (Spec, error) {
	spec := Spec{Raw: strings.TrimSpace(s)}
	if spec.Raw == "" {
		return spec, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, spec.Raw); err == nil {
		spec.Time = t.UTC()
		return spec, nil
	}
	for item := range strings.SplitSeq(spec.Raw, ",") {
		item = strings.TrimSpace(item)
		topic := ""
		if i := strings.LastIndex(item, "/"); i >= 0 {
			topic, item = item[:i], item[i+1:]
			if topic == "" {
				return Spec{}, fmt.Errorf("%q: empty topic before /", s)
			}
		}
		part, off, found := strings.Cut(item, ":")
		if !found {
			if topic != "" {
				return Spec{}, fmt.Errorf("%q: %s/%s: want topic/partition:offset", s, topic, item)
			}
			o, err := parseOffset(item)
			if err != nil {
				return Spec{}, fmt.Errorf("%q: %w (want an RFC 3339 time, OFFSET, PARTITION:OFFSET or TOPIC/PARTITION:OFFSET)", s, err)
			}
			if spec.All != nil {
				return Spec{}, fmt.Errorf("%q: more than one offset for every partition", s)
			}
			spec.All = &o
			continue
		}
		p, err := strconv.Atoi(part)
		if err != nil || p < 0 {
			return Spec{}, fmt.Errorf("%q: bad partition %q", s, part)
		}
		o, err := parseOffset(off)
		if err != nil {
			return Spec{}, fmt.Errorf("%q: %w", s, err)
		}
		if topic == "" {
			if spec.Offsets == nil {
				spec.Offsets = map[int]int64{}
			}
			spec.Offsets[p] = o
			continue
		}
		if spec.Topics == nil {
			spec.Topics = map[string]map[int]int64{}
		}
		if spec.Topics[topic] == nil {
			spec.Topics[topic] = map[int]int64{}
		}
		spec.Topics[topic][p] = o
	}
	return spec, nil
}

func parseOffset(s string) (int64, error) {
	o, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || o < 0 {
		return 0, fmt.Errorf("bad offset %q", s)
	}
	return o, nil
}

// IsZero reports whether the spec bounds nothing.
func (s Spec) IsZero() bool {
	return s.Time.IsZero() && s.All == nil && len(s.Offsets) == 0 && len(s.Topics) == 0
}

// bound turns s into the projector's bound; partitions lists each topic's partitions
// (to spread an offset given for all of them).
func (s Spec) bound(partitions map[string][]int) projections.Bound {
	b := projections.Bound{Time: s.Time, Offsets: s.Offsets}
	if s.All != nil || len(s.Topics) > 0 {
		b.Topics = map[string]map[int]int64{}
		for topic, parts := range partitions {
			m := map[int]int64{}
			if s.All != nil {
				for _, p := range parts {
					m[p] = *s.All
				}
			}
			for p, o := range s.Offsets {
				m[p] = o
			}
			for p, o := range s.Topics[topic] {
				m[p] = o
			}
			b.Topics[topic] = m
		}
	}
	return b
}
