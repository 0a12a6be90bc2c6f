package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck is `atlas healthcheck`: GET a health URL and exit 0 on a 2xx answer.
// It exists because the container image is distroless (no shell, no curl), so the
// image's HEALTHCHECK and compose's health checks run the binary itself.
func runHealthcheck(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envString("ATLAS_HEALTHCHECK_URL", "http://127.0.0.1:8000/health"), "URL to GET; 2xx is healthy [ATLAS_HEALTHCHECK_URL]")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "atlas healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := checkHealth(ctx, *url, *timeout); err != nil {
		fmt.Fprintf(stderr, "atlas healthcheck: %v\n", err)
		return 1
	}
	return 0
}

func checkHealth(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	// A dedicated client: no proxy from the environment (the target is local) and no
	// redirects, so a 3xx to a login page does not pass for healthy.
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // drained for the connection only
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
