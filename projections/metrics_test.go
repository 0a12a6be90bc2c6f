package projections

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// A projector stopped halfway through the result topic reports the rest as its lag,
// and the age of the newest result it projected; caught-up topics report zeros.
func TestLagCollector(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := jetstream.Open(ctx, jetstream.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	topics := processor.DefaultTopics()
	// One partition: JetStream's sequences then count messages exactly.
	if err := processor.CreateTopics(ctx, l, topics, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := replaytest.Write(ctx, l, topics, replaytest.Options{Requests: 100}); err != nil {
		t.Fatal(err)
	}
	var results []streams.Message
	if err := l.Read(ctx, topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		results = append(results, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p := &Projector{Log: l, Store: st, Topics: topics, BatchRows: 50,
		To: Bound{Topics: map[string]map[int]int64{topics.Results: {0: results[40].Offset}}}}
	for n := 1; n > 0; {
		if n, err = p.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c := NewLagCollector(p)
	newest := results[39].Time
	c.now = func() time.Time { return newest.Add(time.Minute) }
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP atlas_projection_lag Messages of the log the projector has not projected yet.
# TYPE atlas_projection_lag gauge
atlas_projection_lag{topic="atlas.deadletter"} 0
atlas_projection_lag{topic="atlas.models"} 0
atlas_projection_lag{topic="atlas.requests"} 0
atlas_projection_lag{topic="atlas.results"} 60
# HELP atlas_projection_lag_seconds Age of the newest event the projector has projected, while it is behind; 0 when caught up.
# TYPE atlas_projection_lag_seconds gauge
atlas_projection_lag_seconds{topic="atlas.deadletter"} 0
atlas_projection_lag_seconds{topic="atlas.models"} 0
atlas_projection_lag_seconds{topic="atlas.requests"} 0
atlas_projection_lag_seconds{topic="atlas.results"} 60
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
