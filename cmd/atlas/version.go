package main

import (
	"context"
	"fmt"
	"io"

	"github.com/atlas-mmm/atlas/engine"
)

// Set at build time with -ldflags "-X main.version=... -X main.buildDate=...".
var (
	version   = "dev"
	buildDate = "unknown"
)

func runVersion(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "atlas %s (built %s, %s)\n", version, buildDate, engine.Version)
	return 0
}
