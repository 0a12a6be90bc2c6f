package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/atlas-mmm/atlas/projections/replay"
)

const replayUsage = `Usage:
  atlas replay [--name NAME] [--from POS] [--to POS] [--switch [--force]] [flags]
                                   rebuild the read models from the log into generation NAME
  atlas replay switch [--force] NAME [flags]
                                   catch NAME up to the end of the log and make it live
  atlas replay list [flags]        the live read models and every generation
  atlas replay drop NAME [flags]   remove a generation

POS (--from, --to) is an RFC 3339 time (2025-06-01T00:00:00Z), one offset for every
partition (1200), offsets by partition (0:120,1:98) or of one topic's partitions
(atlas.results/0:120); --from defaults to the start of the log, --to to its end when
the replay starts. Offsets are Kafka offsets or JetStream stream sequences.

A generation is a SQLite file beside the live one (<data-dir>/store.replay-NAME.db;
stop atlas serve first) or a ClickHouse database <database>_replay_NAME (the live
projector and API keep running). Switching exchanges it with the live read models, so
the previous ones stay available under NAME (switch again to go back). A generation
that starts after the start of the log is only switched with --force.

Flags:
`

// runReplay is `atlas replay`: blue/green rebuilds of the read models.
func runReplay(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	sub := "build"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fs.PrintDefaults()
	}
	var lc logConfig
	var sc storeConfig
	lc.register(fs)
	sc.register(fs)
	name := fs.String("name", "", "generation name (default g<UTC time>; the same name and range resume an interrupted replay)")
	from := fs.String("from", "", "where the replay starts (see POS above; default: the start of the log)")
	to := fs.String("to", "", "where it stops, excluded (default: the end of the log when it starts)")
	doSwitch := fs.Bool("switch", false, "switch the generation in once built")
	force := fs.Bool("force", false, "switch a generation that starts after the start of the log")
	projector := fs.String("projector", envString("ATLAS_PROJECTOR", "atlas-projector"), "checkpoint name of the live projector [ATLAS_PROJECTOR]")
	batch := fs.Int("batch", 0, "rows per write (default 20000 on SQLite, 50000 on ClickHouse, whose inserts cost more per call)")
	progress := fs.String("progress", "auto", "auto (a bar on a terminal, else log lines), bar, log or none")
	every := fs.Duration("progress-every", 10*time.Second, "interval of progress log lines")

	// A name may come before or after the flags.
	var pos []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = args[:1], args[1:]
	}
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	pos = append(pos, fs.Args()...)
	switch sub {
	case "build":
		if len(pos) > 0 {
			fmt.Fprintf(stderr, "atlas replay: unexpected argument %q (a name goes in --name)\n", pos[0])
			return 2
		}
		if *name == "" {
			*name = "g" + time.Now().UTC().Format("20060102_150405")
		}
	case "switch", "drop":
		if len(pos) != 1 {
			fmt.Fprintf(stderr, "atlas replay %s: want one generation name\n", sub)
			return 2
		}
		*name = pos[0]
	case "list":
		if len(pos) > 0 {
			fmt.Fprintln(stderr, "atlas replay list: takes no arguments")
			return 2
		}
	default:
		fmt.Fprintf(stderr, "atlas replay: unknown subcommand %q (switch, list or drop)\n", sub)
		return 2
	}
	if *name != "" {
		if err := replay.CheckName(*name); err != nil {
			fmt.Fprintln(stderr, "atlas replay:", err)
			return 2
		}
	}
	fromSpec, err := replay.ParseSpec(*from)
	if err != nil {
		fmt.Fprintln(stderr, "atlas replay: --from:", err)
		return 2
	}
	toSpec, err := replay.ParseSpec(*to)
	if err != nil {
		fmt.Fprintln(stderr, "atlas replay: --to:", err)
		return 2
	}
	logger := lc.logger(stderr, "replay")

	var target replay.Target
	switch sc.kind {
	case "sqlite", "":
		target, err = replay.NewSQLite(sc.sqlitePath(lc.dataDir))
	case "clickhouse":
		cfg, cerr := sc.clickhouse()
		if err = cerr; err == nil {
			target, err = replay.NewClickHouse(ctx, cfg)
		}
	default:
		err = fmt.Errorf("unknown --store %q (sqlite or clickhouse)", sc.kind)
	}
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the store")
		return 1
	}
	defer target.Close()
	if *batch <= 0 {
		// SQLite: a commit writes every page the batch touched to the WAL, and the
		// B-trees' upper pages are touched by every batch, so larger transactions cost
		// less per row (bench/replay: 26-28 µs of CPU per event at 5,000 rows, 24 at
		// 20,000). A batch of 20,000 rows holds some 10-15 MB of events.
		*batch = 20000
		if sc.kind == "clickhouse" {
			*batch = 50000
		}
	}
	r := &replay.Replay{Target: target, Topics: lc.topics, Projector: *projector, BatchRows: *batch, Logger: logger}
	if sc.kind == "clickhouse" {
		r.CommitRows = replay.ClickHouseCommitRows
	}

	switch sub {
	case "list":
		return replayList(ctx, r, stdout, logger)
	case "drop":
		if err := r.Drop(ctx, *name); err != nil {
			logger.Error().Err(err).Msg("drop failed")
			return 1
		}
		logger.Info().Str("generation", *name).Msg("dropped")
		return 0
	}

	o, err := lc.open(ctx)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 1
	}
	defer o.close()
	r.Log = o.log
	finish := reportProgress(r, *progress, *every, stderr, logger)
	defer finish()

	if sub == "build" {
		logger.Info().Str("generation", *name).Str("where", target.Where(*name)).Str("from", *from).Str("to", *to).Msg("replaying")
		g, err := r.Build(ctx, *name, fromSpec, toSpec)
		finish()
		if err != nil {
			logger.Error().Err(err).Msg("replay failed")
			return 1
		}
		fmt.Fprintf(stdout, "generation %s: %d messages replayed into %s\n", *name, g.Messages, target.Where(*name))
		if !*doSwitch {
			fmt.Fprintf(stdout, "switch it in with: atlas replay switch %s\n", *name)
			return 0
		}
	}
	if err := r.Switch(ctx, *name, *force); err != nil {
		finish()
		logger.Error().Err(err).Msg("switch failed")
		return 1
	}
	finish()
	fmt.Fprintf(stdout, "generation %s is live; the previous read models are kept as %s\n", *name, target.Where(*name))
	return 0
}

