//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package jetstream

// lockDir is a no-op where flock is unavailable: running two processes on one DataDir
// is then the operator's responsibility.
func lockDir(dir string) (func(), error) { return func() {}, nil }
