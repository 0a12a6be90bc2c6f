// Command sweep solves a fixed, large set of generated requests and records each
// outcome (status, certificate objective and bound, search nodes) in a text file, or
// compares such a run with an earlier file, to catch an engine change that loses
// certificates or certifies a false bound. Unit tests, fuzzing and the benchmarks'
// comparison all passed on engine 1.3.0 and 1.3.1, which had turned 30 of engine 1.2.2's
// optimal results into feasible ones; this sweep found them.
//
//	go run ./bench/sweep -out FILE                  # record a run (FILE "-" is stdout)
//	go run ./bench/sweep -compare OLD.txt           # compare a run with OLD.txt (or OLD.txt.gz)
//	go run ./bench/sweep -n 3000 -workers 2 -compare OLD.txt
//
// The requests: the engine fuzz target's generator (engine/enginegen) on draws from a
// seeded stream (seed 7; each draw 16-175 random bytes), keeping every draw with
// coupling constraints (groups, ratios, a maximum share) and every 4th of the others,
// then the first -cases problems of each bench/problems case. Ids are g<draw index> and
// the problems' request ids, so runs with a smaller -n compare on the ids they share.
//
// With -compare it prints a summary and exits 1 when an optimal result is no longer
// optimal, a feasible one lost its plan, a certified bound lies beyond the other run's
// plan by more than 1e-7 relative (in either direction), or both runs claim the same
// engine version yet differ. See bench/README.md for how to read it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sync"
	"time"

	"github.com/atlas-mmm/atlas/bench/problems"
	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/engine/enginegen"
)

// seed of the draws. Changing it (or the generator) changes every request: regenerate
// the baseline with the engine it was taken from, not with the one under test.
const seed = 7

// job is one request to solve.
type job struct {
	id      string
	coupled bool
	req     *engine.Request
}

// jobs lists the sweep's requests in file order.
func jobs(draws, cases int) []job {
	var out []job
	rng := rand.New(rand.NewSource(seed))
	for k := 0; k < draws; k++ {
		data := make([]byte, 16+rng.Intn(160))
		rng.Read(data)
		req := enginegen.Request(data)
		coupled := enginegen.Coupled(req)
		// Uncoupled requests are solved channel by channel and are cheap to cover; a
		// quarter of them keeps the run near a minute.
		if !coupled && k%4 != 0 {
			continue
		}
		out = append(out, job{fmt.Sprintf("g%d", k), coupled, req})
	}
	for _, cs := range problems.Cases {
		for _, q := range problems.Generate(cs, cases) {
			out = append(out, job{q.RequestID, cs.Coupled, q})
		}
	}
	return out
}

// run solves every job on `workers` goroutines; the records come back in job order.
func run(js []job, workers int) []Record {
	recs := make([]Record, len(js))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res := engine.Solve(nil, js[i].req)
				recs[i] = record(js[i].id, js[i].coupled, js[i].req, &res)
			}
		}()
	}
	for i := range js {
		next <- i
	}
	close(next)
	wg.Wait()
	return recs
}

func main() {
	if err := mainErr(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errFailed) {
			fmt.Fprintln(os.Stderr, "sweep:", err)
		}
		os.Exit(1)
	}
}

// errFailed: the comparison found a regression (already reported).
var errFailed = errors.New("comparison failed")

func mainErr(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	draws := fs.Int("n", 30000, "draws from the generator (about 24,000 requests at the default)")
	cases := fs.Int("cases", 200, "problems of each bench/problems case")
	workers := fs.Int("workers", 1, "solves in parallel (the output order does not depend on it)")
	out := fs.String("out", "", `write the run to this file ("-": stdout; default: stdout unless -compare is given)`)
	compare := fs.String("compare", "", "compare the run with this earlier sweep file (.gz read transparently)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *draws < 0 || *cases < 0 || *workers < 1 {
		return fmt.Errorf("-n and -cases must be ≥ 0 and -workers ≥ 1")
	}
	var old *Sweep
	if *compare != "" {
		// Read it first: a bad path should not cost a minute of solving.
		var err error
		if old, err = readSweep(*compare); err != nil {
			return err
		}
	}

	start := time.Now()
	js := jobs(*draws, *cases)
	cur := &Sweep{Engine: engine.Version, Params: fmt.Sprintf("seed=%d draws=%d cases=%d", seed, *draws, *cases),
		Records: run(js, *workers)}
	elapsed := time.Since(start)

	if *out == "" && old == nil {
		*out = "-"
	}
	switch *out {
	case "":
	case "-":
		if err := cur.write(stdout); err != nil {
			return err
		}
	default:
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := cur.write(f); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", *out, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", *out, err)
		}
	}
	fmt.Fprintf(stderr, "sweep: %d requests solved by %s in %.1fs (%d workers)\n", len(js), engine.Version, elapsed.Seconds(), *workers)
	if old == nil {
		return nil
	}
	rep := Compare(old, cur)
	// The summary goes to stdout, unless the run itself does.
	w := stdout
	if *out == "-" {
		w = stderr
	}
	rep.Print(w, *compare)
	if rep.Failed() {
		return errFailed
	}
	return nil
}
