package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

var dockerfile = filepath.Join(root, "deploy", "Dockerfile")

// parseDockerfile parses and lints the Dockerfile as BuildKit does; any lint warning
// is an error.
func parseDockerfile(t *testing.T) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	f, err := os.Open(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, _, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile lint %s at line %v: %s", rule, loc, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages, metaArgs
}

func commandsOf[C any](s instructions.Stage) []C {
	var out []C
	for _, c := range s.Commands {
		if c, ok := c.(C); ok {
			out = append(out, c)
		}
	}
	return out
}

func argNames(args []*instructions.ArgCommand) []string {
	var names []string
	for _, a := range args {
		for _, kv := range a.Args {
			names = append(names, kv.Key)
		}
	}
	return names
}

var ldflagsRE = regexp.MustCompile(`-ldflags\s+"([^"]*)"`)

func TestDockerfile(t *testing.T) {
	stages, metaArgs := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The build stage's Go is exactly the one go.mod asks for (the golang image does
	// not fetch another toolchain: GOTOOLCHAIN=local), so builds are reproducible.
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)$`).FindSubmatch(gomod)
	goArg := ""
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Key == "GO_VERSION" && kv.Value != nil {
				goArg = *kv.Value
			}
		}
	}
	if goLine == nil || goArg != string(goLine[1]) || !strings.Contains(build.BaseName, "${GO_VERSION}") {
		t.Errorf("build stage FROM %s with GO_VERSION=%q; go.mod says %s", build.BaseName, goArg, goLine)
	}

	// A static, reproducible build with the version stamped in, as in the Makefile.
	var goBuild string
	for _, r := range commandsOf[*instructions.RunCommand](build) {
		if line := strings.Join(r.CmdLine, " "); strings.Contains(line, "go build") {
			goBuild = line
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/atlas"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the go build step lacks %s: %s", want, goBuild)
		}
	}
	m := ldflagsRE.FindStringSubmatch(goBuild)
	if m == nil {
		t.Fatalf("no -ldflags in %q", goBuild)
	}
	checkLdflagsStampTheVersion(t, m[1], argNames(commandsOf[*instructions.ArgCommand](build)))

	// The runtime image: minimal base, uid 1000, health check through the binary.
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static or scratch", final.BaseName)
	}
	users := commandsOf[*instructions.UserCommand](final)
	if len(users) == 0 || strings.Split(users[len(users)-1].User, ":")[0] != "1000" {
		t.Errorf("USER %v, want 1000", users)
	}
	var binary string
	for _, c := range commandsOf[*instructions.CopyCommand](final) {
		if c.From == build.Name && slices.Contains(c.SourcePaths, "/out/atlas") {
			binary = c.DestPath
		}
	}
	if binary == "" {
		t.Fatal("the binary is not copied from the build stage")
	}
	eps := commandsOf[*instructions.EntrypointCommand](final)
	if len(eps) != 1 || len(eps[0].CmdLine) != 1 || eps[0].CmdLine[0] != binary || eps[0].PrependShell {
		t.Errorf("ENTRYPOINT %v, want [%q] in exec form", eps, binary)
	}
	hcs := commandsOf[*instructions.HealthCheckCommand](final)
	if len(hcs) != 1 {
		t.Fatalf("%d HEALTHCHECKs", len(hcs))
	}
	test := hcs[0].Health.Test
	if len(test) < 3 || test[0] != "CMD" || test[1] != binary || test[2] != "healthcheck" || !slices.ContainsFunc(test, func(a string) bool { return strings.HasSuffix(a, "/health") }) {
		t.Errorf("HEALTHCHECK %v, want [CMD %s healthcheck --url .../health] (no shell in the image)", test, binary)
	}
	// The subcommand exists: a refused connection is "unhealthy" (1), not "unknown
	// command" (2).
	if err := exec.Command(atlasBin, append(test[2:len(test)-1:len(test)-1], "http://127.0.0.1:1/health")...).Run(); exitCode(err) != 1 {
		t.Errorf("atlas %v against a closed port: %v, want exit 1", test[2:], err)
	}
	if got := hcs[0].Health.Test[len(test)-1]; !strings.HasSuffix(got, ":"+flagsOf(t, "serve")["ATLAS_HTTP_ADDR"][1:]+"/health") {
		t.Errorf("HEALTHCHECK URL %s is not on serve's default address (the image's default command)", got)
	}

	finalArgs := argNames(commandsOf[*instructions.ArgCommand](final))
	labels := map[string]string{}
	for _, l := range commandsOf[*instructions.LabelCommand](final) {
		for _, kv := range l.Labels {
			labels[kv.Key] = strings.Trim(kv.Value, `"`)
		}
	}
	for key, arg := range map[string]string{"org.opencontainers.image.version": "VERSION", "org.opencontainers.image.created": "BUILD_DATE"} {
		if labels[key] != "${"+arg+"}" {
			t.Errorf("LABEL %s=%q, want ${%s}", key, labels[key], arg)
		}
		if !slices.Contains(finalArgs, arg) {
			t.Errorf("ARG %s is not declared in the final stage: the label would be empty", arg)
		}
	}
	var exposed []string
	for _, e := range commandsOf[*instructions.ExposeCommand](final) {
		exposed = append(exposed, e.Ports...)
	}
	for role, v := range map[string]string{"serve": "ATLAS_HTTP_ADDR", "process": "ATLAS_METRICS_ADDR", "project": "ATLAS_METRICS_ADDR"} {
		port := listenPort(t, role, flagsOf(t, role), map[string]string{})
		if !slices.Contains(exposed, port) {
			t.Errorf("EXPOSE %v lacks %s, the default %s of atlas %s", exposed, port, v, role)
		}
	}

	// Files copied from the build context exist and are not left out by .dockerignore.
	ignored := dockerignore(t)
	for _, s := range stages {
		for _, c := range commandsOf[*instructions.CopyCommand](s) {
			if c.From != "" {
				continue
			}
			for _, src := range c.SourcePaths {
				if src == "." {
					continue
				}
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
				if ignored(src) {
					t.Errorf("COPY %s: .dockerignore leaves it out of the context", src)
				}
			}
		}
	}
}

