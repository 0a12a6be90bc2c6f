package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client certificate, as PEM
// files in a temporary directory.
type testPKI struct {
	dir                                                  string
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "atlas test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(ca)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kb)
	}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startNATS runs a nats-server with JetStream on a loopback port until the test ends.
func startNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func clearNATSEnv(t *testing.T) {
	for _, v := range []string{"ATLAS_CONFIG", "ATLAS_LOG", "ATLAS_NATS_URL", "ATLAS_NATS_TLS", "ATLAS_NATS_CA", "ATLAS_NATS_CERT",
		"ATLAS_NATS_KEY", "ATLAS_NATS_TLS_INSECURE", "ATLAS_NATS_USER", "ATLAS_NATS_PASSWORD", "ATLAS_NATS_TOKEN", "ATLAS_NATS_CREDS"} {
		unsetenv(t, v)
	}
}

// TestNATSTLSAndPassword: produce and tail against a nats-server that demands TLS with
// a client certificate and a user and password, configured through a config file and
// the password's environment variable; each missing piece makes the connection fail.
func TestNATSTLSAndPassword(t *testing.T) {
	clearNATSEnv(t)
	pki := newTestPKI(t)
	srvCert, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := startNATS(t, &server.Options{
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pki.pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Username: "atlas", Password: "s3cret",
	})
	url := "tls://" + srv.Addr().String()
	cfg := writeConfig(t, "nats-url: "+url+"\nnats-ca: "+pki.caFile+"\nnats-cert: "+pki.clientCert+
		"\nnats-key: "+pki.clientKey+"\nnats-user: atlas\n")
	t.Setenv("ATLAS_NATS_PASSWORD", "s3cret")

	if code, _, errs := run(t, "", "produce", "--config", cfg, "../../examples/demo-model.json"); code != 0 {
		t.Fatalf("produce over TLS: exit %d: %s", code, errs)
	}
	code, out, errs := run(t, "", "tail", "--config", cfg, "--topic", "atlas.models", "--from-beginning", "--follow=false")
	if code != 0 || !strings.Contains(out, `"model_id":"atlas-demo"`) {
		t.Fatalf("tail over TLS: exit %d: %s%s", code, out, errs)
	}

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"wrong password":        {[]string{"--nats-password", "nope"}, "authorization violation"},
		"no CA":                 {[]string{"--nats-ca", ""}, "certificate signed by unknown authority"},
		"no client certificate": {[]string{"--nats-cert", "", "--nats-key", ""}, "tls"}, // "certificate required", or TLS 1.3's later close
		"certificate, no key":   {[]string{"--nats-key", ""}, "needs both the certificate and the key"},
	} {
		args := append([]string{"produce", "--config", cfg}, c.args...)
		code, _, errs := run(t, "", append(args, "../../examples/demo-model.json")...)
		if code == 0 || !strings.Contains(strings.ToLower(errs), c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", name, code, errs, c.want)
		}
	}
}

// TestNATSToken: --nats-token (here from its variable) authenticates to a server that
// wants a token.
func TestNATSToken(t *testing.T) {
	clearNATSEnv(t)
	srv := startNATS(t, &server.Options{Authorization: "t0ken"})
	url := "nats://" + srv.Addr().String()
	t.Setenv("ATLAS_NATS_TOKEN", "t0ken")
	if code, _, errs := run(t, "", "produce", "--nats-url", url, "../../examples/demo-model.json"); code != 0 {
		t.Fatalf("produce with a token: exit %d: %s", code, errs)
	}
	t.Setenv("ATLAS_NATS_TOKEN", "wrong")
	if code, _, errs := run(t, "", "produce", "--nats-url", url, "../../examples/demo-model.json"); code == 0 || !strings.Contains(strings.ToLower(errs), "authorization violation") {
		t.Fatalf("produce with a wrong token: exit %d: %s", code, errs)
	}
}

