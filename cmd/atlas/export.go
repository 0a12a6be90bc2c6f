package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/archive"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/kafka"
)

// runExport is `atlas export`: the log (or a time range of it) into an archive file.
func runExport(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	lc.register(fs)
	out := fs.String("out", "", "archive to write: FILE.ndjson, FILE.ndjson.gz or FILE.ndjson.zst (compression by extension), or - for standard output")
	since := fs.String("since", "", "only messages at or after this RFC 3339 time (the model topic is always exported whole)")
	until := fs.String("until", "", "only messages before this RFC 3339 time (the model topic is always exported whole)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: atlas export [flags] --out FILE\n\nWrites the event log (models, requests, results, dead letters) to a compressed NDJSON\narchive that keeps event ids, order and timestamps. Stop `atlas serve` first on the embedded log.")
		fs.PrintDefaults()
	}
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	var opt archive.ExportOptions
	for _, t := range []struct {
		flag string
		dst  *time.Time
	}{{*since, &opt.Since}, {*until, &opt.Until}} {
		if t.flag == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.flag)
		if err != nil {
			fmt.Fprintf(stderr, "atlas export: --since/--until: %v\n", err)
			return 2
		}
		*t.dst = v
	}
	logger := lc.logger(stderr, "export")
	o, err := openLog(ctx, &lc)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 1
	}
	defer o.close()
	topics, err := existingTopics(ctx, o.log, lc, logger)
	if err != nil {
		logger.Error().Err(err).Msg("cannot list the topics")
		return 1
	}
	var w io.WriteCloser = nopCloser{stdout}
	if *out != "-" {
		if w, err = archive.Create(*out); err != nil {
			logger.Error().Err(err).Msg("cannot create the archive")
			return 1
		}
	}
	opt.Source = lc.describe()
	prog := newProgress(logger, "exported")
	opt.Progress = prog.update
	st, err := archive.Export(ctx, o.log, topics, w, opt)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if *out != "-" {
			os.Remove(*out)
		}
		logger.Error().Err(err).Msg("export failed")
		return 1
	}
	prog.done(st)
	return 0
}

// openLog opens the log for export, import and audit, which work on a stopped
// embedded log: the hint says so when `atlas serve` still holds it.
func openLog(ctx context.Context, lc *logConfig) (*opened, error) {
	o, err := lc.open(ctx)
	if err != nil && lc.natsURL == "" && lc.backend != "kafka" && strings.Contains(err.Error(), "in use by another process") {
		err = fmt.Errorf("%w (stop atlas serve, or whatever else has --data-dir %s open, first)", err, lc.dataDir)
	}
	return o, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// existingTopics lists the pipeline's topics by role, leaving out those that were never
// created (a log that never saw a dead letter, say).
func existingTopics(ctx context.Context, l streams.Log, lc logConfig, logger zerolog.Logger) ([]archive.Topic, error) {
	var out []archive.Topic
	for _, t := range []archive.Topic{
		{Role: archive.RoleModels, Name: lc.topics.Models},
		{Role: archive.RoleRequests, Name: lc.topics.Requests},
		{Role: archive.RoleResults, Name: lc.topics.Results},
		{Role: archive.RoleDeadLetter, Name: lc.topics.DeadLetters},
	} {
		_, err := l.EndOffsets(ctx, t.Name)
		if errors.Is(err, jetstream.ErrUnknownTopic) || errors.Is(err, kafka.ErrUnknownTopic) {
			logger.Warn().Str("topic", t.Name).Msg("topic does not exist; left out")
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("none of the topics exists: is this the right --data-dir or cluster?")
	}
	return out, nil
}

// describe names the log for an archive's header.
func (c *logConfig) describe() string {
	switch {
	case c.backend == "kafka":
		return "kafka:" + c.brokers
	case c.natsURL != "":
		return "nats:" + c.natsURL
	}
	return "jetstream:" + c.dataDir
}

// progress logs a line with the count and the rate every two seconds.
type progress struct {
	logger zerolog.Logger
	verb   string
	start  time.Time
	last   time.Time
	lastN  int64
}

func newProgress(logger zerolog.Logger, verb string) *progress {
	now := time.Now()
	return &progress{logger: logger, verb: verb, start: now, last: now}
}

func (p *progress) update(n int64) {
	now := time.Now()
	if d := now.Sub(p.last); d >= 2*time.Second {
		p.logger.Info().Int64("messages", n).Float64("per_second", float64(n-p.lastN)/d.Seconds()).Msg(p.verb)
		p.last, p.lastN = now, n
	}
}

func (p *progress) done(st archive.Stats) {
	d := time.Since(p.start)
	ev := p.logger.Info().Int64("messages", st.Messages).Dur("took", d).Float64("per_second", float64(st.Messages)/d.Seconds())
	for name, n := range st.Topics {
		ev = ev.Int64(name, n)
	}
	ev.Msg(p.verb + ": done")
}
