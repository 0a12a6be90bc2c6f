package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/atlas-mmm/atlas/streams"
)

// runTail is `atlas tail`: print result events as NDJSON as they are appended.
func runTail(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc logConfig
	lc.register(fs)
	fromStart := fs.Bool("from-beginning", false, "start at the first result instead of the next one")
	follow := fs.Bool("follow", true, "keep waiting for new results (false: stop at the end of the log)")
	topic := fs.String("topic", "", "topic to follow (default: the result topic)")
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	o, err := lc.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "atlas tail: %v\n", err)
		return 1
	}
	defer o.close()
	name := *topic
	if name == "" {
		name = lc.topics.Results
	}
	if err := o.log.CreateTopic(ctx, name, lc.partitions); err != nil {
		fmt.Fprintf(stderr, "atlas tail: %v\n", err)
		return 1
	}
	next := map[int]int64{}
	if !*fromStart {
		if next, err = o.log.EndOffsets(ctx, name); err != nil {
			fmt.Fprintf(stderr, "atlas tail: %v\n", err)
			return 1
		}
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	for {
		err := o.log.Read(ctx, name, streams.Position{Offsets: next}, streams.Position{}, func(m streams.Message) error {
			next[m.Partition] = m.Offset + 1
			out.Write(m.Value)
			return out.WriteByte('\n')
		})
		out.Flush()
		if ctx.Err() != nil {
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "atlas tail: %v\n", err)
			return 1
		}
		if !*follow {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(200 * time.Millisecond):
		}
	}
}
