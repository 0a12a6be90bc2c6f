package kafka

// Authentication against a real SASL listener (deploy/local/kafka.sh starts one).
//
//   ATLAS_KAFKA_SASL_BROKERS        its address (default 127.0.0.1:19094)
//   ATLAS_TEST_KAFKA_SASL_USER      user and password the script created
//   ATLAS_TEST_KAFKA_SASL_PASSWORD  (default atlas / atlas-secret)
//   ATLAS_KAFKA_SASL_REQUIRED       if set (and not "0"), a missing listener fails the test
//
// A broker started by an older kafka.sh has no SASL listener: the test is skipped then.

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
)

func saslBroker(t *testing.T) (addr, user, password string) {
	t.Helper()
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	addr = env("ATLAS_KAFKA_SASL_BROKERS", "127.0.0.1:19094")
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if req := os.Getenv("ATLAS_KAFKA_SASL_REQUIRED"); req != "" && req != "0" {
			t.Fatalf("no Kafka SASL listener on %s: %v", addr, err)
		}
		t.Skipf("no Kafka SASL listener on %s (%v): deploy/local/kafka.sh starts one", addr, err)
	}
	c.Close()
	return addr, env("ATLAS_TEST_KAFKA_SASL_USER", "atlas"), env("ATLAS_TEST_KAFKA_SASL_PASSWORD", "atlas-secret")
}

// TestSASLAuthentication: with each mechanism, a Log authenticates, creates a topic,
// appends, reads back and consumes in a group (which dials brokers through a different
// path); a wrong password and no SASL at all are refused.
func TestSASLAuthentication(t *testing.T) {
	addr, user, password := saslBroker(t)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			m, err := SASL(mech, user, password)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Brokers: []string{addr}, SASL: m, Partitions: 1, ReplicationFactor: 1,
				SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond, RebalanceTimeout: 3 * time.Second}
			l := openLog(t, cfg)
			topic := newTopic(t, l, 1)
			if err := l.Append(ctxT(t, 10*time.Second), topic, streams.Record{Key: []byte("k"), Value: []byte(mech)}); err != nil {
				t.Fatalf("Append: %v", err)
			}
			var got []string
			err = l.Read(ctxT(t, 10*time.Second), topic, streams.Position{}, streams.Position{}, func(m streams.Message) error {
				got = append(got, string(m.Value))
				return nil
			})
			if err != nil || len(got) != 1 || got[0] != mech {
				t.Fatalf("Read: %v %q", err, got)
			}
			sub, err := l.Subscribe(ctxT(t, 20*time.Second), topic, uniqueName(t, "group"))
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			defer sub.Close()
			msg, err := sub.Fetch(ctxT(t, 30*time.Second))
			if err != nil || string(msg.Value) != mech {
				t.Fatalf("Fetch: %v %q", err, msg.Value)
			}
			if err := sub.Commit(ctxT(t, 10*time.Second), msg); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		for _, mech := range []string{"PLAIN", "SCRAM-SHA-512"} {
			m, _ := SASL(mech, user, password+"-wrong")
			l, err := Open(ctxT(t, 15*time.Second), Config{Brokers: []string{addr}, SASL: m})
			if err == nil {
				l.Close()
				t.Fatalf("%s: a wrong password was accepted", mech)
			}
			if !strings.Contains(err.Error(), "Authentication failed") && !strings.Contains(err.Error(), "SASL Authentication") {
				t.Errorf("%s: %v", mech, err)
			}
		}
	})
	t.Run("no SASL", func(t *testing.T) {
		if l, err := Open(ctxT(t, 15*time.Second), Config{Brokers: []string{addr}}); err == nil {
			l.Close()
			t.Fatal("the SASL listener answered a client without SASL")
		}
	})
}
