// Command compare benchmarks the Atlas engine against the SLSQP baseline (bench/slsqp.py,
// set up as PyMC-Marketing sets it up) on the same generated problems, and checks the
// engine's answers against it.
//
//	go run ./bench/compare [-n 200] [-out DIR] [-python python3] [-cases hill10,hill8]
//
// For each case it writes DIR/<case>.requests.ndjson (requests with inline models),
// solves every request with engine.Solve and again with Prepared.Solve against the model
// prepared once (each timed as the median of -repeats runs), runs `python3 bench/slsqp.py --repeats 5` on the same file, and prints a Markdown
// report (also written to DIR/report.md; the raw results go to DIR/<case>.engine.ndjson
// and DIR/<case>.slsqp.ndjson).
//
// The objective compared is the sum of channel responses (the engine's
// expected[primary] − baseline; slsqp.py's "objective"). SLSQP is a local method, so
// its answer may fall short of the engine's; it must never exceed it. A SLSQP answer
// that is better by more than 1e-9 (relative) while honouring every constraint to within
// 1e-6·total is an engine bug: the program names those requests and exits with status 1.
// It also exits 1 when an engine result is not "optimal" or a repeated solve does not
// give the same allocation to the bit.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/atlas-mmm/atlas/bench/problems"
	"github.com/atlas-mmm/atlas/engine"
)

// Tolerances of the comparison.
const (
	shortTol = 1e-6 // SLSQP "short": its objective is below ours by more than this (relative)
	violTol  = 1e-6 // a SLSQP point is feasible when max_violation ≤ violTol·total
)

// beatTol: SLSQP "better": above ours by more than this (relative) — an engine bug (-beat-tol).
var beatTol = 1e-9

type slsqpResult struct {
	RequestID    *string            `json:"request_id"`
	Status       string             `json:"status"`
	Objective    *float64           `json:"objective"`
	Allocation   map[string]float64 `json:"allocation"`
	TotalSpend   *float64           `json:"total_spend"`
	MaxViolation *float64           `json:"max_violation"`
	ElapsedUs    *float64           `json:"elapsed_us"`
	Nit          *int               `json:"nit"`
	Nfev         *int               `json:"nfev"`
	Message      string             `json:"message"`
}

// problemRun is one problem's outcome on both sides.
type problemRun struct {
	id    string
	line  []byte // the request as written
	total float64

	status    string // engine
	messages  []string
	obj       float64 // engine: expected[primary] − baseline
	ub        float64 // engine: certificate upper bound − baseline (NaN if none)
	gap       float64
	nodes     int
	us        float64 // engine: median µs of engine.Solve (inline model validated and prepared each call)
	usPrep    float64 // engine: median µs of Prepared.Solve (model prepared once, as the processor runs)
	nondeterm bool    // repeated solves disagreed

	sl slsqpResult
}

type caseReport struct {
	c     problems.Case
	runs  []problemRun
	fails []string // loud problems found in this case
	beats []string
	errs  []string // the comparison could not run (python missing, ...)
}

