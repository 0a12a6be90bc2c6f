package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/audit"
)

// runAudit is `atlas audit`: re-derive every recorded result and check the history.
// Exit codes: 0 everything matches, 1 something diverges, 2 the audit could not run.
func runAudit(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	lc.register(fs)
	from := fs.String("from", "", "first request to audit: an RFC 3339 time, or offsets on the request topic as PARTITION:OFFSET,... (default: the beginning)")
	to := fs.String("to", "", "end of the requests to audit, excluded: a time or offsets as for --from (default: the end)")
	model := fs.String("model", "", "audit only the requests answered with (or asking for) this model id")
	report := fs.String("report", "", "write the JSON report to this file (- for standard output)")
	workers := fs.Int("workers", 0, "parallel re-solves (default: every core)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: atlas audit [flags]\n\nRe-runs the engine for every recorded request against the model version its result\nnames and compares the result bit for bit; checks one result per request, a request and\na model version behind every result, and model hashes. Exit 0: everything matches;\n1: something diverges (each divergence is listed with its log position); 2: error.")
		fs.PrintDefaults()
	}
	if err := parseFlags(ctx, fs, args); err != nil || fs.NArg() > 0 {
		if err == nil {
			fs.Usage()
		}
		return 2
	}
	opt := audit.Options{Topics: lc.topics, ModelID: *model, Workers: *workers}
	var err error
	if opt.From, err = parsePosition(*from); err != nil {
		fmt.Fprintf(stderr, "atlas audit: --from: %v\n", err)
		return 2
	}
	if opt.To, err = parsePosition(*to); err != nil {
		fmt.Fprintf(stderr, "atlas audit: --to: %v\n", err)
		return 2
	}
	logger := lc.logger(stderr, "audit")
	o, err := openLog(ctx, &lc)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 2
	}
	defer o.close()
	start, last, lastN := time.Now(), time.Now(), int64(0)
	opt.Progress = func(read, checked int64) {
		if d := time.Since(last); d >= 2*time.Second {
			logger.Info().Int64("requests_read", read).Int64("checked", checked).
				Float64("per_second", float64(checked-lastN)/d.Seconds()).Msg("auditing")
			last, lastN = time.Now(), checked
		}
	}
	rep, err := audit.Run(ctx, o.log, opt)
	if err != nil {
		logger.Error().Err(err).Msg("audit failed")
		return 2
	}
	logger.Info().Int64("requests", rep.Counts.Requests).Dur("took", time.Since(start)).
		Float64("per_second", float64(rep.Counts.Requests)/time.Since(start).Seconds()).Msg("audit done")
	rep.Source = lc.describe()
	summary(stdout, rep)
	if *report != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		b = append(b, '\n')
		if *report == "-" {
			_, err = stdout.Write(b)
		} else {
			err = os.WriteFile(*report, b, 0o644)
		}
		if err != nil {
			logger.Error().Err(err).Msg("cannot write the report")
			return 2
		}
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// parsePosition reads "" (none), an RFC 3339 time, or "PARTITION:OFFSET,...".
func parsePosition(s string) (streams.Position, error) {
	if s == "" {
		return streams.Position{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return streams.Position{Time: t}, nil
	}
	offs := map[int]int64{}
	for _, part := range strings.Split(s, ",") {
		p, o, ok := strings.Cut(strings.TrimSpace(part), ":")
		pn, err1 := strconv.Atoi(p)
		on, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || pn < 0 || on < 0 {
			return streams.Position{}, fmt.Errorf("%q is neither an RFC 3339 time nor PARTITION:OFFSET,...", s)
		}
		offs[pn] = on
	}
	return streams.Position{Offsets: offs}, nil
}

// summary prints the report for people.
func summary(w io.Writer, rep *audit.Report) {
	c := rep.Counts
	fmt.Fprintf(w, "audit of %s (%s) in %.1fs\n", rep.Source, rep.Scope, rep.Seconds)
	fmt.Fprintf(w, "  requests:      %d audited (%d duplicate request events, %d dead-lettered messages, %d of other models)\n",
		c.Requests, c.DuplicateRequests, c.DeadLetters, c.OutOfScope)
	fmt.Fprintf(w, "  results:       %d events, %d byte-identical redeliveries\n", c.ResultEvents, c.RedeliveredResults)
	fmt.Fprintf(w, "  re-derived:    %d solved, %d rejections, %d rejected for their model (form checked)\n",
		c.Resolved, c.Rejections, c.ModelRejections)
	fmt.Fprintf(w, "  models:        %d events, %d versions\n", c.ModelEvents, c.ModelVersions)
	show := func(title string, fs []audit.Finding) {
		if len(fs) == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", title, len(fs))
		for i, f := range fs {
			if i == 50 {
				fmt.Fprintf(w, "  … %d more in the report\n", len(fs)-50)
				break
			}
			fmt.Fprintf(w, "  %s at %s", f.Kind, f.At)
			if f.RequestID != "" {
				fmt.Fprintf(w, " request %s", f.RequestID)
			}
			if f.ModelID != "" {
				fmt.Fprintf(w, " model %s v%d", f.ModelID, f.ModelVersion)
			}
			fmt.Fprintf(w, ": %s\n", f.Detail)
			for _, d := range f.Differences {
				fmt.Fprintf(w, "      %s\n", d)
			}
			for j, r := range f.Related {
				if j == 5 {
					fmt.Fprintf(w, "      … and %d more\n", len(f.Related)-5)
					break
				}
				fmt.Fprintf(w, "      see %s\n", r)
			}
		}
	}
	show("DIVERGENCES", rep.Divergences)
	show("notes", rep.Notes)
	if rep.OK {
		fmt.Fprintln(w, "OK: every recorded result matches")
	} else {
		fmt.Fprintf(w, "FAILED: %d divergence(s)\n", len(rep.Divergences))
	}
}
