package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/archive"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// runImport is `atlas import`: an archive into an empty log.
func runImport(ctx context.Context, args []string, stdin io.Reader, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	lc.register(fs)
	check := fs.Bool("check", false, "only read and verify the archive (lines, counts, checksum); write nothing")
	salvage := fs.Bool("salvage", false, "import a damaged archive (truncated, or counts or checksum off) as far as its lines are sound, with a warning; audit the result")
	group := fs.String("group", envString("ATLAS_GROUP", "atlas-processor"), "the processor's consumer group: the import commits it past every request the archive holds an answer for, so that a processor started on the copy does not answer them again (empty: leave the group alone) [ATLAS_GROUP]")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: atlas import [flags] FILE|-\n\nAppends an archive written by `atlas export` to an empty log, keeping keys, values,\ntimes and order; the topics are created with the archive's partition counts and mapped\nby role onto --topic-*. A target topic that holds messages is refused.")
		fs.PrintDefaults()
	}
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	logger := lc.logger(stderr, "import")
	var in io.ReadCloser = io.NopCloser(stdin)
	if name := fs.Arg(0); name != "-" {
		var err error
		if in, err = archive.Open(name); err != nil {
			logger.Error().Err(err).Msg("cannot open the archive")
			return 1
		}
	}
	defer in.Close()
	r, err := archive.NewReader(in)
	if err != nil {
		logger.Error().Err(err).Msg("cannot read the archive")
		return 1
	}
	r.Salvage = *salvage
	h := r.Header()
	logger.Info().Str("source", h.Source).Time("created", h.Created).Str("range", h.Range).Interface("topics", h.Topics).Msg("archive")
	prog := newProgress(logger, "imported")
	if *check {
		st, err := archive.Verify(r)
		if err == nil {
			err = r.Damage
		}
		if err != nil {
			logger.Error().Err(err).Msg("the archive is damaged")
			return 1
		}
		prog.done(st)
		return 0
	}
	o, err := openLog(ctx, &lc)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 1
	}
	defer o.close()
	ans := newAnswerSet(h)
	var oldest time.Time
	st, err := archive.Import(ctx, o.log, r, archive.ImportOptions{
		Topics: map[string]string{
			archive.RoleModels:     lc.topics.Models,
			archive.RoleRequests:   lc.topics.Requests,
			archive.RoleResults:    lc.topics.Results,
			archive.RoleDeadLetter: lc.topics.DeadLetters,
		},
		Progress: prog.update,
		Observe: func(m streams.Message) {
			ans.observe(m)
			if oldest.IsZero() || m.Time.Before(oldest) {
				oldest = m.Time
			}
		},
	})
	if err != nil {
		logger.Error().Err(err).Msg("import failed")
		return 1
	}
	prog.done(st)
	if lc.backend == "kafka" && !oldest.IsZero() && time.Since(oldest) > 7*24*time.Hour {
		// Kafka deletes by record timestamp, and the records keep their original ones.
		logger.Warn().Time("oldest", oldest).Msg("records older than 7 days, Kafka's default retention.ms: unless the target topics keep them longer, the broker deletes them by their original timestamps")
	}
	if r.Damage != nil {
		logger.Warn().Err(r.Damage).Msg("the archive is damaged; what its sound lines hold was imported (--salvage): audit it")
	}
	if *group != "" && ans.requests > 0 {
		n, err := ans.commit(ctx, o.log, lc.topics.Requests, *group)
		if err != nil {
			logger.Error().Err(err).Str("group", *group).Msg("cannot position the processor's group; a processor started on this log will answer every request again")
			return 1
		}
		logger.Info().Str("group", *group).Int64("requests_answered", n).Int64("requests", ans.requests).
			Msg("processor group committed past the answered requests")
	}
	return 0
}

// answerSet tracks, while an archive is imported, which request messages the archive
// holds an answer for: a result, or a dead letter naming the message.
type answerSet struct {
	requestsTopic, resultsTopic, deadTopic string // the archive's names
	requests                               int64
	results                                map[string]bool       // request ids with a result
	dead                                   map[[2]int64]bool     // (partition, offset) of dead-lettered requests
	byKey                                  map[string][][2]int64 // request message positions per key, in order
}

