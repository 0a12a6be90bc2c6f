package main

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/atlas-mmm/atlas/engine"
)

// formatHeader starts every sweep file; the engine version follows it.
const formatHeader = "# atlas sweep v1"

// columns documents the line format in the file itself.
const columns = "# id coupled objective status cert_objective bound nodes"

// Record is one request's outcome: what the comparison needs and nothing that varies
// between runs of the same engine (no timings), so that two runs of one engine give
// byte-identical files.
type Record struct {
	ID        string
	Coupled   bool    // groups, ratios or a maximum share
	Objective string  // objective type; "-" for the default (max_kpi of the primary KPI)
	Status    string  // optimal, feasible, infeasible, invalid
	Value     float64 // certificate objective (the spend for min_spend); NaN without a certificate
	Bound     float64 // certificate bound: upper, or lower for min_spend; NaN without one
	Nodes     int     // branch-and-bound nodes
}

// minimises reports whether a smaller Value is better, and Bound a lower bound.
func (r *Record) minimises() bool { return r.Objective == engine.ObjMinSpend }

// hasPlan: the result carries a plan and a certificate for it.
func (r *Record) hasPlan() bool {
	return (r.Status == engine.StatusOptimal || r.Status == engine.StatusFeasible) &&
		!math.IsNaN(r.Value) && !math.IsNaN(r.Bound)
}

// record builds the line for one solved request.
func record(id string, coupled bool, req *engine.Request, res *engine.Result) Record {
	r := Record{ID: id, Coupled: coupled, Objective: req.Objective.Type, Status: res.Status,
		Value: math.NaN(), Bound: math.NaN(), Nodes: res.Engine.Nodes}
	if r.Objective == "" {
		r.Objective = "-"
	}
	if c := res.Certificate; c != nil {
		r.Value = c.Objective
		switch {
		case c.UpperBound != nil:
			r.Bound = *c.UpperBound
		case c.LowerBound != nil:
			r.Bound = *c.LowerBound
		}
	}
	return r
}

func formatFloat(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 17, 64)
}

func parseFloat(s string) (float64, error) {
	if s == "-" {
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

func (r *Record) String() string {
	return fmt.Sprintf("%s %t %s %s %s %s %d", r.ID, r.Coupled, r.Objective, r.Status,
		formatFloat(r.Value), formatFloat(r.Bound), r.Nodes)
}

// Sweep is one run: the engine that produced it and its records in file order.
type Sweep struct {
	Engine  string
	Params  string // how the requests were drawn, as the header says
	Records []Record
}

func (s *Sweep) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s engine=%s %s\n%s\n", formatHeader, s.Engine, s.Params, columns)
	for i := range s.Records {
		bw.WriteString(s.Records[i].String())
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// readSweep reads a sweep file, gzip-compressed when its name ends in .gz.
func readSweep(path string) (*Sweep, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	s, err := parseSweep(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func parseSweep(r io.Reader) (*Sweep, error) {
	sc := bufio.NewScanner(r)
	s := &Sweep{}
	seen := map[string]bool{}
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			rest, ok := strings.CutPrefix(line, formatHeader+" ")
			if !ok {
				return nil, fmt.Errorf("line 1: not a sweep file (want %q)", formatHeader)
			}
			var params []string
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "engine="); ok {
					s.Engine = v
				} else {
					params = append(params, f)
				}
			}
			if s.Engine == "" {
				return nil, fmt.Errorf("line 1: no engine= in the header")
			}
			s.Params = strings.Join(params, " ")
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 7 {
			return nil, fmt.Errorf("line %d: %d fields, want 7 (%s)", n, len(f), columns[2:])
		}
		rec := Record{ID: f[0], Objective: f[2], Status: f[3]}
		var err error
		if rec.Coupled, err = strconv.ParseBool(f[1]); err != nil {
			return nil, fmt.Errorf("line %d: coupled: %w", n, err)
		}
		if rec.Value, err = parseFloat(f[4]); err != nil {
			return nil, fmt.Errorf("line %d: cert_objective: %w", n, err)
		}
		if rec.Bound, err = parseFloat(f[5]); err != nil {
			return nil, fmt.Errorf("line %d: bound: %w", n, err)
		}
		if rec.Nodes, err = strconv.Atoi(f[6]); err != nil {
			return nil, fmt.Errorf("line %d: nodes: %w", n, err)
		}
		if seen[rec.ID] {
			return nil, fmt.Errorf("line %d: id %s appears twice", n, rec.ID)
		}
		seen[rec.ID] = true
		s.Records = append(s.Records, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if s.Engine == "" {
		return nil, fmt.Errorf("empty file, not a sweep")
	}
	return s, nil
}