// checkLdflagsStampTheVersion builds atlas with the Dockerfile's -ldflags and checks
// that `atlas version` prints what was passed, so a renamed variable fails here.
func checkLdflagsStampTheVersion(t *testing.T, ldflags string, args []string) {
	t.Helper()
	for _, arg := range []string{"VERSION", "BUILD_DATE"} {
		if !strings.Contains(ldflags, "${"+arg+"}") || !slices.Contains(args, arg) {
			t.Errorf("-ldflags %q: want ${%s}, declared as an ARG of the build stage", ldflags, arg)
		}
	}
	flags := strings.NewReplacer("${VERSION}", "v9.8.7-test", "${BUILD_DATE}", "2001-02-03T04:05:06Z").Replace(ldflags)
	bin := filepath.Join(t.TempDir(), "atlas")
	// Without -trimpath: the packages then come from the build cache of the binary
	// TestMain built, and only the link runs again.
	build := exec.Command("go", "build", "-ldflags", flags, "-o", bin, "./cmd/atlas")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", flags, err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "v9.8.7-test") || !strings.Contains(string(out), "2001-02-03T04:05:06Z") {
		t.Errorf("atlas version printed %q: the -ldflags %q did not set the version and build date", out, ldflags)
	}
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// dockerignore returns whether a path (relative to the repository root) is left out
// of the build context, with Docker's own matcher.
func dockerignore(t *testing.T) func(string) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return func(path string) bool {
		ok, err := pm.MatchesOrParentMatches(filepath.ToSlash(path))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
}

// TestDockerignoreKeepsTheBuildInputs: every file `go build ./cmd/atlas` reads from
// this module (sources, embedded files, go.mod, go.sum) is in the build context.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	ignored := dockerignore(t)
	for _, p := range []string{".git/HEAD", "bin/atlas", "data/store.db", "cmd/atlas/atlas.test"} {
		if !ignored(p) {
			t.Errorf("%s is sent to the build context", p)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-json", "./cmd/atlas")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pkg struct {
			Dir                 string
			Module              *struct{ Main bool }
			GoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || !pkg.Module.Main {
			continue
		}
		rel, err := filepath.Rel(abs, pkg.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range slices.Concat(pkg.GoFiles, pkg.EmbedFiles) {
			inputs = append(inputs, filepath.Join(rel, f))
		}
	}
	if len(inputs) < 20 {
		t.Fatalf("only %d build inputs found: %v", len(inputs), inputs)
	}
	for _, f := range inputs {
		if ignored(f) {
			t.Errorf(".dockerignore leaves out %s, which building atlas needs", f)
		}
	}
}