func newAnswerSet(h archive.Header) *answerSet {
	a := &answerSet{results: map[string]bool{}, dead: map[[2]int64]bool{}, byKey: map[string][][2]int64{}}
	for _, t := range h.Topics {
		switch t.Role {
		case archive.RoleRequests:
			a.requestsTopic = t.Name
		case archive.RoleResults:
			a.resultsTopic = t.Name
		case archive.RoleDeadLetter:
			a.deadTopic = t.Name
		}
	}
	return a
}

func (a *answerSet) observe(m streams.Message) {
	switch m.Topic {
	case a.requestsTopic:
		a.requests++
		a.byKey[string(m.Key)] = append(a.byKey[string(m.Key)], [2]int64{int64(m.Partition), m.Offset})
	case a.resultsTopic:
		a.results[string(m.Key)] = true // the processor keys a result by its request id
	case a.deadTopic:
		var dl processor.DeadLetter
		if json.Unmarshal(m.Value, &dl) == nil && dl.Topic == a.requestsTopic {
			a.dead[[2]int64{int64(dl.Partition), dl.Offset}] = true
		}
	}
}

// handled says whether the nth message with key (in log order, which the import keeps
// per key) was answered.
func (a *answerSet) handled(key []byte, nth int) bool {
	if a.results[string(key)] {
		return true
	}
	pos := a.byKey[string(key)]
	return nth < len(pos) && a.dead[pos[nth]]
}

// commit joins the group on the imported request topic, reads the requests, and
// commits each partition up to the last request of its longest answered prefix: what
// the source's processor had at least done. It returns how many requests that covers.
//
// It commits as it reads (every 1024 messages, and whenever deliveries pause): a group
// member is only delivered so many messages it has not committed (on JetStream 20000 per
// partition), so reading a large log to its end before committing would stall. A partition is read up to its first unanswered request (what
// follows it stays uncommitted, however many are delivered) or to its end.
func (a *answerSet) commit(ctx context.Context, l streams.Log, topic, group string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ends, err := l.EndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	sub, err := l.Subscribe(ctx, topic, group)
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	type pos struct {
		p   int
		off int64
	}
	var (
		seen    = map[pos]bool{}
		nth     = map[string]int{}
		done    = map[int]bool{} // stopped at an unanswered request, or read to the end
		open    = 0              // partitions not done
		last    = map[int]streams.Message{}
		dirty   = map[int]bool{} // partitions whose last answered request is not committed
		covered int64
	)
	for p, end := range ends {
		if end > 0 {
			open++
		} else {
			done[p] = true
		}
	}
	flush := func() error {
		if len(dirty) == 0 {
			return nil
		}
		msgs := make([]streams.Message, 0, len(dirty))
		for p := range dirty {
			msgs = append(msgs, last[p])
		}
		clear(dirty)
		return sub.Commit(ctx, msgs...)
	}
	for n := 0; open > 0; n++ {
		// Commit whenever deliveries pause too: they may wait for it.
		fctx, fcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := sub.Fetch(fctx)
		fcancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			if err := flush(); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return 0, fmt.Errorf("read %d of %d requests back: %w", len(seen), a.requests, err)
			}
			return 0, err
		}
		if done[m.Partition] || seen[pos{m.Partition, m.Offset}] {
			continue // past the partition's stop, or a redelivery
		}
		seen[pos{m.Partition, m.Offset}] = true
		i := nth[string(m.Key)]
		nth[string(m.Key)]++
		if a.handled(m.Key, i) {
			last[m.Partition] = m
			dirty[m.Partition] = true
			covered++
		} else {
			done[m.Partition] = true
			open--
		}
		if !done[m.Partition] && m.Offset >= ends[m.Partition]-1 {
			done[m.Partition] = true
			open--
		}
		if n%1024 == 1023 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return covered, nil
}
