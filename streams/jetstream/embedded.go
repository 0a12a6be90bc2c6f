package jetstream

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// An embedded nats-server is shared by every Log of this process opened on the same
// DataDir: two components of one binary (say the processor and the query API) can each
// Open the default store without fighting over its files, and they see each other's
// topics and consumer groups exactly as they would through an external server. The
// server is shut down when the last of them closes.
var (
	embeddedMu sync.Mutex
	embeddedBy = map[string]*embeddedServer{}
)

type embeddedServer struct {
	dir    string
	srv    *server.Server
	unlock func()
	refs   int
}

func acquireEmbedded(cfg Config) (*embeddedServer, error) {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	if e := embeddedBy[dir]; e != nil {
		e.refs++
		return e, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// nats-server does not lock its store directory; a second process writing the same
	// files would corrupt them, so hold an exclusive lock for the server's lifetime.
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "atlas-embedded",
		// No listener: only in-process clients (nats.InProcessServer) can connect, so
		// nothing is exposed on the network and no port has to be free. This is also why
		// group leases can live in memory (see Subscribe): every member of a group that
		// this server has seen died with the previous process.
		DontListen: true,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		SyncAlways: cfg.SyncAlways,
	}
	if cfg.ServerOptions != nil {
		cfg.ServerOptions(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("jetstream: embedded server: %w", err)
	}
	if cfg.ServerLogger != nil {
		srv.SetLogger(cfg.ServerLogger, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		unlock()
		return nil, errors.New("jetstream: embedded server did not start")
	}
	e := &embeddedServer{dir: dir, srv: srv, unlock: unlock, refs: 1}
	embeddedBy[dir] = e
	return e, nil
}

func (e *embeddedServer) release() {
	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	e.refs--
	if e.refs > 0 {
		return
	}
	delete(embeddedBy, e.dir)
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.unlock()
}
