package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// Configuration comes from flags, then ATLAS_* environment variables, then defaults: a
// flag given on the command line wins, else the variable named next to it in -h.

func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// logConfig selects and configures the event log.
type logConfig struct {
	backend    string
	dataDir    string
	natsURL    string
	brokers    string
	partitions int
	topics     processor.Topics
	logLevel   string
}

func (c *logConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.backend, "log", envString("ATLAS_LOG", "jetstream"), "event log: jetstream (embedded unless --nats-url) or kafka [ATLAS_LOG]")
	fs.StringVar(&c.dataDir, "data-dir", envString("ATLAS_DATA_DIR", "./data"), "directory of the embedded event log and store [ATLAS_DATA_DIR]")
	fs.StringVar(&c.natsURL, "nats-url", envString("ATLAS_NATS_URL", ""), "external NATS server (JetStream log and live notifications) [ATLAS_NATS_URL]")
	fs.StringVar(&c.brokers, "kafka-brokers", envString("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092"), "Kafka bootstrap brokers, comma-separated [ATLAS_KAFKA_BROKERS]")
	fs.IntVar(&c.partitions, "partitions", envInt("ATLAS_PARTITIONS", 4), "partitions of the topics Atlas creates [ATLAS_PARTITIONS]")
	def := processor.DefaultTopics()
	fs.StringVar(&c.topics.Models, "topic-models", envString("ATLAS_TOPIC_MODELS", def.Models), "model topic [ATLAS_TOPIC_MODELS]")
	fs.StringVar(&c.topics.Requests, "topic-requests", envString("ATLAS_TOPIC_REQUESTS", def.Requests), "request topic [ATLAS_TOPIC_REQUESTS]")
	fs.StringVar(&c.topics.Results, "topic-results", envString("ATLAS_TOPIC_RESULTS", def.Results), "result topic [ATLAS_TOPIC_RESULTS]")
	fs.StringVar(&c.topics.DeadLetters, "topic-deadletter", envString("ATLAS_TOPIC_DEADLETTER", def.DeadLetters), "dead-letter topic [ATLAS_TOPIC_DEADLETTER]")
	fs.StringVar(&c.logLevel, "log-level", envString("ATLAS_LOG_LEVEL", "info"), "debug, info, warn or error [ATLAS_LOG_LEVEL]")
}

func (c *logConfig) logger(w io.Writer, role string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(strings.ToLower(c.logLevel))
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("role", role).Logger()
}

// opened is an open event log with what else came with it.
type opened struct {
	log   streams.Log
	nc    *nats.Conn // for live notifications, when there is one
	close func()
}

func (c *logConfig) open(ctx context.Context) (*opened, error) {
	switch c.backend {
	case "jetstream", "nats", "":
		cfg := jetstream.Config{}
		if c.natsURL != "" {
			cfg.URL = c.natsURL
		} else {
			if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
				return nil, fmt.Errorf("data dir: %w", err)
			}
			cfg.DataDir = c.dataDir + "/log"
		}
		l, err := jetstream.Open(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("opening JetStream log: %w", err)
		}
		return &opened{log: l, nc: l.Conn(), close: func() { l.Close() }}, nil
	case "kafka":
		l, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(c.brokers, ","), Partitions: c.partitions})
		if err != nil {
			return nil, fmt.Errorf("opening Kafka log: %w", err)
		}
		o := &opened{log: l, close: func() { l.Close() }}
		if c.natsURL != "" {
			nc, err := nats.Connect(c.natsURL, nats.Name("atlas"), nats.MaxReconnects(-1))
			if err != nil {
				l.Close()
				return nil, fmt.Errorf("connecting to NATS: %w", err)
			}
			o.nc = nc
			o.close = func() { nc.Drain(); l.Close() }
		}
		return o, nil
	}
	return nil, fmt.Errorf("unknown --log %q (jetstream or kafka)", c.backend)
}

// natsNotifier publishes result events on their request's subject.
type natsNotifier struct{ nc *nats.Conn }

func (n natsNotifier) Notify(_ context.Context, requestID string, ev []byte) error {
	return n.nc.Publish(processor.ResultSubject(requestID), ev)
}
