package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/atlas-mmm/atlas/engine"
)

// runSolve is `atlas solve [--model FILE] [FILE|-]`: it reads one request, or one per
// line (NDJSON), and writes one result per line. A malformed request still gets a result
// line (status "invalid") so that output lines match input requests; its line and field
// are reported on stderr and the exit code is 1. Infeasible requests are results, not
// errors.
func runSolve(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("solve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", "", "model JSON file, used by requests without an inline model")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: atlas solve [--model FILE] [FILE|-]\n\nReads optimization requests (one JSON document, or NDJSON) and writes one result per line.")
		fs.PrintDefaults()
	}
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	var model *engine.Prepared
	if *modelPath != "" {
		b, err := os.ReadFile(*modelPath)
		if err != nil {
			fmt.Fprintf(stderr, "atlas solve: %v\n", err)
			return 1
		}
		m, err := engine.DecodeModel(b)
		if err == nil {
			model, err = engine.Prepare(&m)
		}
		if err != nil {
			fmt.Fprintf(stderr, "atlas solve: %s: %v\n", *modelPath, err)
			return 1
		}
	}
	in := stdin
	name := "stdin"
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "atlas solve: %v\n", err)
			return 1
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	// A solve is not interruptible (the engine is pure and bounded by its node budget),
	// so an interrupt ends the command at once with what was written so far.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			out.Flush()
			fmt.Fprintln(stderr, "atlas solve: interrupted")
			os.Exit(130)
		case <-stopped:
		}
	}()
	failed := false
	err := readDocuments(in, func(line int, doc []byte, syntaxErr error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		res := solveDocument(doc, syntaxErr, model)
		if res.Status == engine.StatusInvalid {
			failed = true
			for _, e := range res.Errors {
				fmt.Fprintf(stderr, "%s:%d: %v\n", name, line, e)
			}
			if len(res.Errors) == 0 {
				for _, m := range res.Messages {
					fmt.Fprintf(stderr, "%s:%d: %s\n", name, line, m)
				}
			}
		}
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("line %d: encoding result: %w", line, err)
		}
		out.Write(b)
		return out.WriteByte('\n')
	})
	if err != nil {
		fmt.Fprintf(stderr, "atlas solve: %v\n", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

func solveDocument(doc []byte, syntaxErr error, model *engine.Prepared) engine.Result {
	fail := func(errs engine.FieldErrors) engine.Result {
		r := engine.Result{Status: engine.StatusInvalid, Errors: errs, Engine: engine.EngineInfo{Version: engine.Version}}
		return r
	}
	if syntaxErr != nil {
		return fail(engine.FieldErrors{{Message: syntaxErr.Error()}})
	}
	req, err := engine.DecodeRequest(doc)
	if err != nil {
		var fe engine.FieldErrors
		if errors.As(err, &fe) {
			return fail(fe)
		}
		return fail(engine.FieldErrors{{Message: err.Error()}})
	}
	if req.RequestID == "" {
		// Derived from the content so that solving the same file twice gives the same ids.
		sum := sha256.Sum256(doc)
		req.RequestID = "req-" + hex.EncodeToString(sum[:8])
	}
	if req.Model == nil && model == nil {
		r := fail(engine.FieldErrors{{Field: "model", Message: "no model: give --model FILE or an inline \"model\""}})
		r.RequestID = req.RequestID
		return r
	}
	start := time.Now()
	var res engine.Result
	if req.Model != nil {
		res = engine.Solve(req.Model, &req)
	} else {
		res = model.Solve(&req)
	}
	res.Engine.ElapsedMicros = time.Since(start).Microseconds()
	return res
}

// readDocuments calls fn for each JSON document in r with the line it starts on. It
// accepts one document spread over many lines as well as NDJSON: lines are gathered until
// they form a valid document; a line starting at column 0 with '{' after an incomplete
// document means that document was broken, and it is reported as a syntax error without
// losing the lines after it.
func readDocuments(r io.Reader, fn func(line int, doc []byte, syntaxErr error) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	var buf []byte
	start, lineNo := 0, 0
	flushBroken := func() error {
		if len(bytes.TrimSpace(buf)) == 0 {
			buf = buf[:0]
			return nil
		}
		var v any
		err := json.Unmarshal(buf, &v)
		if err == nil {
			err = errors.New("not a JSON object")
		}
		buf = buf[:0]
		return fn(start, nil, fmt.Errorf("invalid JSON: %v", err))
	}
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(buf) > 0 && len(line) > 0 && line[0] == '{' {
			if err := flushBroken(); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			start = lineNo
		}
		buf = append(buf, line...)
		buf = append(buf, '\n')
		if json.Valid(buf) {
			doc := append([]byte(nil), buf...)
			buf = buf[:0]
			if err := fn(start, doc, nil); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flushBroken()
}
