// Package archive is Atlas's backup format for the event log and the export and import
// that use it.
//
// An archive is NDJSON, one JSON object per line, optionally gzip or zstd compressed
// (see Create and Open):
//
//	{"format":"atlas-archive","version":1,"source":"jetstream:data/log","created":"…","topics":[{"role":"models","name":"atlas.models","partitions":4},…]}
//	{"topic":"atlas.models","partition":2,"offset":1,"key":"acme-mmm","time":"2026-11-26T04:21:00.123456789Z","value":{"specversion":"1.0",…}}
//	{"topic":"atlas.deadletter","partition":0,"offset":7,"key":"…","time":"…","value_base64":"AAEC…"}
//	{"end":{"messages":1234,"topics":{"atlas.models":3,…},"crc32c":"1a2b3c4d"}}
//
// The header names the topics by role (models, requests, results, deadletter) with their
// partition counts, so an import can map them onto differently named topics and create
// them alike. Each message keeps its topic, partition, offset, key, time (RFC 3339, to
// the nanosecond) and value. A value that is JSON on one line is stored as it is, which
// keeps the file readable and greppable; anything else (a dead letter's undecodable
// bytes, pretty-printed JSON, invalid UTF-8) goes as value_base64, so every value comes
// back byte for byte. Keys are strings when they are UTF-8, else key_base64.
//
// The trailer counts the messages per topic and carries a CRC-32C of every byte before
// it, so that a truncated or damaged file is recognised as such. The checksum guards
// against accidents, not against tampering: an audit (package audit) is what checks the
// content.
package archive

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"

	"github.com/atlas-mmm/atlas/streams"
)

// Format and Version identify the archive format in its header line.
const (
	Format  = "atlas-archive"
	Version = 1
)

// Topic roles: which part of the pipeline a topic holds.
const (
	RoleModels     = "models"
	RoleRequests   = "requests"
	RoleResults    = "results"
	RoleDeadLetter = "deadletter"
)

// Header is the first line of an archive.
type Header struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Source  string    `json:"source,omitempty"` // where the messages were read, for people
	Created time.Time `json:"created,omitzero"` // when the export started
	Range   string    `json:"range,omitempty"`  // what part of the log, for people
	Topics  []Topic   `json:"topics"`
}

// Topic is one topic of an archive.
type Topic struct {
	Role       string `json:"role"`
	Name       string `json:"name"`
	Partitions int    `json:"partitions"`
}

// Trailer is the last line of an archive.
type Trailer struct {
	Messages int64            `json:"messages"`
	Topics   map[string]int64 `json:"topics"`
	CRC32C   string           `json:"crc32c"` // 8 hex digits, of every byte before the trailer line
}

// maxLine bounds one line of an archive (a message and its encoding), so that a damaged
// or hostile file cannot make a reader buffer without end.
const maxLine = 64 << 20

func (h *Header) check() error {
	if h.Format != Format {
		return fmt.Errorf("not an Atlas archive (format %q, want %q)", h.Format, Format)
	}
	if h.Version != Version {
		return fmt.Errorf("archive format version %d is not supported (this build reads version %d)", h.Version, Version)
	}
	if len(h.Topics) == 0 {
		return errors.New("header names no topics")
	}
	names := map[string]bool{}
	roles := map[string]bool{}
	for i, t := range h.Topics {
		switch {
		case t.Name == "":
			return fmt.Errorf("header: topics[%d]: no name", i)
		case t.Partitions < 1 || t.Partitions > 1<<16:
			return fmt.Errorf("header: topic %q: %d partitions", t.Name, t.Partitions)
		case names[t.Name]:
			return fmt.Errorf("header: topic %q listed twice", t.Name)
		case t.Role != "" && roles[t.Role]:
			return fmt.Errorf("header: role %q given to two topics", t.Role)
		}
		switch t.Role {
		case RoleModels, RoleRequests, RoleResults, RoleDeadLetter:
		default:
			return fmt.Errorf("header: topic %q: unknown role %q", t.Name, t.Role)
		}
		names[t.Name], roles[t.Role] = true, true
	}
	return nil
}

