package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atlas-mmm/atlas/streams/processor"
)

// runProcess is `atlas process`: the processor role.
func runProcess(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("process", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	lc.register(fs)
	group := fs.String("group", envString("ATLAS_GROUP", "atlas-processor"), "consumer group of the request topic [ATLAS_GROUP]")
	defModel := fs.String("default-model", envString("ATLAS_DEFAULT_MODEL", ""), "model for requests that name none (default: the latest published) [ATLAS_DEFAULT_MODEL]")
	metricsAddr := fs.String("metrics-addr", envString("ATLAS_METRICS_ADDR", ":9090"), "address of /metrics, /health and /ready (empty: off) [ATLAS_METRICS_ADDR]")
	batch := fs.Int("batch", envInt("ATLAS_BATCH", 512), "requests per batch [ATLAS_BATCH]")
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	logger := lc.logger(stderr, "processor")
	o, err := lc.open(ctx)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 1
	}
	defer o.close()

	reg := newMetricsRegistry()
	cfg := processor.Config{Log: o.log, Topics: lc.topics, Group: *group, Partitions: lc.partitions,
		DefaultModel: *defModel, Logger: logger, Metrics: processor.NewMetrics(reg), BatchSize: *batch}
	if o.nc != nil {
		cfg.Notifier = natsNotifier{o.nc}
	}
	p, err := processor.New(cfg)
	if err != nil {
		logger.Error().Err(err).Msg("bad configuration")
		return 2
	}
	if *metricsAddr != "" {
		srv, err := serveOps(*metricsAddr, reg, p.Ready)
		if err != nil {
			logger.Error().Err(err).Msg("cannot listen for metrics")
			return 1
		}
		defer srv.Close()
		logger.Info().Str("addr", srv.Addr).Msg("metrics, health and readiness")
	}
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error().Err(err).Msg("processor failed")
		return 1
	}
	return 0
}

// serveOps serves /metrics, /health and /ready for a role without an API.
func serveOps(addr string, reg *prometheus.Registry, ready func() bool) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"ready":false,"checks":{"log":"starting"}}`)
			return
		}
		fmt.Fprint(w, `{"ready":true,"checks":{"log":"ok"}}`)
	})
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

// newMetricsRegistry is a role's Prometheus registry with the Go runtime and process
// collectors.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
