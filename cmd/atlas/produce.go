package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// runProduce is `atlas produce`: publish models, retirements and requests from NDJSON.
// Each line is a CloudEvent, or the bare data of one (a model, a request, or with
// --type retire a {"model_id"}). Bad lines are reported with their line number and
// skipped; the exit code is 1 when there were any.
func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	lc.register(fs)
	typ := fs.String("type", "auto", "what bare lines are: auto (a model has \"channels\"), model, retire or request")
	source := fs.String("source", envString("ATLAS_SOURCE", "atlas/produce"), "CloudEvents source of the events built here [ATLAS_SOURCE]")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: atlas produce [flags] [FILE...|-]\n\nPublishes one event per NDJSON line (CloudEvents, or bare models and requests).")
		fs.PrintDefaults()
	}
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	o, err := lc.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "atlas produce: %v\n", err)
		return 1
	}
	defer o.close()
	if err := processor.CreateTopics(ctx, o.log, lc.topics, lc.partitions); err != nil {
		fmt.Fprintf(stderr, "atlas produce: %v\n", err)
		return 1
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	pending := map[string][]streams.Record{}
	count, bad := 0, 0
	flush := func() error {
		for topic, recs := range pending {
			if len(recs) == 0 {
				continue
			}
			if err := o.log.Append(ctx, topic, recs...); err != nil {
				return fmt.Errorf("appending to %s: %w", topic, err)
			}
			count += len(recs)
			pending[topic] = recs[:0]
		}
		return nil
	}
	for _, name := range files {
		var r io.Reader = stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintf(stderr, "atlas produce: %v\n", err)
				return 1
			}
			defer f.Close()
			r = f
		} else {
			name = "stdin"
		}
		err := readDocuments(r, func(line int, raw []byte, syntaxErr error) error {
			if syntaxErr != nil {
				bad++
				fmt.Fprintf(stderr, "%s:%d: %v\n", name, line, syntaxErr)
				return nil
			}
			env, err := toEvent(bytes.TrimSpace(raw), *typ, *source)
			if err != nil {
				bad++
				fmt.Fprintf(stderr, "%s:%d: %v\n", name, line, err)
				return nil
			}
			topic := lc.topics.Requests
			if env.Type == event.ModelPublished || env.Type == event.ModelRetired {
				topic = lc.topics.Models
			}
			b, err := event.Encode(env)
			if err != nil {
				bad++
				fmt.Fprintf(stderr, "%s:%d: %v\n", name, line, err)
				return nil
			}
			pending[topic] = append(pending[topic], streams.Record{Key: []byte(env.Key()), Value: b})
			if len(pending[topic]) >= 500 {
				return flush()
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "atlas produce: %s: %v\n", name, err)
			return 1
		}
	}
	if err := flush(); err != nil {
		fmt.Fprintf(stderr, "atlas produce: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "produced %d events, %d bad lines\n", count, bad)
	if bad > 0 {
		return 1
	}
	return 0
}

// toEvent turns one input line into a validated event.
func toEvent(raw []byte, typ, source string) (event.Envelope, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return event.Envelope{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if _, ok := probe["specversion"]; ok {
		env, err := event.Decode(raw)
		if err != nil {
			return event.Envelope{}, err
		}
		switch env.Type {
		case event.ModelPublished, event.ModelRetired, event.OptimizationRequested:
			return env, nil
		}
		return event.Envelope{}, fmt.Errorf("type: %s events are written by Atlas, not produced", env.Type)
	}
	if typ == "auto" {
		typ = "request"
		if _, ok := probe["channels"]; ok {
			typ = "model"
		}
	}
	var t string
	switch typ {
	case "model":
		t = event.ModelPublished
		if _, err := engine.DecodeModel(raw); err != nil {
			return event.Envelope{}, err
		}
	case "retire":
		t = event.ModelRetired
	case "request":
		t = event.OptimizationRequested
		if _, err := engine.DecodeRequest(raw); err != nil {
			return event.Envelope{}, err
		}
	default:
		return event.Envelope{}, fmt.Errorf("--type %q: want auto, model, retire or request", typ)
	}
	return event.New(t, source, "", json.RawMessage(raw), newID(), time.Now())
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "evt-" + hex.EncodeToString(b[:])
}
