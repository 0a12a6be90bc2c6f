package kafka

import (
	"strings"
	"testing"
)

func TestSASLMechanisms(t *testing.T) {
	for _, name := range []string{"PLAIN", "plain", "SCRAM-SHA-256", "scram-sha-512"} {
		m, err := SASL(name, "user", "pw")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Name() != strings.ToUpper(name) {
			t.Errorf("%s: mechanism %s", name, m.Name())
		}
	}
	if _, err := SASL("GSSAPI", "user", "pw"); err == nil || !strings.Contains(err.Error(), "unknown SASL mechanism") {
		t.Errorf("GSSAPI: %v", err)
	}
	if _, err := SASL("PLAIN", "", "pw"); err == nil || !strings.Contains(err.Error(), "needs a user name") {
		t.Errorf("no user: %v", err)
	}
}