// TestNATSCredsFile: --nats-creds (a user JWT and NKey seed, as nsc writes them)
// authenticates to a nats-server in operator mode; a user of an account the server does
// not know is refused.
func TestNATSCredsFile(t *testing.T) {
	clearNATSEnv(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	opPub, err := operator.PublicKey()
	must(err)
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(operator)
	must(err)
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	must(err)
	// credsFor writes the creds file of a new user of a new account signed by the
	// operator, and returns the account's public key and JWT.
	credsFor := func(name string, jetStream bool) (file, accPub, accJWT string) {
		acc, err := nkeys.CreateAccount()
		must(err)
		accPub, err = acc.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(accPub)
		if jetStream {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		accJWT, err = ac.Encode(operator)
		must(err)
		user, err := nkeys.CreateUser()
		must(err)
		userPub, err := user.PublicKey()
		must(err)
		userJWT, err := jwt.NewUserClaims(userPub).Encode(acc)
		must(err)
		seed, err := user.Seed()
		must(err)
		creds, err := jwt.FormatUserConfig(userJWT, seed)
		must(err)
		file = filepath.Join(t.TempDir(), name+".creds")
		must(os.WriteFile(file, creds, 0o600))
		return file, accPub, accJWT
	}
	good, accPub, accJWT := credsFor("atlas", true)
	stranger, _, _ := credsFor("stranger", true)
	_, sysPub, sysJWT := credsFor("system", false) // operator mode with JetStream needs one
	resolver := &server.MemAccResolver{}
	must(resolver.Store(accPub, accJWT))
	must(resolver.Store(sysPub, sysJWT))
	srv := startNATS(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{opClaims}, AccountResolver: resolver,
		SystemAccount: sysPub})
	url := "nats://" + srv.Addr().String()

	if code, _, errs := run(t, "", "produce", "--nats-url", url, "--nats-creds", good, "../../examples/demo-model.json"); code != 0 {
		t.Fatalf("produce with a creds file: exit %d: %s", code, errs)
	}
	if code, _, errs := run(t, "", "produce", "--nats-url", url, "--nats-creds", stranger, "../../examples/demo-model.json"); code == 0 || !strings.Contains(strings.ToLower(errs), "authorization violation") {
		t.Fatalf("produce as a user of an unknown account: exit %d: %s", code, errs)
	}
	if code, _, errs := run(t, "", "produce", "--nats-url", url, "../../examples/demo-model.json"); code == 0 {
		t.Fatalf("produce without credentials: exit %d: %s", code, errs)
	}
}

// TestTLSFlags: the client TLS configuration every backend gets from its flags.
func TestTLSFlags(t *testing.T) {
	pki := newTestPKI(t)
	build := func(args ...string) (*tls.Config, error) {
		t.Helper()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var f tlsFlags
		f.register(fs, "kafka", "Kafka")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.config()
	}
	if cfg, err := build(); cfg != nil || err != nil {
		t.Errorf("no flags: %v %v, want no TLS", cfg, err)
	}
	if cfg, err := build("--kafka-tls"); err != nil || cfg == nil || cfg.RootCAs != nil || cfg.InsecureSkipVerify {
		t.Errorf("--kafka-tls: %+v %v, want TLS with the system roots", cfg, err)
	}
	cfg, err := build("--kafka-ca", pki.caFile, "--kafka-cert", pki.clientCert, "--kafka-key", pki.clientKey)
	if err != nil || cfg == nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("CA and client certificate: %+v %v", cfg, err)
	}
	if cfg, err := build("--kafka-tls-insecure"); err != nil || cfg == nil || !cfg.InsecureSkipVerify {
		t.Errorf("--kafka-tls-insecure: %+v %v", cfg, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--kafka-ca", filepath.Join(pki.dir, "none.pem")}, "no such file"},
		{[]string{"--kafka-ca", pki.clientKey}, "no PEM certificate"},
		{[]string{"--kafka-cert", pki.clientCert}, "needs both"},
		{[]string{"--kafka-cert", pki.clientCert, "--kafka-key", pki.serverKey}, "private key does not match"},
	} {
		if _, err := build(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestKafkaAuthFlags: the Kafka flags become the client's TLS and SASL configuration.
func TestKafkaAuthFlags(t *testing.T) {
	for _, v := range []string{"ATLAS_KAFKA_SASL", "ATLAS_KAFKA_SASL_USER", "ATLAS_KAFKA_SASL_PASSWORD", "ATLAS_KAFKA_TLS"} {
		unsetenv(t, v)
	}
	parse := func(args ...string) (*logConfig, error) {
		fs := flag.NewFlagSet("process", flag.ContinueOnError)
		var lc logConfig
		lc.register(fs)
		return &lc, fs.Parse(args)
	}
	t.Setenv("ATLAS_KAFKA_SASL_PASSWORD", "pw")
	lc, _ := parse("--kafka-sasl", "scram-sha-512", "--kafka-sasl-user", "u", "--kafka-tls")
	kc, err := lc.kafkaConfig()
	if err != nil || kc.SASL == nil || kc.SASL.Name() != "SCRAM-SHA-512" || kc.TLS == nil {
		t.Fatalf("SCRAM over TLS: %+v %v", kc, err)
	}
	lc, _ = parse("--kafka-sasl-user", "u")
	if _, err := lc.kafkaConfig(); err == nil || !strings.Contains(err.Error(), "without --kafka-sasl") {
		t.Errorf("user without mechanism: %v", err)
	}
	lc, _ = parse("--kafka-sasl", "gssapi", "--kafka-sasl-user", "u")
	if _, err := lc.kafkaConfig(); err == nil || !strings.Contains(err.Error(), "unknown SASL mechanism") {
		t.Errorf("unknown mechanism: %v", err)
	}
}

// TestKafkaSASLFlags: produce and tail through the SASL listener of the local broker
// (deploy/local/kafka.sh; skipped when it has none, see streams/kafka/sasl_test.go),
// the password from its environment variable.
func TestKafkaSASLFlags(t *testing.T) {
	addr := os.Getenv("ATLAS_KAFKA_SASL_BROKERS")
	if addr == "" {
		addr = "127.0.0.1:19094"
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
		if req := os.Getenv("ATLAS_KAFKA_SASL_REQUIRED"); req != "" && req != "0" {
			t.Fatalf("no Kafka SASL listener on %s: %v", addr, err)
		}
		t.Skipf("no Kafka SASL listener on %s (%v)", addr, err)
	} else {
		c.Close()
	}
	user, password := os.Getenv("ATLAS_TEST_KAFKA_SASL_USER"), os.Getenv("ATLAS_TEST_KAFKA_SASL_PASSWORD")
	if user == "" {
		user, password = "atlas", "atlas-secret"
	}
	for _, v := range []string{"ATLAS_CONFIG", "ATLAS_LOG", "ATLAS_NATS_URL", "ATLAS_KAFKA_BROKERS", "ATLAS_KAFKA_SASL",
		"ATLAS_KAFKA_SASL_USER", "ATLAS_KAFKA_TLS", "ATLAS_KAFKA_CA", "ATLAS_KAFKA_CERT", "ATLAS_KAFKA_KEY"} {
		unsetenv(t, v)
	}
	t.Setenv("ATLAS_KAFKA_SASL_PASSWORD", password)
	prefix := fmt.Sprintf("atlas-test.sasl.%d.", time.Now().UnixNano())
	common := []string{"--log", "kafka", "--kafka-brokers", addr, "--kafka-sasl", "scram-sha-256", "--kafka-sasl-user", user,
		"--topic-models", prefix + "models", "--topic-requests", prefix + "requests",
		"--topic-results", prefix + "results", "--topic-deadletter", prefix + "deadletter", "--partitions", "1"}
	if code, _, errs := run(t, "", append(append([]string{"produce"}, common...), "../../examples/demo-model.json")...); code != 0 {
		t.Fatalf("produce with SASL: exit %d: %s", code, errs)
	}
	code, out, errs := run(t, "", append(append([]string{"tail"}, common...), "--topic", prefix+"models", "--from-beginning", "--follow=false")...)
	if code != 0 || !strings.Contains(out, `"model_id":"atlas-demo"`) {
		t.Fatalf("tail with SASL: exit %d: %s%s", code, out, errs)
	}
	t.Setenv("ATLAS_KAFKA_SASL_PASSWORD", password+"-wrong")
	if code, _, errs := run(t, "", append(append([]string{"produce"}, common...), "../../examples/demo-model.json")...); code == 0 || !strings.Contains(errs, "SASL") {
		t.Fatalf("produce with a wrong password: exit %d: %s", code, errs)
	}
}

// tlsProxy terminates TLS (with a client certificate required) in front of a plain TCP
// server, until the test ends.
func tlsProxy(t *testing.T, pki *testPKI, backend string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				track(b)
				defer b.Close()
				go func() { io.Copy(b, c); b.Close() }()
				io.Copy(c, b)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestClickHouseTLS: the ClickHouse TLS flags reach the driver: the local ClickHouse,
// behind a TLS proxy that requires a client certificate, answers through them, and not
// without the CA or the certificate.
func TestClickHouseTLS(t *testing.T) {
	backend := strings.Split(os.Getenv("ATLAS_CLICKHOUSE_ADDR"), ",")[0]
	if backend == "" {
		backend = "127.0.0.1:19000"
	}
	if c, err := net.DialTimeout("tcp", backend, 2*time.Second); err != nil {
		if os.Getenv("ATLAS_CLICKHOUSE_REQUIRED") != "" {
			t.Fatalf("ClickHouse at %s (ATLAS_CLICKHOUSE_REQUIRED is set): %v", backend, err)
		}
		t.Skipf("ClickHouse at %s unreachable: %v", backend, err)
	} else {
		c.Close()
	}
	pki := newTestPKI(t)
	proxy := tlsProxy(t, pki, backend)
	ping := func(args ...string) error {
		fs := flag.NewFlagSet("api", flag.ContinueOnError)
		var sc storeConfig
		sc.register(fs)
		if err := fs.Parse(append([]string{"--store", "clickhouse", "--clickhouse-addr", proxy,
			"--clickhouse-database", "default", "--clickhouse-user", "default", "--clickhouse-password", ""}, args...)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		st, err := sc.open(ctx, t.TempDir())
		if err != nil {
			return err
		}
		defer st.Close()
		p, ok := st.(interface{ Ping(context.Context) error })
		if !ok {
			t.Fatalf("%T has no Ping", st)
		}
		return p.Ping(ctx)
	}
	if err := ping("--clickhouse-ca", pki.caFile, "--clickhouse-cert", pki.clientCert, "--clickhouse-key", pki.clientKey); err != nil {
		t.Fatalf("over TLS with a client certificate: %v", err)
	}
	if err := ping("--clickhouse-cert", pki.clientCert, "--clickhouse-key", pki.clientKey); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("without the CA: %v", err)
	}
	if err := ping("--clickhouse-ca", pki.caFile); err == nil {
		t.Error("accepted without a client certificate")
	}
	if err := ping(); err == nil {
		t.Error("a plain connection to the TLS port worked")
	}
}

// TestKafkaTLSFlags: produce and tail through the TLS listener of the local broker
// (deploy/local/kafka.sh; skipped when it has none, see streams/kafka/tls_test.go), with
// the CA and the client certificate from a config file.
func TestKafkaTLSFlags(t *testing.T) {
	addr := os.Getenv("ATLAS_KAFKA_TLS_BROKERS")
	if addr == "" {
		addr = "127.0.0.1:19095"
	}
	dir := os.Getenv("ATLAS_TEST_KAFKA_TLS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", ".local", "kafka", "tls")
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		_, err = os.Stat(filepath.Join(dir, "ca.pem"))
	}
	if err != nil {
		if req := os.Getenv("ATLAS_KAFKA_TLS_REQUIRED"); req != "" && req != "0" {
			t.Fatalf("no Kafka TLS listener on %s: %v", addr, err)
		}
		t.Skipf("no Kafka TLS listener on %s (%v)", addr, err)
	}
	for _, v := range []string{"ATLAS_CONFIG", "ATLAS_LOG", "ATLAS_NATS_URL", "ATLAS_KAFKA_BROKERS", "ATLAS_KAFKA_SASL",
		"ATLAS_KAFKA_SASL_USER", "ATLAS_KAFKA_SASL_PASSWORD", "ATLAS_KAFKA_TLS", "ATLAS_KAFKA_CA", "ATLAS_KAFKA_CERT",
		"ATLAS_KAFKA_KEY", "ATLAS_KAFKA_TLS_INSECURE"} {
		unsetenv(t, v)
	}
	prefix := fmt.Sprintf("atlas-test.tls.%d.", time.Now().UnixNano())
	cfg := writeConfig(t, fmt.Sprintf(`log: kafka
kafka-brokers: %s
kafka-ca: %s
kafka-cert: %s
kafka-key: %s
partitions: 1
topic-models: %smodels
topic-requests: %srequests
topic-results: %sresults
topic-deadletter: %sdeadletter
`, addr, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"), prefix, prefix, prefix, prefix))
	if code, _, errs := run(t, "", "produce", "--config", cfg, "../../examples/demo-model.json"); code != 0 {
		t.Fatalf("produce over TLS: exit %d: %s", code, errs)
	}
	code, out, errs := run(t, "", "tail", "--config", cfg, "--topic", prefix+"models", "--from-beginning", "--follow=false")
	if code != 0 || !strings.Contains(out, `"model_id":"atlas-demo"`) {
		t.Fatalf("tail over TLS: exit %d: %s%s", code, out, errs)
	}
	if code, _, errs := run(t, "", "produce", "--config", cfg, "--kafka-ca", "", "../../examples/demo-model.json"); code == 0 || !strings.Contains(errs, "unknown authority") {
		t.Fatalf("produce without the CA: exit %d: %s", code, errs)
	}
}
