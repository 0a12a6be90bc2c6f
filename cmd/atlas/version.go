package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/atlas-mmm/atlas/engine"
)

// Set at build time with -ldflags "-X main.version=... -X main.buildDate=...".
var (
	version   = "dev"
	buildDate = "unknown"
)

// versionInfo is what `atlas version --json` prints.
type versionInfo struct {
	Version   string `json:"version"`
	BuildDate string `json:"build_date"`
	Commit    string `json:"commit,omitempty"`
	Go        string `json:"go"`
	Platform  string `json:"platform"`
	Engine    string `json:"engine"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: version, BuildDate: buildDate, Go: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Engine: engine.Version}
	// go build stamps the commit when it builds from a checkout (not with -buildvcs=false).
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

// runVersion is `atlas version [--json]`.
func runVersion(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the version as a JSON object")
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	v := currentVersion()
	if *asJSON {
		b, err := json.Marshal(v)
		if err != nil {
			fmt.Fprintf(stderr, "atlas version: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return 0
	}
	fmt.Fprintf(stdout, "atlas %s\n  built:    %s\n", v.Version, v.BuildDate)
	if v.Commit != "" {
		fmt.Fprintf(stdout, "  commit:   %s\n", v.Commit)
	}
	fmt.Fprintf(stdout, "  go:       %s (%s)\n  engine:   %s\n", v.Go, v.Platform, v.Engine)
	return 0
}
