package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/clickhouse"
)

var scriptsDir = filepath.Join(root, "deploy", "scripts")

func scripts(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(scriptsDir, "*.sh"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in %s: %v", scriptsDir, err)
	}
	return files
}

// script runs a deploy script with env added to a minimal environment.
func script(t *testing.T, name string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(scriptsDir, name), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return exitCode(err), out.String(), errb.String()
}

func TestScriptsLint(t *testing.T) {
	libs, _ := filepath.Glob(filepath.Join(scriptsDir, "lib", "*.sh"))
	for _, f := range append(scripts(t), libs...) {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
	for _, f := range scripts(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("#!/usr/bin/env bash\n")) || !bytes.Contains(b, []byte("\nset -euo pipefail\n")) {
			t.Errorf("%s: want a bash shebang and set -euo pipefail", f)
		}
		if fi, err := os.Stat(f); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", f)
		}
		name := filepath.Base(f)
		if code, out, _ := script(t, name, nil, "--help"); code != 0 || !strings.HasPrefix(out, "Usage: "+name) || !strings.Contains(out, "--dry-run") {
			t.Errorf("%s --help: exit %d, want 0 and usage text with --dry-run:\n%s", name, code, out)
		}
		if code, _, errs := script(t, name, nil); code != 2 || !strings.Contains(errs, "Usage: ") {
			t.Errorf("%s without arguments: exit %d, want 2 and the usage on stderr", name, code)
		}
		if code, _, errs := script(t, name, nil, "--no-such-option", "x"); code != 2 || !strings.Contains(errs, "unknown option") {
			t.Errorf("%s --no-such-option: exit %d, stderr %q", name, code, errs)
		}
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed (apt-get install shellcheck): bash -n only")
	}
	args := append([]string{"-x", "-P", "SCRIPTDIR"}, append(scripts(t), libs...)...)
	if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// fakeKubectl is a kubectl for the rolling update's tests: it records its arguments,
// answers `get` with the current image, and fails `rollout status` of the deployment
// named in FAIL_ROLLOUT. The smoke test is a fake atlas exiting SMOKE_EXIT.
const fakeKubectl = `#!/usr/bin/env bash
echo "kubectl $*" >>"$CALLS"
case " $* " in
  *" get "*) echo "registry.example.com/atlas:1.0.0" ;;
  *" rollout status deployment/${FAIL_ROLLOUT:-none} "*) exit 1 ;;
esac
`

const fakeAtlas = `#!/usr/bin/env bash
echo "atlas $* key=${ATLAS_SMOKE_API_KEY:-}" >>"$CALLS"
exit "${SMOKE_EXIT:-0}"
`

