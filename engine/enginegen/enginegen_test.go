package enginegen

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
)

// TestRequestsArePinned: the fuzz corpus (engine/testdata/fuzz/FuzzSolveGenerated) and
// the sweep's baseline (bench/sweep) are stored as inputs, so the requests those inputs
// stand for must not change by accident. The digest is that of the JSON of 30,000 draws
// (the sweep's stream: seed 7, 16-175 random bytes each), taken from the generator as it
// was in engine/fuzz_test.go before it moved here. If a change to the generator is
// intended, update the digest and regenerate bench/sweep's baseline in the same commit.
func TestRequestsArePinned(t *testing.T) {
	const want = "95f8d33830ee332662c513ea49adcfe434804b455f0d3c8384f8b119b5417606"
	rng := rand.New(rand.NewSource(7))
	h := sha256.New()
	for k := 0; k < 30000; k++ {
		data := make([]byte, 16+rng.Intn(160))
		rng.Read(data)
		j, err := json.Marshal(Request(data))
		if err != nil {
			t.Fatalf("draw %d does not marshal: %v", k, err)
		}
		fmt.Fprintf(h, "g%d %s\n", k, j)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("generated requests changed: digest %s, want %s", got, want)
	}
}

// TestRequestDecodes: whatever the bytes, the request survives the engine's decoder, so
// the fuzz target and the sweep only ever test the solver, never the decoder's errors.
func TestRequestDecodes(t *testing.T) {
	for _, in := range []string{"", "\x00", "\xff\xff\xff\xff", "quickstart", "atlasatlasatlasatlasatlasatlas"} {
		req := Request([]byte(in))
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if _, err := engine.DecodeRequest(b); err != nil {
			t.Errorf("%q: generated request rejected: %v\n%s", in, err, b)
		}
	}
}

func TestCoupled(t *testing.T) {
	share := 0.5
	for _, tc := range []struct {
		c    engine.Constraints
		want bool
	}{
		{engine.Constraints{}, false},
		{engine.Constraints{MaxChange: &share}, false},
		{engine.Constraints{MaxShare: &share}, true},
		{engine.Constraints{Groups: []engine.Group{{Channels: []string{"tv"}}}}, true},
		{engine.Constraints{Ratios: []engine.Ratio{{Numerator: "tv", Denominator: "radio"}}}, true},
	} {
		if got := Coupled(&engine.Request{Constraints: tc.c}); got != tc.want {
			t.Errorf("Coupled(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
}
