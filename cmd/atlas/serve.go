package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/api"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
	"github.com/atlas-mmm/atlas/schemas"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// runServe is `atlas serve`: the whole product in one process on the embedded defaults
// (JetStream log and SQLite read models under --data-dir): processor, projector and API.
func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	var sec apiSecurity
	lc.register(fs)
	sec.register(fs, false)
	httpAddr := fs.String("http-addr", envString("ATLAS_HTTP_ADDR", ":8000"), "address of the API [ATLAS_HTTP_ADDR]")
	defModel := fs.String("default-model", envString("ATLAS_DEFAULT_MODEL", ""), "model for requests that name none (default: the latest published) [ATLAS_DEFAULT_MODEL]")
	demo := fs.String("demo-model", envString("ATLAS_DEMO_MODEL", ""), "model file published on first start, when no model exists yet [ATLAS_DEMO_MODEL]")
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	logger := lc.logger(stderr, "serve")
	security, err := sec.build()
	if err != nil {
		logger.Error().Err(err).Msg("bad configuration")
		return 2
	}
	o, err := lc.open(ctx)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 1
	}
	defer o.close()
	if err := processor.CreateTopics(ctx, o.log, lc.topics, lc.partitions); err != nil {
		logger.Error().Err(err).Msg("cannot create topics")
		return 1
	}
	st, err := sqlite.Open(filepath.Join(lc.dataDir, "store.db")) // the embedded default
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the store")
		return 1
	}
	defer st.Close()
	if *demo != "" {
		if err := publishDemo(ctx, o.log, lc.topics, *demo); err != nil {
			logger.Error().Err(err).Msg("cannot publish the demo model")
			return 1
		}
	}

	reg := newMetricsRegistry()
	proc, err := processor.New(processor.Config{Log: o.log, Topics: lc.topics, Partitions: lc.partitions,
		DefaultModel: *defModel, Logger: lc.logger(stderr, "processor"), Metrics: processor.NewMetrics(reg),
		Notifier: natsNotifier{o.nc}})
	if err != nil {
		logger.Error().Err(err).Msg("bad configuration")
		return 2
	}
	proj := &projections.Projector{Log: o.log, Store: st, Topics: lc.topics, Logger: lc.logger(stderr, "projector")}
	reg.MustRegister(projections.NewLagCollector(proj))

	srv := api.New(api.Config{Log: o.log, Store: st, Live: natsResults{o.nc}, Topics: lc.topics, DefaultModel: *defModel,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Logger: lc.logger(stderr, "api"), OpenAPI: schemas.OpenAPI(),
		Security: security, Registry: reg, Version: version,
		Checks: map[string]api.Check{
			"log": func(ctx context.Context) error {
				_, err := o.log.EndOffsets(ctx, lc.topics.Requests)
				return err
			},
			"nats": func(context.Context) error {
				if !o.nc.IsConnected() {
					return errors.New("not connected")
				}
				return nil
			},
			"processor": func(context.Context) error {
				if !proc.Ready() {
					return errors.New("starting")
				}
				return nil
			},
			"models loaded": func(context.Context) error {
				if proc.Registry().Len() == 0 {
					return errors.New("no model published yet")
				}
				return nil
			},
			"projector": func(context.Context) error {
				if !proj.CaughtUp() {
					return errors.New("catching up with the log")
				}
				return nil
			},
		}})
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		logger.Error().Err(err).Msg("cannot listen")
		return 1
	}
	httpSrv := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); errc <- proc.Run(runCtx) }()
	go func() { defer wg.Done(); errc <- proj.Run(runCtx) }()
	go func() {
		defer wg.Done()
		if err := sec.serve(httpSrv, ln, logger); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	url := sec.scheme() + "://" + displayAddr(ln.Addr().String())
	logger.Info().Str("url", url).Str("data_dir", lc.dataDir).Msg("atlas is serving")
	keyHeader := "" // with authentication on, the hint must carry a key to work
	if security.Auth != nil {
		keyHeader = " -H 'X-API-Key: <key>'"
	}
	fmt.Fprintf(stdout, "Atlas is running at %s\nTry:\n  curl -s -X POST %s/api/v1/optimize -H 'Content-Type: application/json'%s \\\n    -d '{\"budget\": {\"tv\": 100000, \"digital\": 200000}, \"constraints\": {\"total\": 300000}}'\n", url, url, keyHeader)

	code := 0
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			logger.Error().Err(err).Msg("a component failed")
			code = 1
		}
	}
	shutdown, stop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer stop()
	httpSrv.Shutdown(shutdown) //nolint:errcheck // best effort within the grace period
	cancel()
	wg.Wait()
	logger.Info().Msg("stopped")
	return code
}

func displayAddr(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// publishDemo publishes the model in path unless the model topic already has events.
func publishDemo(ctx context.Context, l streams.Log, topics processor.Topics, path string) error {
	ends, err := l.EndOffsets(ctx, topics.Models)
	if err != nil {
		return err
	}
	for _, end := range ends {
		if end > 0 {
			return nil
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	env, err := toEvent(b, "model", "atlas/serve")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	raw, err := event.Encode(env)
	if err != nil {
		return err
	}
	return l.Append(ctx, topics.Models, streams.Record{Key: []byte(env.Key()), Value: raw})
}

// natsResults lets the API wait for a request's result on NATS.
type natsResults struct{ nc *nats.Conn }

func (n natsResults) Subscribe(requestID string) (<-chan []byte, func(), error) {
	ch := make(chan []byte, 1)
	sub, err := n.nc.Subscribe(processor.ResultSubject(requestID), func(m *nats.Msg) {
		select {
		case ch <- m.Data:
		default:
		}
	})
	if err != nil {
		return nil, nil, err
	}
	// The subscription must reach the server before the request is published.
	if err := n.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, nil, err
	}
	return ch, func() { sub.Unsubscribe() }, nil
}