func main() {
	n := flag.Int("n", 200, "problems per case")
	out := flag.String("out", filepath.Join("bench", "out"), "output directory")
	python := flag.String("python", "python3", "Python interpreter with numpy and scipy")
	script := flag.String("slsqp", filepath.Join("bench", "slsqp.py"), "path of the SLSQP baseline script")
	repeats := flag.Int("repeats", 5, "engine solves per problem; the median time is reported")
	slRepeats := flag.Int("slsqp-repeats", 5, "SLSQP solves per problem (slsqp.py --repeats)")
	flag.Float64Var(&beatTol, "beat-tol", beatTol, "relative excess of a feasible SLSQP objective over the engine's that counts as an engine bug")
	only := flag.String("cases", "", "comma-separated case names (default: all: "+caseNames()+")")
	flag.Parse()
	if *n < 1 || *repeats < 1 || *slRepeats < 1 {
		fmt.Fprintln(os.Stderr, "compare: -n, -repeats and -slsqp-repeats must be >= 1")
		os.Exit(2)
	}
	selected, err := selectCases(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}

	start := time.Now()
	var reports []*caseReport
	for _, c := range selected {
		r := runCase(c, *n, *out, *python, *script, *repeats, *slRepeats)
		reports = append(reports, r)
	}

	var md bytes.Buffer
	writeReport(&md, reports, *n, *repeats, *slRepeats, time.Since(start))
	os.Stdout.Write(md.Bytes())
	reportPath := filepath.Join(*out, "report.md")
	if err := os.WriteFile(reportPath, md.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
	}

	bad := false
	for _, r := range reports {
		for _, e := range r.errs {
			fmt.Fprintf(os.Stderr, "compare: %s: %s\n", r.c.Name, e)
			bad = true
		}
		// An engine answer that is "feasible" with its honest gap is allowed by the
		// contract; it is reported loudly but only a false certificate, a non-repeatable
		// answer or a harness error fails the run.
		if len(r.beats) > 0 {
			bad = true
		}
		for _, p := range r.runs {
			if p.nondeterm {
				bad = true
			}
		}
	}
	loud(reports, *out)
	if bad {
		os.Exit(1)
	}
}

func caseNames() string {
	var s []string
	for _, c := range problems.Cases {
		s = append(s, c.Name)
	}
	return strings.Join(s, ",")
}

func selectCases(list string) ([]problems.Case, error) {
	if list == "" {
		return problems.Cases, nil
	}
	var sel []problems.Case
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(problems.Cases, func(c problems.Case) bool { return c.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown case %q (known: %s)", name, caseNames())
		}
		sel = append(sel, problems.Cases[i])
	}
	return sel, nil
}

