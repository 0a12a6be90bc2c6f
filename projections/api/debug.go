package api

import (
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// debugStatus is GET /debug/status (only with DEBUG_MODE=true): the guide's process
// figures (memory, open files, GC) from the Go runtime and /proc, plus goroutines,
// uptime and version.
func (s *Server) debugStatus(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms) // stops the world briefly: acceptable on a debug endpoint
	mem := map[string]any{
		"heap_alloc_bytes": ms.HeapAlloc,
		"heap_inuse_bytes": ms.HeapInuse,
		"sys_bytes":        ms.Sys,
	}
	if rss, ok := residentBytes(); ok {
		mem["rss_bytes"] = rss
	}
	gc := map[string]any{
		"num_gc":              ms.NumGC,
		"pause_total_seconds": time.Duration(ms.PauseTotalNs).Seconds(),
		"next_gc_bytes":       ms.NextGC,
		"gc_cpu_fraction":     ms.GCCPUFraction,
	}
	if ms.NumGC > 0 {
		gc["last_pause_seconds"] = time.Duration(ms.PauseNs[(ms.NumGC+255)%256]).Seconds()
		gc["last_gc"] = time.Unix(0, int64(ms.LastGC)).UTC()
	}
	out := map[string]any{
		"version":        s.cfg.Version,
		"go_version":     runtime.Version(),
		"started":        s.started.UTC(),
		"uptime_seconds": time.Since(s.started).Seconds(),
		"goroutines":     runtime.NumGoroutine(),
		"cpus":           runtime.NumCPU(),
		"memory":         mem,
		"gc":             gc,
		"maintenance":    s.maint.enabled(),
	}
	if n, ok := openFiles(); ok {
		out["open_files"] = n
	}
	writeJSON(w, http.StatusOK, out)
}

// openFiles counts the process's file descriptors (Linux /proc; elsewhere unknown).
func openFiles() (int, bool) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	return len(ents), true
}

// residentBytes is the resident set size from /proc/self/statm (Linux).
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