// appendMessage appends the line of m (with its newline) to b.
func appendMessage(b []byte, m *streams.Message) []byte {
	b = append(b, `{"topic":`...)
	b = appendString(b, m.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(m.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, m.Offset, 10)
	if len(m.Key) > 0 {
		if utf8.Valid(m.Key) {
			b = append(b, `,"key":`...)
			b = appendString(b, string(m.Key))
		} else {
			b = append(b, `,"key_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, m.Key)
			b = append(b, '"')
		}
	}
	b = append(b, `,"time":"`...)
	b = m.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	switch {
	case len(m.Value) == 0:
	case rawJSON(m.Value):
		b = append(b, `,"value":`...)
		b = append(b, m.Value...)
	default:
		b = append(b, `,"value_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Value)
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// rawJSON reports whether v can go into a line as it is and come back byte for byte: a
// JSON value in valid UTF-8, on one line, without surrounding whitespace (a JSON parser
// would drop it), and not null (which a reader takes for an absent value).
func rawJSON(v []byte) bool {
	if isSpace(v[0]) || isSpace(v[len(v)-1]) || string(v) == "null" {
		return false
	}
	if bytes.IndexByte(v, '\n') >= 0 || bytes.IndexByte(v, '\r') >= 0 {
		return false
	}
	// segmentio/encoding's validator gives encoding/json's answers (FuzzReader holds it
	// to that) about five times faster, and validating is most of an export's work.
	return utf8.Valid(v) && segjson.Valid(v)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendString appends s as a JSON string. s must be valid UTF-8 (the callers check);
// only what JSON requires is escaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// line is any line of an archive, as encoding/json reads it.
type line struct {
	// message
	Topic     *string         `json:"topic"`
	Partition *int            `json:"partition"`
	Offset    *int64          `json:"offset"`
	Key       *string         `json:"key"`
	KeyB64    *string         `json:"key_base64"`
	Time      *string         `json:"time"`
	Value     json.RawMessage `json:"value"`
	ValueB64  *string         `json:"value_base64"`
	// trailer
	End *Trailer `json:"end"`
}

// parseMessage decodes a message line (without its newline). Lines the Writer wrote
// take a fast path that reads the fields in their fixed order and checks the value with
// json.Valid; anything else that is valid JSON is read with encoding/json, so a file
// edited by hand or another tool still imports. Both give the same message.
//
// The message's Key and Value are its own unless alias is set: then they may be parts
// of raw, which the caller hands over (a line read into memory of its own). topics are
// names the caller expects; a topic among them costs no allocation.
func parseMessage(raw []byte, alias bool, topics []string) (streams.Message, *Trailer, error) {
	if m, ok := parseFast(raw, alias, topics); ok {
		return m, nil, nil
	}
	var l line
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return streams.Message{}, nil, fmt.Errorf("not a message line: %w", err)
	}
	if dec.More() {
		return streams.Message{}, nil, errors.New("not a message line: more than one JSON value")
	}
	if l.End != nil {
		if l.Topic != nil || l.Partition != nil || l.Offset != nil || l.Time != nil || l.Key != nil ||
			l.KeyB64 != nil || l.Value != nil || l.ValueB64 != nil {
			return streams.Message{}, nil, errors.New("a trailer line with message fields")
		}
		return streams.Message{}, l.End, nil
	}
	return l.message()
}

func (l *line) message() (streams.Message, *Trailer, error) {
	var m streams.Message
	switch {
	case l.Topic == nil || *l.Topic == "":
		return m, nil, errors.New("message: no topic")
	case l.Partition == nil || *l.Partition < 0:
		return m, nil, errors.New("message: no partition (a non-negative integer)")
	case l.Offset == nil || *l.Offset < 0:
		return m, nil, errors.New("message: no offset (a non-negative integer)")
	case l.Time == nil:
		return m, nil, errors.New("message: no time")
	case l.Key != nil && l.KeyB64 != nil:
		return m, nil, errors.New("message: both key and key_base64")
	case l.Value != nil && l.ValueB64 != nil:
		return m, nil, errors.New("message: both value and value_base64")
	}
	m.Topic, m.Partition, m.Offset = *l.Topic, *l.Partition, *l.Offset
	t, err := time.Parse(time.RFC3339Nano, *l.Time)
	if err != nil {
		return m, nil, fmt.Errorf("message: time: %w", err)
	}
	m.Time = t
	if l.Key != nil {
		m.Key = []byte(*l.Key)
	}
	if l.KeyB64 != nil {
		if m.Key, err = base64.StdEncoding.DecodeString(*l.KeyB64); err != nil {
			return m, nil, fmt.Errorf("message: key_base64: %w", err)
		}
	}
	if l.Value != nil {
		if bytes.Equal(l.Value, []byte("null")) {
			// encoding/json hands a RawMessage "null" over as it is; a null value is an
			// empty one.
			l.Value = nil
		}
		m.Value = l.Value
	}
	if l.ValueB64 != nil {
		if m.Value, err = base64.StdEncoding.DecodeString(*l.ValueB64); err != nil {
			return m, nil, fmt.Errorf("message: value_base64: %w", err)
		}
	}
	return m, nil, nil
}

// parseFast reads a line in exactly the Writer's layout, or reports that it is not one.
// alias and topics are as for parseMessage.
func parseFast(raw []byte, alias bool, topics []string) (streams.Message, bool) {
	var m streams.Message
	p := fastParser{b: raw}
	own := func(b []byte) []byte {
		if alias {
			return b[:len(b):len(b)]
		}
		return bytes.Clone(b)
	}
	if !p.lit(`{"topic":`) {
		return m, false
	}
	topic, ok := p.str()
	if !ok || len(topic) == 0 || !p.lit(`,"partition":`) {
		return m, false
	}
	part, ok := p.int()
	if !ok || part > 1<<31-1 || !p.lit(`,"offset":`) {
		return m, false
	}
	off, ok := p.int()
	if !ok {
		return m, false
	}
	m.Topic, m.Partition, m.Offset = intern(topic, topics), int(part), off
	if p.lit(`,"key":`) {
		k, ok := p.str()
		if !ok || len(k) == 0 {
			return m, false
		}
		m.Key = own(k)
	} else if p.lit(`,"key_base64":`) {
		k, ok := p.str()
		if !ok {
			return m, false
		}
		key, err := base64.StdEncoding.AppendDecode(nil, k)
		if err != nil || len(key) == 0 {
			return m, false
		}
		m.Key = key
	}
	if !p.lit(`,"time":`) {
		return m, false
	}
	ts, ok := p.str()
	if !ok {
		return m, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return m, false
	}
	m.Time = t
	switch {
	case p.lit(`}`):
		return m, p.i == len(p.b)
	case p.lit(`,"value_base64":`):
		v, ok := p.str()
		if !ok || !p.lit(`}`) || p.i != len(p.b) {
			return m, false
		}
		value, err := base64.StdEncoding.AppendDecode(nil, v)
		if err != nil || len(value) == 0 {
			return m, false
		}
		m.Value = value
		return m, true
	case p.lit(`,"value":`):
		rest := p.b[p.i:]
		if len(rest) < 2 || rest[len(rest)-1] != '}' {
			return m, false
		}
		v := rest[:len(rest)-1]
		// What the Writer stores raw, and nothing else: then the general path would
		// read the same bytes.
		if !rawJSON(v) {
			return m, false
		}
		m.Value = own(v)
		return m, true
	}
	return m, false
}

// intern returns b as a string, one of names if it is among them (no allocation).
func intern(b []byte, names []string) string {
	for _, n := range names {
		if string(b) == n {
			return n
		}
	}
	return string(b)
}

// fastParser reads the few JSON forms the Writer produces; anything unusual (escapes,
// exponents, whitespace) makes it give up, leaving the line to encoding/json.
type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a string without escapes or control characters, in valid UTF-8, and
// returns its content (part of the line).
func (p *fastParser) str() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[start:j]
			if !utf8.Valid(s) {
				return nil, false
			}
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// int reads a non-negative integer in canonical form.
func (p *fastParser) int() (int64, bool) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || len(digits) > 18 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, err == nil
}
