package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/atlas-mmm/atlas/streams"
)

// fetchMaxBytes bounds one fetch response (the broker still returns a larger first
// batch whole).
const fetchMaxBytes = 4 << 20

// Read calls fn for every message of topic in [from, to), partition after partition,
// in offset order within each partition. It joins no group and commits nothing.
//
// Bounds are resolved once, when Read is called: an explicit offset for a partition
// wins; otherwise a non-zero Time selects the first message with a timestamp at or
// after it (millisecond resolution); otherwise the range starts at the oldest
// retained message and ends at the high watermark of the moment Read was called. An
// end beyond that high watermark is clamped to it, so Read never waits for new
// messages; a start below the log start offset (retention) is raised to it.
//
// Partitions are read with plain Fetch requests up to the captured end offset, not
// with a kafka.Reader: the end is known exactly, so an empty partition, or offsets
// that hold no visible record (transaction markers), cannot make Read block.
func (l *Log) Read(ctx context.Context, topic string, from, to streams.Position, fn func(streams.Message) error) error {
	if l.isClosed() {
		return streams.ErrClosed
	}
	parts, err := l.partitions(ctx, topic)
	if err != nil {
		return err
	}
	first, err := l.listOffsets(ctx, topic, parts, kafkago.FirstOffset)
	if err != nil {
		return err
	}
	end, err := l.listOffsets(ctx, topic, parts, kafkago.LastOffset)
	if err != nil {
		return err
	}
	start, err := l.resolve(ctx, topic, parts, from, first, end)
	if err != nil {
		return err
	}
	stop := end
	if len(to.Offsets) > 0 || !to.Time.IsZero() {
		if stop, err = l.resolve(ctx, topic, parts, to, end, end); err != nil {
			return err
		}
	}
	for _, p := range parts {
		lo := max(start[p], first[p])
		hi := min(stop[p], end[p])
		if lo >= hi {
			continue
		}
		if err := l.readPartition(ctx, topic, p, lo, hi, fn); err != nil {
			return err
		}
	}
	return nil
}

// resolve turns pos into one offset per partition; def is used for partitions that
// pos does not name, and notFound when pos.Time is after the partition's last message.
func (l *Log) resolve(ctx context.Context, topic string, parts []int, pos streams.Position, def, notFound map[int]int64) (map[int]int64, error) {
	out := make(map[int]int64, len(parts))
	var byTime map[int]int64
	if !pos.Time.IsZero() {
		var err error
		byTime, err = l.listOffsets(ctx, topic, parts, pos.Time.UnixMilli())
		if err != nil {
			return nil, err
		}
	}
	for _, p := range parts {
		if off, ok := pos.Offsets[p]; ok {
			out[p] = off
		} else if byTime != nil {
			if off, ok := byTime[p]; ok {
				out[p] = off
			} else {
				out[p] = notFound[p]
			}
		} else {
			out[p] = def[p]
		}
	}
	return out, nil
}

// readPartition fetches [lo, hi) of one partition. The next fetch is issued while fn
// runs on the current batch.
func (l *Log) readPartition(ctx context.Context, topic string, partition int, lo, hi int64, fn func(streams.Message) error) error {
	ctx, cancel := context.WithCancel(ctx)
	fetcherDone := make(chan struct{})
	defer func() {
		cancel()
		<-fetcherDone
	}()

	type batch struct {
		msgs []streams.Message
		err  error
	}
	batches := make(chan batch, 2)
	go func() {
		defer close(fetcherDone)
		defer close(batches)
		next := lo
		for next < hi {
			msgs, n, err := l.fetch(ctx, topic, partition, next, hi)
			if err == nil && n == next {
				// No visible record left below hi (for instance a batch emptied by
				// compaction): nothing more to deliver, and nothing to wait for.
				return
			}
			select {
			case batches <- batch{msgs, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			next = n
		}
	}()

	for b := range batches {
		if b.err != nil {
			return b.err
		}
		for _, m := range b.msgs {
			if err := fn(m); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// fetch returns the visible messages with offsets in [next, hi) of one fetch
// response and the offset to fetch from next, retrying temporary errors.
func (l *Log) fetch(ctx context.Context, topic string, partition int, next, hi int64) ([]streams.Message, int64, error) {
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return nil, next, err
			}
		}
		if l.isClosed() {
			return nil, next, streams.ErrClosed
		}
		res, err := l.client.Fetch(ctx, &kafkago.FetchRequest{
			Topic:     topic,
			Partition: partition,
			Offset:    next,
			MinBytes:  1,
			MaxBytes:  fetchMaxBytes,
			MaxWait:   l.cfg.MaxWait,
		})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, next, ctx.Err()
			}
			lastErr = err
			if errors.Is(err, kafkago.OffsetOutOfRange) {
				// Retention removed the start of the range meanwhile: skip ahead.
				first, ferr := l.listOffsets(ctx, topic, []int{partition}, kafkago.FirstOffset)
				if ferr == nil && first[partition] > next {
					next = first[partition]
					if next >= hi {
						return nil, next, nil
					}
					continue
				}
			}
			if retriable(err) {
				continue
			}
			break
		}
		msgs, n, err := collect(res.Records, topic, partition, next, hi)
		if err != nil {
			return nil, next, fmt.Errorf("kafka: read %s/%d at %d: %w", topic, partition, next, err)
		}
		return msgs, n, nil
	}
	return nil, next, fmt.Errorf("kafka: read %s/%d at %d: %w", topic, partition, next, lastErr)
}

// collect copies the data records of a fetch response with offsets in [next, hi).
// Control batches (transaction markers) are skipped but advance the returned offset.
func collect(rr kafkago.RecordReader, topic string, partition int, next, hi int64) ([]streams.Message, int64, error) {
	var msgs []streams.Message
	var walk func(rr protocol.RecordReader, control bool) (bool, error)
	walk = func(rr protocol.RecordReader, control bool) (bool, error) {
		switch r := rr.(type) {
		case *protocol.RecordStream:
			for _, sub := range r.Records {
				if done, err := walk(sub, control); done || err != nil {
					return done, err
				}
			}
			return false, nil
		case *protocol.ControlBatch:
			control = true
			rr = r.Records
		}
		for {
			rec, err := rr.ReadRecord()
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			off := rec.Offset
			if off < next {
				closeRecord(rec)
				continue
			}
			if off >= hi {
				closeRecord(rec)
				return true, nil
			}
			next = off + 1
			if control {
				closeRecord(rec)
				continue
			}
			key, err := protocol.ReadAll(rec.Key)
			if err != nil {
				return false, err
			}
			value, err := protocol.ReadAll(rec.Value)
			if err != nil {
				return false, err
			}
			closeRecord(rec)
			msgs = append(msgs, streams.Message{
				Topic:     topic,
				Partition: partition,
				Offset:    off,
				Key:       key,
				Value:     value,
				Time:      messageTime(rec.Time, rec.Headers),
			})
		}
	}
	if _, err := walk(rr, false); err != nil {
		return nil, next, err
	}
	return msgs, next, nil
}

func closeRecord(r *protocol.Record) {
	if r.Key != nil {
		r.Key.Close()
	}
	if r.Value != nil {
		r.Value.Close()
	}
}
