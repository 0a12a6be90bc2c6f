package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

const maxDiffs = 20

// diff lists where two events differ, as "path: recorded → recomputed" with numbers in
// their exact JSON text (a last-bit difference shows). It compares the JSON trees, so
// key order does not count; bytes that are not JSON are compared whole.
func diff(recorded, recomputed []byte) []string {
	var a, b any
	da := json.NewDecoder(bytes.NewReader(recorded))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(recomputed))
	db.UseNumber()
	if da.Decode(&a) != nil || db.Decode(&b) != nil {
		return []string{fmt.Sprintf("bytes: %.200q → %.200q", recorded, recomputed)}
	}
	var out []string
	walk("", a, b, &out)
	if len(out) == 0 {
		// Same JSON, different bytes (formatting, key order): still not what the
		// processor writes.
		out = append(out, "bytes: the same JSON written differently")
	}
	return out
}

func walk(path string, a, b any, out *[]string) {
	if len(*out) >= maxDiffs {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(join(path, k), av[k], bv[k], out)
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			break
		}
		for i := range av {
			walk(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i], out)
		}
		return
	}
	if !equal(a, b) {
		*out = append(*out, fmt.Sprintf("%s: %s → %s", path, show(a), show(b)))
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func equal(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func show(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	if len(b) > 120 {
		return string(b[:120]) + "…"
	}
	return string(b)
}

// engineOnly reports whether every difference is in the engine's metadata (version,
// algorithm, iteration and node counts), which describes how a result was found and
// may change with the engine without the result changing.
func engineOnly(diffs []string) bool {
	for _, d := range diffs {
		if !strings.HasPrefix(d, "data.engine.") {
			return false
		}
	}
	return len(diffs) > 0
}