func runCase(c problems.Case, n int, dir, python, script string, repeats, slRepeats int) *caseReport {
	r := &caseReport{c: c}
	reqs := problems.Generate(c, n)
	reqPath := filepath.Join(dir, c.Name+".requests.ndjson")
	var buf bytes.Buffer
	for _, q := range reqs {
		b, err := json.Marshal(q)
		if err != nil {
			r.errs = append(r.errs, "marshal: "+err.Error())
			return r
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(reqPath, buf.Bytes(), 0o644); err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}

	// Engine: solve what was written, decoded the way every other entry point decodes it.
	t0 := time.Now()
	var engOut bytes.Buffer
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	for _, line := range lines {
		r.runs = append(r.runs, solveEngine(line, repeats, &engOut))
	}
	os.WriteFile(filepath.Join(dir, c.Name+".engine.ndjson"), engOut.Bytes(), 0o644)
	fmt.Fprintf(os.Stderr, "compare: %-17s engine: %d problems in %.1fs\n", c.Name, len(lines), time.Since(t0).Seconds())

	// SLSQP on the same file.
	t0 = time.Now()
	cmd := exec.Command(python, script, "--repeats", fmt.Sprint(slRepeats), reqPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	slOut, err := cmd.Output()
	os.WriteFile(filepath.Join(dir, c.Name+".slsqp.ndjson"), slOut, 0o644)
	fmt.Fprintf(os.Stderr, "compare: %-17s SLSQP:  %d problems in %.1fs\n", c.Name, len(lines), time.Since(t0).Seconds())
	if err != nil {
		r.errs = append(r.errs, fmt.Sprintf("%s %s: %v: %s", python, script, err, strings.TrimSpace(stderr.String())))
		return r
	}
	byID := map[string]slsqpResult{}
	sc := bufio.NewScanner(bytes.NewReader(slOut))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var s slsqpResult
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil || s.RequestID == nil {
			r.errs = append(r.errs, fmt.Sprintf("unreadable slsqp.py output line: %.200s", sc.Text()))
			continue
		}
		byID[*s.RequestID] = s
	}
	for i := range r.runs {
		s, ok := byID[r.runs[i].id]
		if !ok {
			r.errs = append(r.errs, "no slsqp.py result for "+r.runs[i].id)
			s = slsqpResult{Status: "missing"}
		}
		r.runs[i].sl = s
	}

	// Loud findings.
	for _, p := range r.runs {
		if p.status != engine.StatusOptimal {
			r.fails = append(r.fails, fmt.Sprintf("%s: engine status %q (gap %.3g) %s", p.id, p.status, p.gap, strings.Join(p.messages, "; ")))
		}
		if p.nondeterm {
			r.fails = append(r.fails, fmt.Sprintf("%s: repeated engine solves gave different allocations", p.id))
		}
		// A feasible SLSQP point inside the engine's certified gap is no contradiction;
		// one above the certified upper bound is: the certificate would be false.
		if p.aboveBound() {
			r.beats = append(r.beats, p.id)
		}
	}
	return r
}

// solveEngine decodes one request line and solves it repeats times.
func solveEngine(line []byte, repeats int, out *bytes.Buffer) problemRun {
	run := problemRun{line: line, ub: math.NaN(), gap: math.NaN()}
	req, err := engine.DecodeRequest(line)
	if err != nil {
		run.status = "decode error"
		run.messages = []string{err.Error()}
		return run
	}
	run.id = req.RequestID
	if req.Constraints.Total != nil && req.Constraints.Total.Exact != nil {
		run.total = *req.Constraints.Total.Exact
	}
	times := make([]float64, repeats)
	var res engine.Result
	for k := range times {
		t := time.Now()
		r := engine.Solve(nil, &req)
		times[k] = float64(time.Since(t).Nanoseconds()) / 1e3
		if k > 0 && !sameAllocation(r.Allocation, res.Allocation) {
			run.nondeterm = true
		}
		res = r
	}
	run.us = median(times)
	// The same request against a model prepared once, outside the timing: how the
	// processor answers requests, and like for like with slsqp.py, whose timing excludes
	// building its problem from the model.
	if pm, err := engine.Prepare(req.Model); err == nil {
		for k := range times {
			t := time.Now()
			r := pm.Solve(&req)
			times[k] = float64(time.Since(t).Nanoseconds()) / 1e3
			if !sameAllocation(r.Allocation, res.Allocation) {
				run.nondeterm = true
			}
		}
		run.usPrep = median(times)
	} else {
		run.usPrep = math.NaN()
	}
	res.Engine.ElapsedMicros = int64(math.Round(run.us))
	if b, err := json.Marshal(res); err == nil {
		out.Write(b)
		out.WriteByte('\n')
	}
	run.status = res.Status
	run.messages = res.Messages
	run.nodes = res.Engine.Nodes
	m := req.Model
	base := m.Baseline
	if v, ok := res.Expected[m.PrimaryKPI()]; ok {
		run.obj = v - base
	} else {
		run.obj = math.NaN()
	}
	if c := res.Certificate; c != nil {
		run.gap = c.Gap
		if c.UpperBound != nil {
			run.ub = *c.UpperBound - base
		}
	}
	return run
}

func sameAllocation(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || math.Float64bits(v) != math.Float64bits(w) {
			return false
		}
	}
	return true
}

// slsqpFeasible: SLSQP produced a point that honours every constraint to within violTol·total.
func (p *problemRun) slsqpFeasible() bool {
	s := p.sl
	return s.Objective != nil && s.MaxViolation != nil && !math.IsNaN(*s.Objective) &&
		*s.MaxViolation <= violTol*math.Max(p.total, 1)
}

// slsqpUsable: SLSQP reports success and its point is feasible.
func (p *problemRun) slsqpUsable() bool { return p.sl.Status == "ok" && p.slsqpFeasible() }

// shortfall is (ours − SLSQP's)/|ours| for a usable SLSQP answer.
func (p *problemRun) shortfall() (float64, bool) {
	if !p.slsqpUsable() || math.IsNaN(p.obj) {
		return 0, false
	}
	return (p.obj - *p.sl.Objective) / math.Max(math.Abs(p.obj), 1e-300), true
}

// slsqpExcess is (SLSQP's − ours)/|ours| for any feasible SLSQP point (successful or not).
func (p *problemRun) slsqpExcess() (float64, bool) {
	if !p.slsqpFeasible() || math.IsNaN(p.obj) {
		return 0, false
	}
	return (*p.sl.Objective - p.obj) / math.Max(math.Abs(p.obj), 1e-300), true
}

