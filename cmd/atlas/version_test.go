package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	code, out, errs := run(t, "", "version", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v["version"] != version || v["build_date"] != buildDate || v["go"] != runtime.Version() || v["engine"] == "" {
		t.Fatalf("version --json: %v", v)
	}
	code, out, _ = run(t, "", "version")
	for _, want := range []string{"atlas " + version, "built:    " + buildDate, runtime.Version()} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("version: exit %d, %q lacks %q", code, out, want)
		}
	}
}
