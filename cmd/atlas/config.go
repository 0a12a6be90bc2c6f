package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
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

// Configuration comes from flags, then ATLAS_* environment variables, then the --config
// file (configfile.go), then defaults: a flag given on the command line wins, else the
// variable named at the end of its usage in -h, else the file.

func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
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

	kafkaTLS  tlsFlags
	kafkaSASL string // mechanism: plain, scram-sha-256 or scram-sha-512
	kafkaUser string
	kafkaPass string

	natsTLS   tlsFlags
	natsUser  string
	natsPass  string
	natsToken string
	natsCreds string
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

	c.kafkaTLS.register(fs, "kafka", "Kafka")
	fs.StringVar(&c.kafkaSASL, "kafka-sasl", envString("ATLAS_KAFKA_SASL", ""), "Kafka SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: none) [ATLAS_KAFKA_SASL]")
	fs.StringVar(&c.kafkaUser, "kafka-sasl-user", envString("ATLAS_KAFKA_SASL_USER", ""), "Kafka SASL user name [ATLAS_KAFKA_SASL_USER]")
	fs.StringVar(&c.kafkaPass, "kafka-sasl-password", envString("ATLAS_KAFKA_SASL_PASSWORD", ""), "Kafka SASL password (prefer the variable) [ATLAS_KAFKA_SASL_PASSWORD]")

	c.natsTLS.register(fs, "nats", "NATS (with --nats-url; a tls:// URL also turns TLS on)")
	fs.StringVar(&c.natsUser, "nats-user", envString("ATLAS_NATS_USER", ""), "NATS user name [ATLAS_NATS_USER]")
	fs.StringVar(&c.natsPass, "nats-password", envString("ATLAS_NATS_PASSWORD", ""), "NATS password (prefer the variable) [ATLAS_NATS_PASSWORD]")
	fs.StringVar(&c.natsToken, "nats-token", envString("ATLAS_NATS_TOKEN", ""), "NATS authentication token (prefer the variable) [ATLAS_NATS_TOKEN]")
	fs.StringVar(&c.natsCreds, "nats-creds", envString("ATLAS_NATS_CREDS", ""), "NATS credentials file (user JWT and NKey seed) [ATLAS_NATS_CREDS]")
}

// tlsFlags are the client TLS settings of one backend.
type tlsFlags struct {
	enabled  bool
	ca       string
	cert     string
	key      string
	insecure bool
}

// register adds --<p>-tls, --<p>-ca, --<p>-cert, --<p>-key and --<p>-tls-insecure. Any of
// the last four turns TLS on as well.
func (t *tlsFlags) register(fs *flag.FlagSet, p, what string) {
	env := "ATLAS_" + strings.ToUpper(p) + "_"
	fs.BoolVar(&t.enabled, p+"-tls", envBool(env+"TLS", false), "TLS to "+what+" ["+env+"TLS]")
	fs.StringVar(&t.ca, p+"-ca", envString(env+"CA", ""), "PEM file of the CAs that sign the "+p+" server certificates (default: the system's) ["+env+"CA]")
	fs.StringVar(&t.cert, p+"-cert", envString(env+"CERT", ""), "PEM client certificate for "+p+" (with --"+p+"-key) ["+env+"CERT]")
	fs.StringVar(&t.key, p+"-key", envString(env+"KEY", ""), "PEM private key of --"+p+"-cert ["+env+"KEY]")
	fs.BoolVar(&t.insecure, p+"-tls-insecure", envBool(env+"TLS_INSECURE", false), "do not verify the "+p+" server certificate (tests only) ["+env+"TLS_INSECURE]")
}

// config returns the TLS configuration, or nil when TLS is off.
func (t *tlsFlags) config() (*tls.Config, error) {
	if !t.enabled && t.ca == "" && t.cert == "" && t.key == "" && !t.insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.insecure} //nolint:gosec // only when asked for
	if t.ca != "" {
		pem, err := os.ReadFile(t.ca)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", t.ca)
		}
		cfg.RootCAs = pool
	}
	if (t.cert == "") != (t.key == "") {
		return nil, errors.New("a client certificate needs both the certificate and the key file")
	}
	if t.cert != "" {
		pair, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// kafkaConfig is the Kafka client configuration the flags describe.
func (c *logConfig) kafkaConfig() (kafka.Config, error) {
	cfg := kafka.Config{Brokers: strings.Split(c.brokers, ","), Partitions: c.partitions}
	var err error
	if cfg.TLS, err = c.kafkaTLS.config(); err != nil {
		return cfg, fmt.Errorf("kafka TLS: %w", err)
	}
	if c.kafkaSASL != "" {
		if cfg.SASL, err = kafka.SASL(c.kafkaSASL, c.kafkaUser, c.kafkaPass); err != nil {
			return cfg, err
		}
	} else if c.kafkaUser != "" || c.kafkaPass != "" {
		return cfg, errors.New("kafka: a SASL user or password without --kafka-sasl (plain, scram-sha-256 or scram-sha-512)")
	}
	return cfg, nil
}

// natsOptions are the connection options for an external NATS server.
func (c *logConfig) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	cfg, err := c.natsTLS.config()
	if err != nil {
		return nil, fmt.Errorf("NATS TLS: %w", err)
	}
	if cfg != nil {
		opts = append(opts, nats.Secure(cfg))
	}
	if c.natsUser != "" || c.natsPass != "" {
		opts = append(opts, nats.UserInfo(c.natsUser, c.natsPass))
	}
	if c.natsToken != "" {
		opts = append(opts, nats.Token(c.natsToken))
	}
	if c.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(c.natsCreds))
	}
	return opts, nil
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
			opts, err := c.natsOptions()
			if err != nil {
				return nil, err
			}
			cfg.NATSOptions = opts
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
		kc, err := c.kafkaConfig()
		if err != nil {
			return nil, err
		}
		var natsOpts []nats.Option
		if c.natsURL != "" {
			if natsOpts, err = c.natsOptions(); err != nil {
				return nil, err
			}
		}
		l, err := kafka.Open(ctx, kc)
		if err != nil {
			return nil, fmt.Errorf("opening Kafka log: %w", err)
		}
		o := &opened{log: l, close: func() { l.Close() }}
		if c.natsURL != "" {
			nc, err := nats.Connect(c.natsURL, append([]nats.Option{nats.Name("atlas"), nats.MaxReconnects(-1)}, natsOpts...)...)
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