// reportProgress sets r.Report: a progress bar with rate and ETA on a terminal, log
// lines every interval otherwise. The returned function ends the bar.
func reportProgress(r *replay.Replay, mode string, every time.Duration, stderr io.Writer, logger zerolog.Logger) func() {
	if mode == "auto" {
		mode = "log"
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	switch mode {
	case "none":
		return func() {}
	case "log":
		r.Every = every
		r.Report = func(p replay.Progress) {
			ev := logger.Info().Str("generation", p.Name).Str("stage", p.Stage).Int64("messages", p.Messages).
				Float64("done_pct", round1(100*p.Fraction)).Float64("messages_per_s", rate(p))
			if eta, ok := remaining(p); ok && !p.Done {
				ev = ev.Dur("eta", eta.Round(time.Second))
			}
			msg := "replaying"
			if p.Done {
				msg = "stage done"
			}
			ev.Msg(msg)
		}
		return func() {}
	}
	// The bar counts thousandths of the range (offsets, see replay.Progress); its
	// description carries the message count and rate.
	var bar *progressbar.ProgressBar
	stage := ""
	r.Every = 200 * time.Millisecond
	r.Report = func(p replay.Progress) {
		if bar == nil || stage != p.Stage {
			if bar != nil {
				bar.Finish() //nolint:errcheck // best effort on a terminal
				fmt.Fprintln(stderr)
			}
			stage = p.Stage
			bar = progressbar.NewOptions64(1000, progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth(),
				progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowElapsedTimeOnFinish())
		}
		bar.Describe(fmt.Sprintf("%s %s: %d msgs, %.0f/s", p.Stage, p.Name, p.Messages, rate(p)))
		bar.Set64(int64(1000 * p.Fraction)) //nolint:errcheck
	}
	return func() {
		if bar != nil {
			bar.Finish() //nolint:errcheck
			fmt.Fprintln(stderr)
			bar = nil
		}
	}
}

func rate(p replay.Progress) float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return round1(float64(p.Messages) / p.Elapsed.Seconds())
}

func remaining(p replay.Progress) (time.Duration, bool) {
	if p.Fraction <= 0 || p.Fraction >= 1 {
		return 0, false
	}
	return time.Duration(float64(p.Elapsed) * (1 - p.Fraction) / p.Fraction), true
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

func replayList(ctx context.Context, r *replay.Replay, stdout io.Writer, logger zerolog.Logger) int {
	infos, err := r.List(ctx)
	if err != nil {
		logger.Error().Err(err).Msg("list failed")
		return 1
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "GENERATION\tWHERE\tSTATE\tFROM\tTO\tMESSAGES\tSTARTED\tFINISHED")
	for _, in := range infos {
		g := in.Generation
		name, state := in.Name, "finished"
		switch {
		case in.Err != nil:
			state = "error: " + in.Err.Error()
		case g.Name == "":
			state = "built by the projector"
		case g.Finished.IsZero():
			state = "interrupted (run it again to resume)"
		}
		if in.Live {
			if name == "" {
				name = "-"
			}
			name += " (live)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", name, in.Where, state, orDash(g.From), orDash(g.To), g.Messages,
			timeOrDash(g.Started), timeOrDash(g.Finished))
	}
	if err := w.Flush(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return 1
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
