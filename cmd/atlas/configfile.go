package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The configuration file layer. Every command parses its flags with parseFlags, which
// adds --config (or ATLAS_CONFIG) and fills in, from the YAML file it names, every flag
// that neither the command line nor its ATLAS_* variable set. Precedence is therefore,
// for every flag of every command, with nothing to register per flag:
//
//	command-line flag > ATLAS_* environment variable > config file > built-in default
//
// The file's keys are the flag names. One file can serve every role: a key that is a
// flag of another command only is ignored, and a top-level mapping named after a command
// ("serve:", "api:", ...) is a section read by that command only, whose keys win over
// the top-level ones. A key that no command knows is an error.

const configEnv = "ATLAS_CONFIG"

// Where a flag's effective value came from.
const (
	fromFlag    = "flag"
	fromEnv     = "env"
	fromFile    = "file"
	fromDefault = "default"
)

// errNotRun ends a command that was asked for its configuration, not to run.
var errNotRun = errors.New("configuration only")

// configPrinter, carried in the context, asks parseFlags to print the effective
// configuration instead of letting the command run: `atlas config print` uses it to reach
// every flag of a role, including flags added later, without a second list of them.
type configPrinter struct {
	w       io.Writer
	printed bool
}

type configPrinterKey struct{}

// flagLister, carried in the context, asks parseFlags for the names of the command's
// flags, before it parses anything.
type flagLister struct{ names map[string]bool }

type flagListerKey struct{}

// allFlagNames are the flags of every command. Each command is asked with a flag that
// none defines, so that one not built on parseFlags stops at its own fs.Parse instead
// of running.
func allFlagNames() map[string]bool {
	l := &flagLister{names: map[string]bool{}}
	ctx := context.WithValue(context.Background(), flagListerKey{}, l)
	for name, cmd := range commands() {
		if name != "config" {
			cmd.run(ctx, []string{"--atlas-list-flags"}, strings.NewReader(""), io.Discard, io.Discard)
		}
	}
	return l.names
}

func withConfigPrinter(ctx context.Context, p *configPrinter) context.Context {
	return context.WithValue(ctx, configPrinterKey{}, p)
}

// origin is where a flag's value came from, with the detail shown by config print.
type origin struct {
	kind   string // fromFlag, fromEnv, fromFile or fromDefault
	detail string // the variable, or file:line
}

// parseFlags parses args into fs, then applies the configuration file. It reports its
// own errors on fs.Output(), as fs.Parse does, so callers just return exit code 2.
func parseFlags(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if fs.Lookup("config") == nil {
		fs.String("config", envString(configEnv, ""), "YAML configuration file; keys are flag names (precedence: flag > environment > file > default) ["+configEnv+"]")
	}
	if l, ok := ctx.Value(flagListerKey{}).(*flagLister); ok {
		fs.VisitAll(func(f *flag.Flag) { l.names[f.Name] = true })
		return errNotRun
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	origins, err := applyConfigFile(fs, os.LookupEnv)
	if err != nil {
		fmt.Fprintf(fs.Output(), "atlas %s: %v\n", fs.Name(), err)
		return err
	}
	if p, ok := ctx.Value(configPrinterKey{}).(*configPrinter); ok {
		if err := printConfig(p.w, fs, origins); err != nil {
			return err
		}
		p.printed = true
		return errNotRun
	}
	return nil
}

// applyConfigFile sets, from the file named by fs's --config, the flags that the command
// line did not set and whose environment variable is unset. It returns the origin of
// every flag.
func applyConfigFile(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) (map[string]origin, error) {
	origins := map[string]origin{}
	fs.VisitAll(func(f *flag.Flag) {
		origins[f.Name] = origin{kind: fromDefault}
		if env := flagEnv(f); env != "" {
			if _, ok := lookupEnv(env); ok {
				origins[f.Name] = origin{kind: fromEnv, detail: env}
			}
		}
	})
	fs.Visit(func(f *flag.Flag) { origins[f.Name] = origin{kind: fromFlag} })

	path := fs.Lookup("config").Value.String()
	if path == "" {
		return origins, nil
	}
	entries, err := readConfigFile(path, fs.Name(), commandNames())
	if err != nil {
		return nil, err
	}
	var known map[string]bool // every command's flags, looked up once if needed
	for _, e := range entries {
		where := fmt.Sprintf("%s:%d", path, e.line)
		if e.key == "config" {
			return nil, fmt.Errorf("%s: unknown key %q (a config file cannot name another)", where, e.key)
		}
		if fs.Lookup(e.key) == nil {
			if known == nil {
				known = allFlagNames()
			}
			if known[e.key] && !e.inSection {
				continue // another role's setting
			}
			return nil, fmt.Errorf("%s: unknown key %q (atlas %s has no --%s flag)", where, e.key, fs.Name(), e.key)
		}
		if o := origins[e.key]; o.kind == fromFlag || o.kind == fromEnv {
			continue
		}
		if err := fs.Set(e.key, e.value); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, e.key, err)
		}
		origins[e.key] = origin{kind: fromFile, detail: where}
	}
	return origins, nil
}

