// Package deploy holds only tests: they check the deployment artefacts (the
// Dockerfile, docker-compose.yml, the Kubernetes manifests, the Prometheus, alerting
// and Grafana configuration, the scripts) against each other and against the binary,
// so that a typo, a renamed flag or a renamed metric fails CI rather than a deploy.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// root is the repository root, relative to this package's directory.
const root = ".."

// atlasBin is the atlas binary built once for the package's tests (TestMain).
var atlasBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atlas-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	atlasBin = filepath.Join(dir, "atlas")
	build := exec.Command("go", "build", "-o", atlasBin, "./cmd/atlas")
	build.Dir = root
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building atlas:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// roleFlags is what `atlas <role> -h` documents: each ATLAS_* variable the role reads,
// with the default of its flag ("" when none is shown).
type roleFlags map[string]string

var (
	flagLineRE = regexp.MustCompile(`^\s+-([a-z0-9-]+)`)
	envRE      = regexp.MustCompile(`\[(ATLAS_[A-Z0-9_]+)\]`)
	defaultRE  = regexp.MustCompile(`\(default "?(.*?)"?\)\s*$`)
)

// flagsOf runs `atlas <role> -h` and collects the variables it names.
func flagsOf(t *testing.T, role string) roleFlags {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(atlasBin, role, "-h")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // defaults, not this shell's ATLAS_*
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("atlas %s -h: %v", role, err)
	}
	flags := roleFlags{}
	// A flag is a "  -name type" line followed by its indented description, which
	// ends with [ATLAS_NAME] and maybe (default ...).
	var desc []string
	flush := func() {
		text := strings.Join(desc, " ")
		if m := envRE.FindStringSubmatch(text); m != nil {
			def := ""
			if d := defaultRE.FindStringSubmatch(text); d != nil {
				def = d[1]
			}
			flags[m[1]] = def
		}
		desc = nil
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if flagLineRE.MatchString(line) {
			flush()
		}
		desc = append(desc, strings.TrimSpace(line))
	}
	flush()
	if len(flags) == 0 {
		t.Fatalf("atlas %s -h names no ATLAS_* variable:\n%s", role, out.String())
	}
	return flags
}

// listenPort is the port a role listens on for its health, readiness and metrics
// endpoints, given the environment a deployment sets: the variable if set, else the
// flag's default.
func listenPort(t *testing.T, role string, flags roleFlags, env map[string]string) string {
	t.Helper()
	v := listenVar(role)
	addr, ok := env[v]
	if !ok {
		def, known := flags[v]
		if !known {
			t.Fatalf("atlas %s -h does not document %s", role, v)
		}
		addr = def
	}
	i := strings.LastIndex(addr, ":")
	if i < 0 || addr[i+1:] == "" {
		t.Fatalf("%s=%q for %s: no port", v, addr, role)
	}
	return addr[i+1:]
}

// listenVar names the variable of the address serving /health and /ready: the API
// serves them next to the API, the other roles on their metrics address.
func listenVar(role string) string {
	if role == "api" || role == "serve" {
		return "ATLAS_HTTP_ADDR"
	}
	return "ATLAS_METRICS_ADDR"
}

// secretVar reports whether a variable holds a credential, which must come from a
// Secret (Kubernetes) or the operator's environment (compose), never the repository.
func secretVar(name string) bool {
	for _, suffix := range []string{"_PASSWORD", "_SECRET", "_TOKEN", "API_KEYS"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// A metric is declared by the Name of a collector's options, or by the name of a
// descriptor (prometheus.NewDesc) of a custom collector.
var metricNameRE = regexp.MustCompile(`(?:\bName:\s*|\bNewDesc\(\s*)"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// registeredMetrics is every metric name a Prometheus collector in the Go sources
// declares (Name: "..." in the *Opts literals, prometheus.NewDesc("...")), with the
// series a histogram adds, and the ones Prometheus itself provides.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true, "scrape_duration_seconds": true}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".local", "bin", "data", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("prometheus")) {
			return nil
		}
		for _, m := range metricNameRE.FindAllSubmatch(b, -1) {
			n := string(m[1])
			names[n] = true
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[n+suffix] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkMetrics reports each name in used that no collector registers.
func checkMetrics(t *testing.T, where string, used []string, registered map[string]bool) {
	t.Helper()
	if len(used) == 0 {
		t.Errorf("%s: uses no metric at all", where)
	}
	for _, n := range used {
		if !registered[n] {
			t.Errorf("%s: metric %s is not registered by any collector in the Go sources", where, n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestFlagsOfParsesTheHelp(t *testing.T) {
	// The parser must see what the cross-checks rely on: a variable with a default and
	// one without.
	flags := flagsOf(t, "process")
	if got := flags["ATLAS_METRICS_ADDR"]; got != ":9090" {
		t.Errorf("ATLAS_METRICS_ADDR default %q, want :9090", got)
	}
	if _, ok := flags["ATLAS_NATS_URL"]; !ok {
		t.Errorf("ATLAS_NATS_URL missing from %v", sortedKeys(flags))
	}
	if _, ok := flags["ATLAS_STORE"]; ok {
		t.Error("the processor has no store, yet ATLAS_STORE was found in its flags")
	}
}
