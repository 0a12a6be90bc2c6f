package kafka

// TLS against a real listener (deploy/local/kafka.sh starts one, with a local CA).
//
//   ATLAS_KAFKA_TLS_BROKERS    its address (default 127.0.0.1:19095)
//   ATLAS_TEST_KAFKA_TLS_DIR   ca.pem, client.pem, client.key (default ../../.local/kafka/tls)
//   ATLAS_KAFKA_TLS_REQUIRED   if set (and not "0"), a missing listener fails the test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
)

// tlsBroker returns the TLS listener's address and the local CA and client
// certificate, or skips the test.
func tlsBroker(t *testing.T) (addr string, pool *x509.CertPool, client tls.Certificate) {
	t.Helper()
	addr = os.Getenv("ATLAS_KAFKA_TLS_BROKERS")
	if addr == "" {
		addr = "127.0.0.1:19095"
	}
	dir := os.Getenv("ATLAS_TEST_KAFKA_TLS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", ".local", "kafka", "tls")
	}
	fail := func(format string, args ...any) {
		t.Helper()
		if req := os.Getenv("ATLAS_KAFKA_TLS_REQUIRED"); req != "" && req != "0" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+": deploy/local/kafka.sh starts a TLS listener", args...)
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		fail("no Kafka TLS listener on %s (%v)", addr, err)
	}
	c.Close()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		fail("the local Kafka CA: %v", err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("no certificate in %s/ca.pem", dir)
	}
	client, err = tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return addr, pool, client
}

// TestTLS: over TLS with a client certificate a Log creates a topic, appends, reads and
// consumes in a group; without the CA or without the certificate it is refused.
func TestTLS(t *testing.T) {
	addr, pool, client := tlsBroker(t)
	cfg := Config{Brokers: []string{addr}, Partitions: 1, ReplicationFactor: 1,
		TLS:            &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12},
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond, RebalanceTimeout: 3 * time.Second}
	l := openLog(t, cfg)
	topic := newTopic(t, l, 1)
	if err := l.Append(ctxT(t, 10*time.Second), topic, streams.Record{Key: []byte("k"), Value: []byte("over TLS")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	var got []string
	err := l.Read(ctxT(t, 10*time.Second), topic, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		got = append(got, string(m.Value))
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != "over TLS" {
		t.Fatalf("Read: %v %q", err, got)
	}
	sub, err := l.Subscribe(ctxT(t, 20*time.Second), topic, uniqueName(t, "group"))
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()
	if msg, err := sub.Fetch(ctxT(t, 30*time.Second)); err != nil || string(msg.Value) != "over TLS" {
		t.Fatalf("Fetch: %v %q", err, msg.Value)
	}

	for name, c := range map[string]struct {
		tls  *tls.Config
		want string
	}{
		"no CA":                 {&tls.Config{Certificates: []tls.Certificate{client}}, "unknown authority"},
		"no client certificate": {&tls.Config{RootCAs: pool}, ""},
		"no TLS":                {nil, ""},
	} {
		l, err := Open(ctxT(t, 15*time.Second), Config{Brokers: []string{addr}, TLS: c.tls})
		if err == nil {
			l.Close()
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