// commandNames are the names a config file may use as sections.
func commandNames() map[string]bool {
	names := map[string]bool{}
	for n := range commands() {
		names[n] = true
	}
	return names
}

// flagEnv is the environment variable of a flag: the [ATLAS_...] that ends its usage.
func flagEnv(f *flag.Flag) string {
	u := strings.TrimSpace(f.Usage)
	if !strings.HasSuffix(u, "]") {
		return ""
	}
	i := strings.LastIndexByte(u, '[')
	if i < 0 {
		return ""
	}
	name := u[i+1 : len(u)-1]
	if !strings.HasPrefix(name, "ATLAS_") || strings.ContainsAny(name, " ,") {
		return ""
	}
	return name
}

// configEntry is one key of a config file that applies to the command.
type configEntry struct {
	key, value string
	line       int
	inSection  bool // in the command's own section, where every key must be its flag
}

// readConfigFile returns the entries of the YAML file at path that apply to command: its
// top-level keys, then those of the command's own section (so that these win). Sections
// of other commands are skipped; anything else that is not a scalar or a list of scalars
// is an error naming the key, the file and the line.
func readConfigFile(path, command string, sections map[string]bool) ([]configEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: expected a mapping of flag names to values", path, root.Line)
	}
	var top, own []configEntry
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if v.Kind == yaml.MappingNode && sections[k.Value] {
			if k.Value != command {
				continue
			}
			sec, err := mappingEntries(path, v, map[string]int{})
			if err != nil {
				return nil, err
			}
			for i := range sec {
				sec[i].inSection = true
			}
			own = append(own, sec...)
			continue
		}
		e, err := entry(path, k, v, seen)
		if err != nil {
			return nil, err
		}
		top = append(top, e)
	}
	return append(top, own...), nil
}

func mappingEntries(path string, m *yaml.Node, seen map[string]int) ([]configEntry, error) {
	var out []configEntry
	for i := 0; i+1 < len(m.Content); i += 2 {
		e, err := entry(path, m.Content[i], m.Content[i+1], seen)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// entry turns one key and value into a flag value: a scalar as written, a list of
// scalars joined with commas (the flags' list syntax), null as the empty string.
func entry(path string, k, v *yaml.Node, seen map[string]int) (configEntry, error) {
	where := fmt.Sprintf("%s:%d", path, k.Line)
	if k.Kind != yaml.ScalarNode {
		return configEntry{}, fmt.Errorf("%s: keys must be flag names", where)
	}
	if prev, ok := seen[k.Value]; ok {
		return configEntry{}, fmt.Errorf("%s: key %q repeats line %d", where, k.Value, prev)
	}
	seen[k.Value] = k.Line
	e := configEntry{key: k.Value, line: k.Line}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag != "!!null" {
			e.value = v.Value
		}
	case yaml.SequenceNode:
		parts := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return configEntry{}, fmt.Errorf("%s: %s: list items must be plain values", where, k.Value)
			}
			parts = append(parts, item.Value)
		}
		e.value = strings.Join(parts, ",")
	case yaml.AliasNode:
		if v.Alias == nil || v.Alias.Kind != yaml.ScalarNode {
			return configEntry{}, fmt.Errorf("%s: %s: expected a value", where, k.Value)
		}
		e.value = v.Alias.Value
	default:
		return configEntry{}, fmt.Errorf("%s: unknown key %q (a section must be named after a command)", where, k.Value)
	}
	return e, nil
}

// isSecret says whether a flag holds a secret, by its name: passwords, API keys, JWTs
// and their signing secrets, tokens. Paths to key and credentials files are not secrets.
func isSecret(name string) bool {
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	for _, w := range []string{"password", "passwd", "secret", "token", "api-key", "apikey", "jwt"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// printConfig writes fs's effective configuration as YAML that can be given back with
// --config: one key per flag, its origin as a comment. A secret that is set is printed
// commented out and masked, so the output can be shared and reused (secrets belong in
// the environment).
func printConfig(w io.Writer, fs *flag.FlagSet, origins map[string]origin) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# atlas %s: effective configuration (precedence: flag > ATLAS_* environment > config file > default)\n", fs.Name())
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			flags = append(flags, f)
		}
	})
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	for _, f := range flags {
		o := origins[f.Name]
		src := o.kind
		if o.detail != "" {
			src += " " + o.detail
		}
		val := f.Value.String()
		if isSecret(f.Name) && val != "" {
			fmt.Fprintf(&b, "# %s: \"********\" # %s (secret, masked)\n", f.Name, src)
			continue
		}
		scalar, err := yamlScalar(f, val)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		fmt.Fprintf(&b, "%s: %s # %s\n", f.Name, scalar, src)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// yamlScalar renders a flag's value as a YAML scalar of the flag's type, quoted when
// YAML would otherwise read a string as something else.
func yamlScalar(f *flag.Flag, val string) (string, error) {
	tag := "!!str"
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool:
			tag = "!!bool"
		case int, int64, uint, uint64:
			tag = "!!int"
		case float64:
			tag = "!!float"
		}
	}
	out, err := yaml.Marshal(&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: val})
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}
