package replay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
)

// SQLite keeps generations as files beside the live SQLite file: for
// <dir>/store.db, generation g is <dir>/store.replay-g.db (with its -wal and -shm
// files while open, or its -journal while a build writes it). A build writes the file
// in sqlite.OpenBuild's mode, made for one writer, and starts over if a restart of the
// machine interrupted it; once built, it is opened as the live file is. Nothing may have the live file open during a switch (stop atlas
// serve; the embedded log's lock already keeps it from starting while a replay runs).
//
// A switch quiesces both files (their WAL folded in, rollback-journal mode, so that
// each is one self-contained file), then: link live → swap (a second name for the live
// file), rename generation → live (atomic: the live name always names one whole
// database, the old or the new), rename swap → generation. A crash leaves at most a
// swap name behind, which the next use of the target settles: still a second name of
// the live file means the switch did not happen (the swap name goes); otherwise it did
// (the swap name becomes the generation).
type SQLite struct {
	live string

	failAt func(step string) error // tests: fails the swap at a step
}

// NewSQLite returns the target for the live SQLite file at path, first settling a
// switch a crash interrupted.
func NewSQLite(path string) (*SQLite, error) {
	t := &SQLite{live: path}
	if err := t.recover(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *SQLite) base() string { return strings.TrimSuffix(t.live, ".db") }

func (t *SQLite) path(name string) string { return t.base() + ".replay-" + name + ".db" }

func (t *SQLite) swapPath() string { return t.base() + ".replay-swap" }

// Where is the generation's file ("" names the live one).
func (t *SQLite) Where(name string) string {
	if name == "" {
		return t.live
	}
	return t.path(name)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Open opens generation name's file.
func (t *SQLite) Open(ctx context.Context, name string, create bool) (store.Store, bool, error) {
	if err := CheckName(name); err != nil {
		return nil, false, err
	}
	p := t.path(name)
	had, err := exists(p)
	if err != nil {
		return nil, false, err
	}
	if !had && !create {
		return nil, false, fmt.Errorf("%w: %q (no %s)", ErrNotFound, name, p)
	}
	if !create {
		s, err := openSQLite(ctx, p, sqlite.Open)
		return s, had, err
	}
	// Only Build creates (see Target.Open): the file is written in sqlite.OpenBuild's
	// mode. An unfinished build that a restart of the machine interrupted may have lost
	// writes (its commits are not synced): it starts over.
	s, err := openSQLite(ctx, p, sqlite.OpenBuild)
	if errors.Is(err, sqlite.ErrUnsynced) {
		if err := t.Drop(ctx, name); err != nil {
			return nil, false, err
		}
		s, err = openSQLite(ctx, p, sqlite.OpenBuild)
		return s, false, err
	}
	return s, had, err
}

// OpenLive opens the live file.
func (t *SQLite) OpenLive(ctx context.Context) (store.Store, error) {
	return openSQLite(ctx, t.live, sqlite.Open)
}

func openSQLite(ctx context.Context, path string, open func(string) (*sqlite.Store, error)) (store.Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	s, err := open(path)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Names lists the generation files.
func (t *SQLite) Names(context.Context) ([]string, error) {
	matches, err := filepath.Glob(t.base() + ".replay-*.db")
	if err != nil {
		return nil, err
	}
	var out []string
	prefix := filepath.Base(t.base()) + ".replay-"
	for _, m := range matches {
		n := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), prefix), ".db")
		if CheckName(n) == nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Drop removes generation name's file and its -wal, -shm and -journal files.
func (t *SQLite) Drop(_ context.Context, name string) error {
	p := t.path(name)
	for _, f := range []string{p + "-wal", p + "-shm", p + "-journal", p} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replay: drop %q: %w", name, err)
		}
	}
	return nil
}

// Swap exchanges the live file with generation name's.
func (t *SQLite) Swap(ctx context.Context, name string) error {
	gen, swap := t.path(name), t.swapPath()
	if ok, err := exists(gen); err != nil || !ok {
		return fmt.Errorf("%w: %q (%v)", ErrNotFound, name, err)
	}
	for _, p := range []string{t.live, gen} {
		if err := sqlite.Quiesce(ctx, p); err != nil {
			return fmt.Errorf("replay: switch: %w", err)
		}
		for _, side := range []string{p + "-wal", p + "-shm"} {
			if ok, err := exists(side); err != nil || ok {
				return fmt.Errorf("replay: switch: %s is still there after folding the WAL in (%v): is the file in use?", side, err)
			}
		}
	}
	if err := os.Link(t.live, swap); err != nil {
		return fmt.Errorf("replay: switch: %w", err)
	}
	if err := t.fail("linked"); err != nil {
		return err
	}
	if err := os.Rename(gen, t.live); err != nil {
		os.Remove(swap)
		return fmt.Errorf("replay: switch: %w", err)
	}
	if err := t.fail("renamed"); err != nil {
		return err
	}
	if err := os.Rename(swap, gen); err != nil {
		return fmt.Errorf("replay: switched, but %s could not become %s (the next replay command retries): %w", swap, gen, err)
	}
	return syncDir(filepath.Dir(t.live))
}

func (t *SQLite) fail(step string) error {
	if t.failAt != nil {
		return t.failAt(step)
	}
	return nil
}

// recover settles a switch a crash interrupted (see SQLite).
func (t *SQLite) recover() error {
	swap := t.swapPath()
	si, err := os.Stat(swap)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if li, err := os.Stat(t.live); err == nil && os.SameFile(si, li) {
		// Interrupted before the rename: the live file is the old one.
		return os.Remove(swap)
	}
	// Interrupted after it: the swap name holds the previous live file, which takes the
	// name of the generation the live file now holds.
	name, err := t.switchedIn()
	if err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("replay: %s is left from an interrupted switch, and the live file names no generation: move it aside by hand", swap)
	}
	if err := os.Rename(swap, t.path(name)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(t.live))
}

// switchedIn is the name of the generation the live file holds.
func (t *SQLite) switchedIn() (string, error) {
	s, err := sqlite.Open(t.live)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		return "", err
	}
	g, err := s.Generation(context.Background())
	return g.Name, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close releases nothing: files are opened per operation.
func (t *SQLite) Close() error { return nil }
