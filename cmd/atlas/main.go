// Command atlas is Atlas's single binary: each role and tool is a subcommand.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand's name and
// returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"solve":       {"solve optimization requests offline: atlas solve [--model FILE] [FILE|-]", runSolve},
		"process":     {"run the stream processor (requests in, results out) on Kafka or JetStream", runProcess},
		"produce":     {"publish models and requests from NDJSON: atlas produce [FILE...|-]", runProduce},
		"tail":        {"follow result events as NDJSON", runTail},
		"project":     {"run the projector (log into the read models)", runProject},
		"api":         {"run the query API", runAPI},
		"serve":       {"run everything in one process on the embedded defaults (log, processor, projector, API)", runServe},
		"version":     {"print the version, build date and Go version: atlas version [--json]", runVersion},
		"smoke":       {"run the deployment smoke tests against a running API: atlas smoke --url URL", runSmoke},
		"config":      {"print the effective configuration of a role: atlas config print [ROLE] [--config FILE] [flags]", runConfig},
		"export":      {"write the log to an archive: atlas export --out FILE[.gz|.zst]", runExport},
		"import":      {"load an archive into an empty log: atlas import FILE", runImport},
		"replay":      {"rebuild the read models from the log into a new generation, switch, list, drop", runReplay},
		"audit":       {"re-derive every recorded result and check the history: atlas audit [--report FILE]", runAudit},
		"healthcheck": {"exit 0 if a health URL answers 2xx (for distroless images): atlas healthcheck [--url URL]", runHealthcheck},
	}
}

// signalContext ends on SIGINT or SIGTERM: the roles then stop gracefully.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func main() {
	if os.Getenv("GOGC") == "" {
		// The roles allocate short-lived JSON per event; a larger heap target trades a
		// little memory for markedly less GC (measured with bench/pipeline: ~7% CPU).
		debug.SetGCPercent(400)
	}
	ctx, stop := signalContext()
	code := dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "atlas: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "Atlas: certified marketing budget optimization.\n\nUsage: atlas <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'atlas <command> -h' for a command's flags.")
}
