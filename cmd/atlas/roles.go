package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/api"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/clickhouse"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
	"github.com/atlas-mmm/atlas/schemas"
)

// storeConfig selects the read-model store.
type storeConfig struct {
	kind   string
	path   string
	chAddr string
	chDB   string
	chUser string
	chPass string
	chTLS  tlsFlags
	chComp string
}

func (c *storeConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.kind, "store", envString("ATLAS_STORE", "sqlite"), "read-model store: sqlite (embedded) or clickhouse [ATLAS_STORE]")
	fs.StringVar(&c.path, "sqlite-path", envString("ATLAS_SQLITE_PATH", ""), "SQLite file (default <data-dir>/store.db) [ATLAS_SQLITE_PATH]")
	fs.StringVar(&c.chAddr, "clickhouse-addr", envString("ATLAS_CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native-protocol addresses, comma-separated [ATLAS_CLICKHOUSE_ADDR]")
	fs.StringVar(&c.chDB, "clickhouse-database", envString("ATLAS_CLICKHOUSE_DATABASE", "atlas"), "ClickHouse database [ATLAS_CLICKHOUSE_DATABASE]")
	fs.StringVar(&c.chUser, "clickhouse-user", envString("ATLAS_CLICKHOUSE_USER", "default"), "ClickHouse user [ATLAS_CLICKHOUSE_USER]")
	fs.StringVar(&c.chPass, "clickhouse-password", envString("ATLAS_CLICKHOUSE_PASSWORD", ""), "ClickHouse password (prefer the variable) [ATLAS_CLICKHOUSE_PASSWORD]")
	c.chTLS.register(fs, "clickhouse", "ClickHouse (its secure native port, 9440 by default)")
	fs.StringVar(&c.chComp, "clickhouse-compression", envString("ATLAS_CLICKHOUSE_COMPRESSION", "auto"), "compression of ClickHouse data blocks: lz4, none, or auto (none to a loopback address, else lz4) [ATLAS_CLICKHOUSE_COMPRESSION]")
}

func (c *storeConfig) open(ctx context.Context, dataDir string) (store.Store, error) {
	switch c.kind {
	case "sqlite", "":
		return sqlite.Open(c.sqlitePath(dataDir))
	case "clickhouse":
		cfg, err := c.clickhouse()
		if err != nil {
			return nil, err
		}
		return clickhouse.Open(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown --store %q (sqlite or clickhouse)", c.kind)
}

func (c *storeConfig) clickhouse() (clickhouse.Config, error) {
	cfg := clickhouse.Config{Addr: strings.Split(c.chAddr, ","), Database: c.chDB, Username: c.chUser, Password: c.chPass,
		Compression: c.chComp}
	var err error
	if cfg.TLS, err = c.chTLS.config(); err != nil {
		return cfg, fmt.Errorf("ClickHouse TLS: %w", err)
	}
	return cfg, nil
}

// sqlitePath is the SQLite file (default <data-dir>/store.db).
func (c *storeConfig) sqlitePath(dataDir string) string {
	if c.path != "" {
		return c.path
	}
	return filepath.Join(dataDir, "store.db")
}

// runProject is `atlas project`: the projector role.
func runProject(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("project", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	var sc storeConfig
	lc.register(fs)
	sc.register(fs)
	metricsAddr := fs.String("metrics-addr", envString("ATLAS_METRICS_ADDR", ":9091"), "address of /metrics, /health and /ready [ATLAS_METRICS_ADDR]")
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	logger := lc.logger(stderr, "projector")
	o, err := lc.open(ctx)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 1
	}
	defer o.close()
	st, err := sc.open(ctx, lc.dataDir)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the store")
		return 1
	}
	defer st.Close()
	proj := &projections.Projector{Log: o.log, Store: st, Topics: lc.topics, Logger: logger}
	if *metricsAddr != "" {
		reg := newMetricsRegistry()
		reg.MustRegister(projections.NewLagCollector(proj))
		srv, err := serveOps(*metricsAddr, reg, proj.CaughtUp)
		if err != nil {
			logger.Error().Err(err).Msg("cannot listen for metrics")
			return 1
		}
		defer srv.Close()
	}
	if err := proj.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error().Err(err).Msg("projector failed")
		return 1
	}
	return 0
}

// runAPI is `atlas api`: the query API role.
func runAPI(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	var sc storeConfig
	var sec apiSecurity
	lc.register(fs)
	sc.register(fs)
	sec.register(fs, true)
	httpAddr := fs.String("http-addr", envString("ATLAS_HTTP_ADDR", ":8000"), "address of the API [ATLAS_HTTP_ADDR]")
	defModel := fs.String("default-model", envString("ATLAS_DEFAULT_MODEL", ""), "model for what-if requests that name none [ATLAS_DEFAULT_MODEL]")
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	logger := lc.logger(stderr, "api")
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
	st, err := sc.open(ctx, lc.dataDir)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the store")
		return 1
	}
	defer st.Close()
	reg := newMetricsRegistry()
	cfg := api.Config{Log: o.log, Store: st, Topics: lc.topics, DefaultModel: *defModel, Logger: logger,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), OpenAPI: schemas.OpenAPI(),
		Security: security, Registry: reg, Version: version,
		Checks: map[string]api.Check{
			"log": func(ctx context.Context) error {
				_, err := o.log.EndOffsets(ctx, lc.topics.Requests)
				return err
			},
			"models loaded": func(ctx context.Context) error {
				ms, err := st.Models(ctx)
				if err == nil && len(ms) == 0 {
					err = errors.New("no model published yet")
				}
				return err
			},
		}}
	if o.nc != nil {
		cfg.Live = natsResults{o.nc}
		cfg.Checks["nats"] = func(context.Context) error {
			if !o.nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		}
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		logger.Error().Err(err).Msg("cannot listen")
		return 1
	}
	httpSrv := &http.Server{Handler: api.New(cfg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		httpSrv.Shutdown(shutdown) //nolint:errcheck
	}()
	logger.Info().Str("addr", ln.Addr().String()).Msg("serving the API")
	if err := sec.serve(httpSrv, ln, logger); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error().Err(err).Msg("API failed")
		return 1
	}
	return 0
}