// aboveBound: a feasible SLSQP point beats the engine's certified upper bound (by more
// than beatTol relative): the certificate itself is wrong.
func (p *problemRun) aboveBound() bool {
	if !p.slsqpFeasible() || math.IsNaN(p.ub) {
		return false
	}
	return *p.sl.Objective-p.ub > beatTol*math.Max(math.Abs(p.ub), 1e-300)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// quantile is the q-quantile by the nearest-rank rule.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	k := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

// caseStats are the figures of one case.
type caseStats struct {
	n                          int
	engOptimal                 int
	engStatuses                map[string]int
	engMed, engP90, engMax     float64
	prepMed, prepP90, prepMax  float64 // Prepared.Solve
	ratioPrepMed, ratioPrepAll float64
	nodesMed, nodesMax         float64
	slMed, slP90, slMax        float64
	slOK, slFailed, slViolated int
	ratioMed, ratioOverall     float64
	usable, short              int
	shortMed, shortMedShort    float64 // median shortfall over usable answers / over the short ones
	worst                      float64
	worstID                    string
	beats, aboveUB             int
	ties                       int
	slTimed                    int
}

func stats(r *caseReport) caseStats {
	st := caseStats{n: len(r.runs), engStatuses: map[string]int{}, worst: math.NaN()}
	var eng, prep, sl, ratios, ratiosPrep, nodes, shorts, shortOnly []float64
	sumEng, sumPrep, sumSl := 0.0, 0.0, 0.0
	for i := range r.runs {
		p := &r.runs[i]
		st.engStatuses[p.status]++
		if p.status == engine.StatusOptimal {
			st.engOptimal++
		}
		eng = append(eng, p.us)
		prep = append(prep, p.usPrep)
		nodes = append(nodes, float64(p.nodes))
		switch {
		case p.sl.Status == "ok":
			st.slOK++
		default:
			st.slFailed++
		}
		if p.sl.Objective != nil && !p.slsqpFeasible() {
			st.slViolated++
		}
		if p.sl.ElapsedUs != nil {
			sl = append(sl, *p.sl.ElapsedUs)
			ratios = append(ratios, *p.sl.ElapsedUs/p.us)
			ratiosPrep = append(ratiosPrep, *p.sl.ElapsedUs/p.usPrep)
			sumEng += p.us
			sumPrep += p.usPrep
			sumSl += *p.sl.ElapsedUs
			st.slTimed++
		}
		if f, ok := p.shortfall(); ok {
			st.usable++
			shorts = append(shorts, f)
			if f > shortTol {
				st.short++
				shortOnly = append(shortOnly, f)
			} else if f >= -beatTol {
				st.ties++
			}
			if math.IsNaN(st.worst) || f > st.worst {
				st.worst, st.worstID = f, p.id
			}
		}
		if e, ok := p.slsqpExcess(); ok && e > beatTol {
			st.beats++
		}
		if p.aboveBound() {
			st.aboveUB++
		}
	}
	st.engMed, st.engP90, st.engMax = median(eng), quantile(eng, 0.9), quantile(eng, 1)
	st.nodesMed, st.nodesMax = median(nodes), quantile(nodes, 1)
	st.slMed, st.slP90, st.slMax = median(sl), quantile(sl, 0.9), quantile(sl, 1)
	st.ratioMed = median(ratios)
	st.ratioOverall = sumSl / sumEng
	st.prepMed, st.prepP90, st.prepMax = median(prep), quantile(prep, 0.9), quantile(prep, 1)
	st.ratioPrepMed = median(ratiosPrep)
	st.ratioPrepAll = sumSl / sumPrep
	st.shortMed = median(shorts)
	st.shortMedShort = median(shortOnly)
	return st
}

func us(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v >= 100:
		return commas(int64(math.Round(v))) + " µs"
	case v >= 10:
		return fmt.Sprintf("%.0f µs", v)
	default:
		return fmt.Sprintf("%.1f µs", v)
	}
}

