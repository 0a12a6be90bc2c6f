package event

import (
	"bytes"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/engine"
)

// EncodeTrusted assembles bytes by hand: they must be exactly what the validated path
// produces for the same event, and pass the schema.
func TestEncodeTrustedMatchesEncode(t *testing.T) {
	ts := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	rej := Rejection{RequestID: `r "1" <&>`, Errors: engine.FieldErrors{{Field: "budget.x", Message: "unknown channel \"x\""}}}
	fast, err := EncodeTrusted(OptimizationRejected, "atlas/processor", rej.RequestID, ResultID(rej.RequestID, OptimizationRejected), ts, rej)
	if err != nil {
		t.Fatal(err)
	}
	env, err := New(OptimizationRejected, "atlas/processor", rej.RequestID, rej, ResultID(rej.RequestID, OptimizationRejected), ts)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fast, slow) {
		t.Fatalf("trusted encoding differs:\n%s\n%s", fast, slow)
	}
	if _, err := Decode(fast); err != nil {
		t.Fatal(err)
	}
}
