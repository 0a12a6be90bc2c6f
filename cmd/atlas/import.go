package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/atlas-mmm/atlas/streams/archive"
)

// runImport is `atlas import`: an archive into an empty log.
func runImport(ctx context.Context, args []string, stdin io.Reader, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	lc.register(fs)
	check := fs.Bool("check", false, "only read and verify the archive (lines, counts, checksum); write nothing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: atlas import [flags] FILE|-\n\nAppends an archive written by `atlas export` to an empty log, keeping keys, values,\ntimes and order; the topics are created with the archive's partition counts and mapped\nby role onto --topic-*. A target topic that holds messages is refused.")
		fs.PrintDefaults()
	}
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	logger := lc.logger(stderr, "import")
	var in io.ReadCloser = io.NopCloser(stdin)
	if name := fs.Arg(0); name != "-" {
		var err error
		if in, err = archive.Open(name); err != nil {
			logger.Error().Err(err).Msg("cannot open the archive")
			return 1
		}
	}
	defer in.Close()
	r, err := archive.NewReader(in)
	if err != nil {
		logger.Error().Err(err).Msg("cannot read the archive")
		return 1
	}
	h := r.Header()
	logger.Info().Str("source", h.Source).Time("created", h.Created).Str("range", h.Range).Interface("topics", h.Topics).Msg("archive")
	prog := newProgress(logger, "imported")
	if *check {
		st, err := archive.Verify(r)
		if err != nil {
			logger.Error().Err(err).Msg("the archive is damaged")
			return 1
		}
		prog.done(st)
		return 0
	}
	o, err := lc.open(ctx)
	if err != nil {
		logger.Error().Err(err).Msg("cannot open the event log")
		return 1
	}
	defer o.close()
	st, err := archive.Import(ctx, o.log, r, archive.ImportOptions{
		Topics: map[string]string{
			archive.RoleModels:     lc.topics.Models,
			archive.RoleRequests:   lc.topics.Requests,
			archive.RoleResults:    lc.topics.Results,
			archive.RoleDeadLetter: lc.topics.DeadLetters,
		},
		Progress: prog.update,
	})
	if err != nil {
		logger.Error().Err(err).Msg("import failed")
		return 1
	}
	prog.done(st)
	return 0
}
