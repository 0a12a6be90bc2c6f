package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// runConfig is `atlas config print [ROLE] [--config FILE] [ROLE's flags...]`: the
// effective configuration of a role (serve by default), as YAML for --config.
func runConfig(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	const use = "usage: atlas config print [ROLE] [--config FILE] [flags of ROLE...]   (ROLE: serve by default)"
	if len(args) == 0 || args[0] != "print" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stdout, use)
			return 0
		}
		fmt.Fprintln(stderr, use)
		return 2
	}
	args = args[1:]
	role := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		role, args = args[0], args[1:]
	}
	cmd, ok := commands()[role]
	if !ok || role == "config" {
		fmt.Fprintf(stderr, "atlas config print: unknown role %q\n%s\n", role, use)
		return 2
	}
	// The role parses its flags as it would to run, and parseFlags stops it there.
	p := &configPrinter{w: stdout}
	code := cmd.run(withConfigPrinter(ctx, p), args, strings.NewReader(""), io.Discard, stderr)
	if p.printed {
		return 0
	}
	if code == 0 {
		fmt.Fprintf(stderr, "atlas config print: %s has no configuration\n", role)
		return 2
	}
	return code
}
