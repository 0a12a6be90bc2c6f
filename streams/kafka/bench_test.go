package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
)

// Benchmarks against the local broker; every op is one message of 200 bytes.
//
//	ATLAS_KAFKA_REQUIRED=1 go test -run '^$' -bench . -benchtime 2s ./streams/kafka/

const benchValueSize = 200

func benchRecords(n, offset int) []streams.Record {
	val := make([]byte, benchValueSize)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	recs := make([]streams.Record, n)
	for i := range recs {
		recs[i] = streams.Record{Key: []byte("key-" + strconv.Itoa((offset+i)%1024)), Value: val}
	}
	return recs
}

// BenchmarkAppend: `workers` goroutines each call Append with `batch` records, like
// request handlers sharing one Log.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct{ workers, batch int }{
		{1, 1}, {64, 1}, {256, 1}, {4, 100}, {16, 100}, {4, 1000},
	} {
		b.Run(fmt.Sprintf("workers=%d/batch=%d", c.workers, c.batch), func(b *testing.B) {
			l := openLog(b, testConfig(b))
			topic := newTopic(b, l, 4)
			recs := benchRecords(c.batch, 0)
			var next atomic.Int64
			ctx := context.Background()
			b.SetBytes(benchValueSize)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, c.workers)
			for w := 0; w < c.workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						lo := next.Add(int64(c.batch)) - int64(c.batch)
						if lo >= int64(b.N) {
							return
						}
						n := min(int64(c.batch), int64(b.N)-lo)
						if err := l.Append(ctx, topic, recs[:n]...); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkConsumeCommit: one group member fetches b.N messages and commits every
// `every` messages (synchronous commits).
func BenchmarkConsumeCommit(b *testing.B) {
	for _, every := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("commitEvery=%d", every), func(b *testing.B) {
			l := openLog(b, testConfig(b))
			topic := newTopic(b, l, 4)
			ctx := context.Background()
			for lo := 0; lo < b.N; lo += 5000 {
				if err := l.Append(ctx, topic, benchRecords(min(5000, b.N-lo), lo)...); err != nil {
					b.Fatal(err)
				}
			}
			sub, err := l.Subscribe(ctx, topic, uniqueName(b, "group"))
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			b.SetBytes(benchValueSize)
			b.ResetTimer()
			start := time.Now()
			pending := make([]streams.Message, 0, every)
			for i := 0; i < b.N; i++ {
				m, err := sub.Fetch(ctx)
				if err != nil {
					b.Fatal(err)
				}
				pending = append(pending, m)
				if len(pending) == every || i == b.N-1 {
					if err := sub.Commit(ctx, pending...); err != nil {
						b.Fatal(err)
					}
					pending = pending[:0]
				}
			}
			b.StopTimer()
			// Includes the group join (~0.1 s on the local broker).
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkRead: replay of b.N messages with Read.
func BenchmarkRead(b *testing.B) {
	l := openLog(b, testConfig(b))
	topic := newTopic(b, l, 4)
	ctx := context.Background()
	for lo := 0; lo < b.N; lo += 5000 {
		if err := l.Append(ctx, topic, benchRecords(min(5000, b.N-lo), lo)...); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	start := time.Now()
	n := 0
	if err := l.Read(ctx, topic, streams.Position{}, streams.Position{}, func(streams.Message) error {
		n++
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n != b.N {
		b.Fatalf("read %d, want %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
