package jetstream

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Partition returns the partition of key among n partitions. It is Kafka's default
// (Java client) partitioner, (murmur2(key) & 0x7fffffff) % n, also librdkafka's
// "murmur2" and kafka-go's Murmur2Balancer: a well-mixed hash with published test
// vectors, and a key lands in the partition a Java or librdkafka producer would pick.
// (streams/kafka routes with kafka-go's Hash, FNV-1a as in Sarama, so the two Atlas
// backends do not place a key in the same partition number; nothing depends on that.)
//
// A nil key hashes like an empty one: unlike Kafka, which scatters keyless records,
// every keyless record goes to the same partition, keeping this a pure function of the
// key. The name of this function is recorded in each stream's metadata.
func Partition(key []byte, n int) int {
	if n <= 1 {
		return 0
	}
	return int((murmur2(key) & 0x7fffffff) % uint32(n))
}

// murmur2 is the 32-bit MurmurHash2 variant of Kafka's Utils.murmur2 (seed 0x9747b28c).
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// maxNameLen bounds sanitized names: stream and consumer names also become file names
// in the store directory and tokens of subjects and KV keys.
const maxNameLen = 64

// sanitize maps an arbitrary topic or group name to a JetStream stream/consumer name
// that is also a single subject token and a valid KV key token: only [A-Za-z0-9_-] is
// kept. Names that are already valid are used as they are, so streams show up under
// their topic's name in NATS tooling; any other name gets its invalid characters
// replaced and an FNV-1a hash of the original appended, so that "a.b" and "a_b" do not
// collide.
func sanitize(name string) string {
	valid := len(name) > 0 && len(name) <= maxNameLen
	for i := 0; valid && i < len(name); i++ {
		valid = isNameByte(name[i])
	}
	if valid {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name) && b.Len() < maxNameLen-9; i++ {
		if c := name[i]; isNameByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	fmt.Fprintf(&b, "_%08x", h.Sum32())
	return b.String()
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Record keys travel in a header rather than framed into the payload, so that the
// stored payload is exactly the record's value (readable with `nats stream view` and by
// plain NATS subscribers). Keys that are printable ASCII go as they are; anything else
// (binary, non-ASCII, surrounding spaces that header parsing would trim) is base64.
const (
	hdrKey    = "Atlas-Key"
	hdrKeyB64 = "Atlas-Key-B64"
)

func keyHeader(key []byte) nats.Header {
	if len(key) == 0 {
		return nil
	}
	if plainKey(key) {
		return nats.Header{hdrKey: []string{string(key)}}
	}
	return nats.Header{hdrKeyB64: []string{base64.StdEncoding.EncodeToString(key)}}
}

// A record appended with its own time (streams.Record.Time, an import) carries it in a
// header: JetStream stamps every message with the moment it stores it and has no way to
// set another. Read and Fetch return the header's time as Message.Time.
const hdrTime = "Atlas-Time"

// recordHeader is the headers of a record: its key and, if set, its time.
func recordHeader(key []byte, t time.Time) nats.Header {
	h := keyHeader(key)
	if t.IsZero() {
		return h
	}
	if h == nil {
		h = nats.Header{}
	}
	h[hdrTime] = []string{t.UTC().Format(time.RFC3339Nano)}
	return h
}

// messageTime is the time a message was appended with, or stored tells when the stream
// stored it.
func messageTime(h nats.Header, stored time.Time) (time.Time, error) {
	v, ok := h[hdrTime]
	if !ok || len(v) == 0 {
		return stored, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v[0])
	if err != nil {
		return time.Time{}, fmt.Errorf("jetstream: bad %s header: %w", hdrTime, err)
	}
	return t, nil
}

func plainKey(key []byte) bool {
	if key[0] == ' ' || key[len(key)-1] == ' ' {
		return false
	}
	for _, c := range key {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// keyFromHeader is the inverse of keyHeader; a message without a key header has a nil key.
func keyFromHeader(h nats.Header) ([]byte, error) {
	if h == nil {
		return nil, nil
	}
	if v, ok := h[hdrKey]; ok && len(v) > 0 {
		return []byte(v[0]), nil
	}
	if v, ok := h[hdrKeyB64]; ok && len(v) > 0 {
		k, err := base64.StdEncoding.DecodeString(v[0])
		if err != nil {
			return nil, fmt.Errorf("jetstream: bad %s header: %w", hdrKeyB64, err)
		}
		return k, nil
	}
	return nil, nil
}