func commas(v int64) string {
	s := fmt.Sprint(v)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if v != 0 && math.Abs(v) < 0.0001 {
		return fmt.Sprintf("%.1e %%", 100*v)
	}
	return fmt.Sprintf("%.2f %%", 100*v)
}

func times(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	if v >= 100 {
		return commas(int64(math.Round(v))) + "×"
	}
	return fmt.Sprintf("%.1f×", v)
}

func frac(k, n int) string {
	if n == 0 {
		return "0/0"
	}
	return fmt.Sprintf("%d/%d (%.0f %%)", k, n, 100*float64(k)/float64(n))
}

func writeReport(w io.Writer, reports []*caseReport, n, repeats, slRepeats int, elapsed time.Duration) {
	fmt.Fprintf(w, "## Atlas engine vs SLSQP (PyMC-Marketing style)\n\n")
	fmt.Fprintf(w, "`go run ./bench/compare -n %d`: %d generated problems per case (fixed seeds), the same NDJSON "+
		"requests for both. Times are per solve: the engine's the median of %d calls, SLSQP's the "+
		"median of %d `minimize` calls (`slsqp.py --repeats %d`, start-up and JSON excluded on both sides). "+
		"The engine is timed two ways: `engine.Solve` with the inline model (validated, hashed and compiled on "+
		"every call, as `atlas solve` does) and `Prepared.Solve` against the model prepared once (as the processor "+
		"answers requests, and like for like with slsqp.py, whose timing excludes building its problem from the "+
		"model); both include compiling the request and assembling the full result. "+
		"Objective = sum of channel responses (no baseline). \"Short\": SLSQP's objective is below the engine's by "+
		"more than %g (relative), counted over SLSQP answers that succeeded and honour every constraint to within "+
		"%g·total. \"Better\": SLSQP above the engine's by more than %g with a feasible point — an engine bug; "+
		"must be 0. \"Above bound\": of those, how many even exceed the engine's certified upper bound (a wrong "+
		"certificate); the others lie within the gap the engine reported (≤ 1e-7 for S-curves, 1e-9 for concave ones).\n\n",
		n, n, repeats, slRepeats, slRepeats, shortTol, violTol, beatTol)

	fmt.Fprintf(w, "| case | engine median: Solve / prepared | SLSQP median | speed-up, Solve (median / overall) | speed-up, prepared (median / overall) | SLSQP short | shortfall median / worst | SLSQP failed / infeasible | SLSQP better (within our gap) / above bound (bug) | engine optimal |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	all := make([]caseStats, len(reports))
	for i, r := range reports {
		st := stats(r)
		all[i] = st
		fmt.Fprintf(w, "| %s | %s / %s | %s | %s / %s | %s / %s | %s | %s / %s | %d / %d | %d / %d | %d/%d |\n",
			r.c.Name, us(st.engMed), us(st.prepMed), us(st.slMed), times(st.ratioMed), times(st.ratioOverall),
			times(st.ratioPrepMed), times(st.ratioPrepAll),
			frac(st.short, st.usable), pct(st.shortMed), pct(st.worst), st.slFailed, st.slViolated,
			st.beats, st.aboveUB, st.engOptimal, st.n)
	}
	fmt.Fprintln(w)

	for i, r := range reports {
		st := all[i]
		fmt.Fprintf(w, "### %s (n = %d)\n\n%s.\n\n", r.c.Name, st.n, r.c.About)
		if len(r.errs) > 0 {
			fmt.Fprintf(w, "**Comparison incomplete:** %s\n\n", strings.Join(r.errs, "; "))
		}
		fmt.Fprintf(w, "| | Atlas engine | SLSQP |\n|---|---:|---:|\n")
		fmt.Fprintf(w, "| solve time, median (engine: Solve / prepared) | %s / %s | %s |\n", us(st.engMed), us(st.prepMed), us(st.slMed))
		fmt.Fprintf(w, "| solve time, p90 | %s / %s | %s |\n", us(st.engP90), us(st.prepP90), us(st.slP90))
		fmt.Fprintf(w, "| solve time, max | %s / %s | %s |\n", us(st.engMax), us(st.prepMax), us(st.slMax))
		fmt.Fprintf(w, "| speed-up of the engine, median of per-problem ratios (Solve / prepared) | %s / %s | |\n", times(st.ratioMed), times(st.ratioPrepMed))
		fmt.Fprintf(w, "| speed-up of the engine, Σ SLSQP time / Σ engine time (Solve / prepared) | %s / %s | |\n", times(st.ratioOverall), times(st.ratioPrepAll))
		fmt.Fprintf(w, "| status | %s | %s |\n", engineStatuses(st), fmt.Sprintf("%d ok, %d failed", st.slOK, st.slFailed))
		fmt.Fprintf(w, "| branch-and-bound nodes, median / max | %.0f / %.0f | |\n", st.nodesMed, st.nodesMax)
		fmt.Fprintf(w, "| constraints violated by more than %g·total | 0 (certified) | %d |\n", violTol, st.slViolated)
		fmt.Fprintf(w, "| objective below the engine's by > %g (of usable answers) | | %s |\n", shortTol, frac(st.short, st.usable))
		fmt.Fprintf(w, "| objective equal to the engine's (within %g) | | %d |\n", shortTol, st.ties)
		fmt.Fprintf(w, "| shortfall, median over usable / median over short ones | | %s / %s |\n", pct(st.shortMed), pct(st.shortMedShort))
		worst := pct(st.worst)
		if st.worstID != "" && st.worst > shortTol {
			worst += " (" + st.worstID + ")"
		}
		fmt.Fprintf(w, "| shortfall, worst | | %s |\n", worst)
		fmt.Fprintf(w, "| objective above the engine's by > %g (within the certified gap unless above bound) | | **%d** |\n", beatTol, st.beats)
		fmt.Fprintf(w, "| of those, above the engine's certified upper bound | | **%d** |\n", st.aboveUB)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Whole run: %.1f s.\n", elapsed.Seconds())
}

func engineStatuses(st caseStats) string {
	var keys []string
	for k := range st.engStatuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", st.engStatuses[k], k))
	}
	return strings.Join(parts, ", ")
}

// loud prints every finding that points at an engine bug, with what reproduces it.
func loud(reports []*caseReport, dir string) {
	for _, r := range reports {
		if len(r.beats) == 0 && len(r.fails) == 0 {
			continue
		}
		fmt.Fprintf(os.Stderr, "\n!!!!!!!! %s: POSSIBLE ENGINE BUGS !!!!!!!!\n", r.c.Name)
		for _, f := range r.fails {
			fmt.Fprintf(os.Stderr, "!!! %s\n", f)
		}
		for _, id := range r.beats {
			for _, p := range r.runs {
				if p.id != id {
					continue
				}
				e, _ := p.slsqpExcess()
				where := "within the engine's reported gap"
				if p.aboveBound() {
					where = "ABOVE THE ENGINE'S CERTIFIED UPPER BOUND"
				}
				fmt.Fprintf(os.Stderr, "!!! %s: SLSQP's objective %.10g exceeds the engine's %.10g by %.3g (relative) "+
					"with max_violation %.3g (total %.6g); engine status %s, certified upper bound %.10g, gap %.3g: %s\n",
					id, *p.sl.Objective, p.obj, e, *p.sl.MaxViolation, p.total, p.status, p.ub, p.gap, where)
				fmt.Fprintf(os.Stderr, "    SLSQP allocation: %s\n", mustJSON(p.sl.Allocation))
				fmt.Fprintf(os.Stderr, "    request: %s\n", p.line)
			}
		}
		fmt.Fprintf(os.Stderr, "    (requests in %s, results in %s and %s)\n",
			filepath.Join(dir, r.c.Name+".requests.ndjson"), filepath.Join(dir, r.c.Name+".engine.ndjson"),
			filepath.Join(dir, r.c.Name+".slsqp.ndjson"))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