func TestRollingUpdate(t *testing.T) {
	bin := t.TempDir()
	for name, body := range map[string]string{"kubectl": fakeKubectl, "atlas": fakeAtlas} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(t *testing.T, env []string, args ...string) (int, []string, string) {
		t.Helper()
		calls := filepath.Join(t.TempDir(), "calls")
		env = append(env, "CALLS="+calls, "ATLAS_SMOKE_API_KEY=k-123")
		args = append([]string{"--kubectl", filepath.Join(bin, "kubectl"), "--atlas", filepath.Join(bin, "atlas")}, args...)
		code, _, errs := script(t, "rolling-update.sh", env, args...)
		b, _ := os.ReadFile(calls)
		return code, strings.Split(strings.TrimSpace(string(b)), "\n"), errs
	}
	// writes keeps the calls that change the cluster, and the smoke test.
	writes := func(calls []string) []string {
		var out []string
		for _, c := range calls {
			if strings.Contains(c, " set image ") || strings.Contains(c, " rollout undo ") || strings.HasPrefix(c, "atlas ") {
				out = append(out, c)
			}
		}
		return out
	}
	const img = "registry.example.com/atlas:1.1.0"
	set := func(d string) string { return "kubectl -n atlas set image deployment/" + d + " atlas=" + img }
	undo := func(d string) string { return "kubectl -n atlas rollout undo deployment/" + d }
	smoke := "atlas smoke --url https://atlas.example.com key=k-123"

	t.Run("success", func(t *testing.T) {
		code, calls, errs := run(t, nil, "--url", "https://atlas.example.com", img)
		want := []string{set("atlas-processor"), set("atlas-projector"), set("atlas-api"), smoke}
		if code != 0 || !reflect.DeepEqual(writes(calls), want) {
			t.Errorf("exit %d, calls\n%s\nwant\n%s\n%s", code, strings.Join(writes(calls), "\n"), strings.Join(want, "\n"), errs)
		}
	})
	t.Run("smoke tests fail: everything rolled back, last first", func(t *testing.T) {
		code, calls, errs := run(t, []string{"SMOKE_EXIT=1"}, "--url", "https://atlas.example.com", img)
		want := []string{set("atlas-processor"), set("atlas-projector"), set("atlas-api"), smoke,
			undo("atlas-api"), undo("atlas-projector"), undo("atlas-processor")}
		if code != 1 || !reflect.DeepEqual(writes(calls), want) {
			t.Errorf("exit %d, calls\n%s\nwant\n%s\n%s", code, strings.Join(writes(calls), "\n"), strings.Join(want, "\n"), errs)
		}
	})
	t.Run("a rollout stalls: what was updated is rolled back, no smoke test", func(t *testing.T) {
		code, calls, errs := run(t, []string{"FAIL_ROLLOUT=atlas-projector"}, "--url", "https://atlas.example.com", img)
		want := []string{set("atlas-processor"), set("atlas-projector"), undo("atlas-projector"), undo("atlas-processor")}
		if code != 1 || !reflect.DeepEqual(writes(calls), want) {
			t.Errorf("exit %d, calls\n%s\nwant\n%s\n%s", code, strings.Join(writes(calls), "\n"), strings.Join(want, "\n"), errs)
		}
	})
	t.Run("dry run changes nothing", func(t *testing.T) {
		code, calls, errs := run(t, nil, "--dry-run", "-n", "prod", "--url", "https://atlas.example.com", img)
		if code != 0 || len(writes(calls)) != 0 {
			t.Errorf("exit %d, changes %v", code, writes(calls))
		}
		if !strings.Contains(errs, "dry-run: "+filepath.Join(bin, "kubectl")+" -n prod set image deployment/atlas-api atlas="+img) {
			t.Errorf("the dry run does not show the commands:\n%s", errs)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		if code, calls, _ := run(t, nil, "--url", "https://atlas.example.com", "atlas"); code == 0 || len(writes(calls)) != 0 {
			t.Errorf("an image without a tag: exit %d, calls %v", code, calls)
		}
		if code, calls, _ := run(t, nil, img); code == 0 || len(writes(calls)) != 0 {
			t.Errorf("no --url and no --skip-smoke: exit %d, calls %v", code, calls)
		}
	})
}

// TestBackupAndRestore backs up a real event log (embedded JetStream, through atlas
// export) and a real ClickHouse read model (a throwaway database on the local server),
// restores both elsewhere with restore.sh, and compares, in each ClickHouse mode the
// server supports (dump, and snapshot: FREEZE on 18.16, BACKUP on current releases).
func TestBackupAndRestore(t *testing.T) {
	chHTTP := os.Getenv("ATLAS_CLICKHOUSE_HTTP_URL")
	if chHTTP == "" {
		chHTTP = "http://127.0.0.1:18123"
	}
	chAddr := os.Getenv("ATLAS_CLICKHOUSE_ADDR")
	if chAddr == "" {
		chAddr = "127.0.0.1:19000"
	}
	if resp, err := http.Get(chHTTP + "/ping"); err != nil {
		if os.Getenv("ATLAS_CLICKHOUSE_REQUIRED") != "" {
			t.Fatalf("ClickHouse HTTP at %s (ATLAS_CLICKHOUSE_REQUIRED is set): %v", chHTTP, err)
		}
		t.Skipf("ClickHouse HTTP at %s unreachable (deploy/local/clickhouse.sh start): %v", chHTTP, err)
	} else {
		resp.Body.Close()
	}
	ctx := context.Background()

	// The log: a model and requests published into an embedded log.
	logA := t.TempDir()
	produce := exec.Command(atlasBin, "produce", "--data-dir", logA, filepath.Join(root, "examples", "acme-model.json"), filepath.Join(root, "examples", "acme-requests.ndjson"))
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("atlas produce: %v\n%s", err, out)
	}

	// The read model: a batch of every kind of row in a throwaway database.
	src := "atlas_deploytest_" + randomHex(t)
	t.Cleanup(func() { dropDatabase(t, chHTTP, src) })
	st := openStore(t, ctx, chAddr, src)
	if err := st.Apply(ctx, sampleBatch()); err != nil {
		t.Fatalf("apply: %v", err)
	}
	want := readModel(t, ctx, st)

	for _, mode := range []string{"dump", "snapshot"} {
		t.Run(mode, func(t *testing.T) {
			dest := t.TempDir()
			env := []string{"ATLAS_DATA_DIR=" + logA, "ATLAS_LOG=jetstream", "CLICKHOUSE_URL=" + chHTTP}
			code, out, errs := script(t, "backup.sh", env, "--atlas", atlasBin, "--clickhouse-database", src, "--clickhouse-mode", mode, dest)
			if code != 0 {
				t.Fatalf("backup.sh: exit %d\n%s", code, errs)
			}
			backup := strings.TrimSpace(out)
			manifest, err := os.ReadFile(filepath.Join(backup, "MANIFEST"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("MANIFEST:\n%s", manifest)

			// A dry run of the restore writes nothing.
			dry := "atlas_deploytest_" + randomHex(t)
			t.Cleanup(func() { dropDatabase(t, chHTTP, dry) })
			logDry := t.TempDir()
			envDry := []string{"ATLAS_DATA_DIR=" + logDry, "ATLAS_LOG=jetstream", "CLICKHOUSE_URL=" + chHTTP}
			if code, _, errs := script(t, "restore.sh", envDry, "--dry-run", "--atlas", atlasBin, "--clickhouse-database", dry, backup); code != 0 {
				t.Fatalf("restore.sh --dry-run: exit %d\n%s", code, errs)
			} else if !strings.Contains(errs, "dry-run: ") {
				t.Errorf("the dry run printed no plan:\n%s", errs)
			}
			if exists(t, chHTTP, dry) {
				t.Errorf("the dry run created database %s", dry)
			}

			// The real restore, into another log and another database.
			dst := "atlas_deploytest_" + randomHex(t)
			logB := t.TempDir()
			t.Cleanup(func() { dropDatabase(t, chHTTP, dst) })
			envB := []string{"ATLAS_DATA_DIR=" + logB, "ATLAS_LOG=jetstream", "CLICKHOUSE_URL=" + chHTTP}
			if code, _, errs := script(t, "restore.sh", envB, "--atlas", atlasBin, "--clickhouse-database", dst, backup); code != 0 {
				t.Fatalf("restore.sh: exit %d\n%s", code, errs)
			}
			if got := readModel(t, ctx, openStore(t, ctx, chAddr, dst)); !reflect.DeepEqual(got, want) {
				t.Errorf("restored read model differs:\n got %+v\nwant %+v", got, want)
			}
			if a, b := exportMessages(t, logA), exportMessages(t, logB); len(a) == 0 || !reflect.DeepEqual(a, b) {
				t.Errorf("restored log: %d messages, the original %d (or they differ)", len(b), len(a))
			}

			// Restoring again into what now holds data is refused, and changes nothing.
			if code, _, errs := script(t, "restore.sh", envB, "--atlas", atlasBin, "--no-log", "--clickhouse-database", dst, backup); code == 0 || !strings.Contains(errs, "already holds") {
				t.Errorf("a second restore into %s: exit %d\n%s", dst, code, errs)
			}

			// A damaged backup is refused before anything is done.
			sql := filepath.Join(backup, "clickhouse", "results.sql")
			if err := os.WriteFile(sql, []byte("CREATE TABLE x (a String) ENGINE = Memory\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			other := "atlas_deploytest_" + randomHex(t)
			t.Cleanup(func() { dropDatabase(t, chHTTP, other) })
			if code, _, errs := script(t, "restore.sh", envDry, "--atlas", atlasBin, "--clickhouse-database", other, backup); code == 0 || !strings.Contains(errs, "checksums do not match") {
				t.Errorf("a damaged backup: exit %d\n%s", code, errs)
			}
			if exists(t, chHTTP, other) {
				t.Errorf("the refused restore created database %s", other)
			}
		})
	}
}

func openStore(t *testing.T, ctx context.Context, addr, db string) *clickhouse.Store {
	t.Helper()
	st, err := clickhouse.Open(ctx, clickhouse.Config{Addr: []string{addr}, Database: db})
	if err != nil {
		t.Fatalf("clickhouse at %s: %v", addr, err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func chQuery(t *testing.T, url, sql string) string {
	t.Helper()
	resp, err := http.Post(url+"/", "text/plain", strings.NewReader(sql))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s: %s", sql, resp.Status, b)
	}
	return strings.TrimSpace(string(b))
}

func exists(t *testing.T, url, db string) bool {
	t.Helper()
	return chQuery(t, url, fmt.Sprintf("SELECT count() FROM system.databases WHERE name = '%s'", db)) == "1"
}

func dropDatabase(t *testing.T, url, db string) {
	t.Helper()
	chQuery(t, url, "DROP DATABASE IF EXISTS "+db)
}

func sampleBatch() store.Batch {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	ub, roi := 1234.5, 1.25
	return store.Batch{
		Results: []store.Result{
			{RequestID: "req-1", ModelID: "acme-mmm", ModelVersion: 1, ModelHash: "sha256:aa", Status: "optimal", Objective: "max_kpi",
				TotalSpend: 300000, Expected: map[string]float64{"revenue": 1234.5}, UpperBound: &ub, Gap: 1e-9,
				Messages: []string{"ok"}, RequestTime: at, ResultTime: at.Add(time.Millisecond), EventID: "evt-1", Partition: 1, Offset: 7,
				Data: json.RawMessage(`{"request_id":"req-1"}`)},
			{RequestID: "req-2", ModelID: "acme-mmm", ModelVersion: 1, Status: "invalid", Rejected: true,
				Errors: []store.FieldError{{Field: "constraints.total", Message: "must be positive"}}, RequestTime: at, ResultTime: at,
				EventID: "evt-2", Partition: 2, Offset: 3, Data: json.RawMessage(`{"request_id":"req-2"}`)},
		},
		Allocations: []store.Allocation{
			{RequestID: "req-1", Channel: "tv", Spend: 100000, Response: 600, ROI: &roi, AtBound: "min"},
			{RequestID: "req-1", Channel: "digital", Spend: 200000, Response: 634.5},
		},
		Models:      []store.Model{{ModelID: "acme-mmm", Version: 1, Hash: "sha256:aa", Published: at, EventID: "evt-0", Data: json.RawMessage(`{"model_id":"acme-mmm"}`)}},
		Audit:       []store.AuditEvent{{EventID: "evt-1", Type: "atlas.optimization.completed.v1", Topic: "atlas.results", Partition: 1, Offset: 7, Key: "req-1", Time: at, ContentHash: "sha256:bb", RequestID: "req-1", Raw: json.RawMessage(`{}`)}},
		DeadLetters: []store.DeadLetter{{Topic: "atlas.requests", Partition: 0, Offset: 9, Reason: "not JSON", Time: at, Raw: "{nope"}},
		Checkpoint:  map[string]map[int]int64{"atlas.results": {1: 8, 2: 4}},
		Projector:   "atlas-projector",
	}
}

// readModelRows is everything the API could read of sampleBatch.
type readModelRows struct {
	Results     []store.Result
	Allocations []store.Allocation
	Models      []store.Model
	Audit       []store.AuditEvent
	DeadLetters []store.DeadLetter
	Checkpoint  map[string]map[int]int64
}

func readModel(t *testing.T, ctx context.Context, st *clickhouse.Store) readModelRows {
	t.Helper()
	var m readModelRows
	var err error
	for _, id := range []string{"req-1", "req-2"} {
		r, ok, err := st.Result(ctx, id)
		if err != nil || !ok {
			t.Fatalf("result %s: %v (found %v)", id, err, ok)
		}
		m.Results = append(m.Results, r)
	}
	if m.Allocations, err = st.Allocations(ctx, "req-1"); err != nil {
		t.Fatal(err)
	}
	if m.Models, err = st.Models(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Audit, err = st.Audit(ctx, "req-1"); err != nil {
		t.Fatal(err)
	}
	if m.DeadLetters, err = st.DeadLetters(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if m.Checkpoint, err = st.Checkpoint(ctx, "atlas-projector"); err != nil {
		t.Fatal(err)
	}
	if len(m.Allocations) != 2 || len(m.Models) != 1 || len(m.Audit) != 1 || len(m.DeadLetters) != 1 || len(m.Checkpoint) != 1 {
		t.Fatalf("read model incomplete: %+v", m)
	}
	return m
}

// exportMessages is the log's messages as `atlas export` writes them, without the
// archive's header and trailer (which name the source and the time of the export).
func exportMessages(t *testing.T, dataDir string) []string {
	t.Helper()
	out, err := exec.Command(atlasBin, "export", "--data-dir", dataDir, "--log", "jetstream", "--out", "-").Output()
	if err != nil {
		t.Fatalf("atlas export: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		return nil
	}
	return lines[1 : len(lines)-1]
}
