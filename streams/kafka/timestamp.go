package kafka

import (
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Kafka timestamps are milliseconds. A record appended with its own time
// (streams.Record.Time, e.g. an import from the JetStream backend, which keeps
// nanoseconds) also carries the exact time in a header when it has a finer part, so that
// Message.Time comes back as it was given: result events and read models derive from it.
// The record's CreateTime stays the time truncated to the millisecond, which is what
// time-range reads (ListOffsets) see.
const hdrTime = "Atlas-Time"

// timeHeaders returns the headers that keep t exactly, or nil when the record's
// millisecond timestamp says it all.
func timeHeaders(t time.Time) []kafkago.Header {
	if t.IsZero() || t.Nanosecond()%int(time.Millisecond) == 0 {
		return nil
	}
	return []kafkago.Header{{Key: hdrTime, Value: t.UTC().AppendFormat(nil, time.RFC3339Nano)}}
}

// messageTime is the time of a record: the exact time from its header when that agrees
// with the record's millisecond timestamp, else the timestamp.
func messageTime(ts time.Time, headers []kafkago.Header) time.Time {
	for _, h := range headers {
		if h.Key != hdrTime {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, string(h.Value))
		if err == nil && t.UnixMilli() == ts.UnixMilli() {
			return t
		}
	}
	return ts
}
