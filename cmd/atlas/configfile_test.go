package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// unsetenv clears a variable for the test (t.Setenv restores it afterwards).
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "")
	os.Unsetenv(name)
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "atlas.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrecedence: one flag from each of the four levels, read from the values the
// role's configuration actually holds.
func TestConfigPrecedence(t *testing.T) {
	for _, v := range []string{"ATLAS_CONFIG", "ATLAS_KAFKA_BROKERS", "ATLAS_PARTITIONS", "ATLAS_TOPIC_MODELS", "ATLAS_TOPIC_RESULTS", "ATLAS_LOG_LEVEL"} {
		unsetenv(t, v)
	}
	t.Setenv("ATLAS_KAFKA_BROKERS", "env:9092")
	t.Setenv("ATLAS_TOPIC_MODELS", "env.models")
	path := writeConfig(t, `# every key below is also set at a higher level, except topic-results
kafka-brokers: file:9092
partitions: 7
topic-models: file.models
topic-results: file.results
`)
	fs := flag.NewFlagSet("process", flag.ContinueOnError)
	var lc logConfig
	lc.register(fs)
	err := parseFlags(context.Background(), fs, []string{"--config", path, "--partitions", "3", "--kafka-brokers", "flag:9092"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"flag over env and file", lc.brokers, "flag:9092"},
		{"flag over file", strconv.Itoa(lc.partitions), "3"},
		{"env over file", lc.topics.Models, "env.models"},
		{"file over default", lc.topics.Results, "file.results"},
		{"default", lc.topics.Requests, "atlas.requests"},
		{"default, nothing set", lc.logLevel, "info"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

// printed runs `atlas config print` and returns each key's value and origin comment.
func printed(t *testing.T, args ...string) (map[string][2]string, string) {
	t.Helper()
	code, out, errs := run(t, "", append([]string{"config", "print"}, args...)...)
	if code != 0 {
		t.Fatalf("config print %v: exit %d: %s", args, code, errs)
	}
	got := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "# atlas ") {
			continue
		}
		key, rest, ok := strings.Cut(strings.TrimPrefix(line, "# "), ": ")
		val, src, ok2 := strings.Cut(rest, " # ")
		if !ok || !ok2 {
			t.Fatalf("unexpected line %q", line)
		}
		got[key] = [2]string{val, src}
	}
	return got, out
}

// TestConfigPrintOrigins: config print reports, for a real role, each flag's value and
// its level; ATLAS_CONFIG names the file; the role's own section wins over the top level
// and other roles' sections are ignored.
func TestConfigPrintOrigins(t *testing.T) {
	for _, v := range []string{"ATLAS_CONFIG", "ATLAS_KAFKA_BROKERS", "ATLAS_PARTITIONS", "ATLAS_LOG_LEVEL", "ATLAS_METRICS_ADDR", "ATLAS_GROUP", "ATLAS_BATCH"} {
		unsetenv(t, v)
	}
	path := writeConfig(t, `kafka-brokers:
  - a:9092
  - b:9092
partitions: 7
log-level: debug
group: top-level
store: clickhouse   # a flag of api and project only: ignored by process
process:
  group: from-section
  batch: 64
api:
  http-addr: ":1"   # not a flag of process: ignored there
`)
	t.Setenv("ATLAS_CONFIG", path)
	t.Setenv("ATLAS_LOG_LEVEL", "warn")
	got, _ := printed(t, "process", "--partitions", "3")
	want := map[string][2]string{
		"partitions":    {"3", "flag"},
		"log-level":     {"warn", "env ATLAS_LOG_LEVEL"},
		"kafka-brokers": {"a:9092,b:9092", "file " + path + ":1"},
		"group":         {"from-section", "file " + path + ":9"},
		"batch":         {"64", "file " + path + ":10"},
		"metrics-addr":  {":9090", "default"},
		"topic-models":  {"atlas.models", "default"},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
	for _, k := range []string{"http-addr", "store"} {
		if _, ok := got[k]; ok {
			t.Errorf("process printed %s, a flag of other roles", k)
		}
	}
	if _, ok := got["config"]; ok {
		t.Error("config print lists --config itself")
	}
}

// TestConfigPrintRoundTrip: what config print writes is a config file that gives the
// same configuration back, and secrets are never shown.
func TestConfigPrintRoundTrip(t *testing.T) {
	for _, v := range []string{"ATLAS_CONFIG", "ATLAS_STORE", "ATLAS_HTTP_ADDR", "ATLAS_CLICKHOUSE_ADDR", "ATLAS_CLICKHOUSE_PASSWORD", "ATLAS_CLICKHOUSE_TLS", "ATLAS_DEFAULT_MODEL"} {
		unsetenv(t, v)
	}
	t.Setenv("ATLAS_CLICKHOUSE_PASSWORD", "hunter2-secret")
	path := writeConfig(t, "store: clickhouse\nclickhouse-tls: true\ndefault-model: \"true\"\n")
	first, out := printed(t, "api", "--config", path, "--http-addr", ":8123", "--clickhouse-addr", "ch1:9000,ch2:9000")
	if strings.Contains(out, "hunter2") {
		t.Fatalf("the password is printed:\n%s", out)
	}
	if got := first["clickhouse-password"]; got[0] != `"********"` || !strings.Contains(got[1], "masked") {
		t.Errorf("password line: %v", got)
	}
	if !strings.Contains(out, "\n# clickhouse-password:") {
		t.Errorf("a set secret must be commented out:\n%s", out)
	}
	again := writeConfig(t, out)
	unsetenv(t, "ATLAS_CLICKHOUSE_PASSWORD")
	second, _ := printed(t, "api", "--config", again)
	keys := make([]string, 0, len(first))
	for k := range first {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "clickhouse-password" {
			continue
		}
		if first[k][0] != second[k][0] {
			t.Errorf("%s: %s printed, %s read back", k, first[k][0], second[k][0])
		}
	}
	if second["default-model"][0] != `"true"` {
		t.Errorf("a string that looks like a bool must stay quoted: %v", second["default-model"])
	}
}

// TestConfigFileErrors: every command with flags takes --config, and an unknown key, a
// bad value or a broken file stops it with exit code 2 and a message naming the file,
// the line and the key.
func TestConfigFileErrors(t *testing.T) {
	unsetenv(t, "ATLAS_CONFIG")
	unsetenv(t, "ATLAS_PARTITIONS")
	unknown := writeConfig(t, "# comment\nkafka-brokerz: x:1\n")
	for name := range commands() {
		if name == "config" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			code, _, errs := run(t, "", name, "--config", unknown)
			if code != 2 || !strings.Contains(errs, unknown+`:2: unknown key "kafka-brokerz"`) {
				t.Fatalf("atlas %s with an unknown key: exit %d, stderr %q", name, code, errs)
			}
		})
	}
	cases := map[string]string{
		"partitions: many\n":           `:1: partitions: parse error`,
		"a: 1\na: 2\n":                 `:2: key "a" repeats line 1`,
		"- just\n- a list\n":           `:1: expected a mapping`,
		"log: [unclosed\n":             `yaml:`,
		"kafka:\n  brokers: x:1\n":     `:1: unknown key "kafka"`,
		"config: other.yaml\n":         `:1: unknown key "config"`,
		"serve:\n  partitionz: 1\n":    `:2: unknown key "partitionz"`,
		"serve:\n  store: sqlite\n":    `:2: unknown key "store" (atlas serve has no --store flag)`,
		"topic-models: {a: b}\nx: 1\n": `:1: unknown key "topic-models"`,
	}
	for body, want := range cases {
		path := writeConfig(t, body)
		code, _, errs := run(t, "", "config", "print", "--config", path)
		if code != 2 || !strings.Contains(errs, want) {
			t.Errorf("%q: exit %d, stderr %q, want %q", body, code, errs, want)
		}
	}
	if code, _, errs := run(t, "", "config", "print", "--config", filepath.Join(t.TempDir(), "none.yaml")); code != 2 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
}

func TestIsSecret(t *testing.T) {
	secret := []string{"clickhouse-password", "kafka-sasl-password", "nats-password", "nats-token",
		"api-keys", "admin-api-keys", "jwt-secret", "jwt", "api-key", "ATLAS_API_KEYS"}
	plain := []string{"clickhouse-user", "kafka-sasl-user", "nats-creds", "kafka-key", "nats-key", "tls-key",
		"kafka-ca", "clickhouse-cert", "http-addr", "rate-limit", "tls-cert", "require-auth"}
	for _, n := range secret {
		if !isSecret(n) {
			t.Errorf("%s should be masked", n)
		}
	}
	for _, n := range plain {
		if isSecret(n) {
			t.Errorf("%s should not be masked", n)
		}
	}
}
