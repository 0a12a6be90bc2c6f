package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScaledRolesSurviveClickHouseOutage runs the roles as separate processes on Kafka
// and ClickHouse, stops ClickHouse for a while during a burst of requests, and checks
// that the projector waits, retries and catches up with every accepted request exactly
// once. It stops the shared local ClickHouse, so it runs on its own (make test runs it
// after the other packages): set ATLAS_SCALED_TEST=1.
func TestScaledRolesSurviveClickHouseOutage(t *testing.T) {
	if os.Getenv("ATLAS_SCALED_TEST") == "" {
		t.Skip("set ATLAS_SCALED_TEST=1 (it stops the local ClickHouse; make test runs it last)")
	}
	chScript := "../../deploy/local/clickhouse.sh"
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	db := "atlas_scaled_" + suffix
	common := []string{"--log", "kafka", "--kafka-brokers", envString("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092"),
		"--topic-models", "sc.models." + suffix, "--topic-requests", "sc.requests." + suffix,
		"--topic-results", "sc.results." + suffix, "--topic-deadletter", "sc.dead." + suffix}
	store := []string{"--store", "clickhouse", "--clickhouse-addr", envString("ATLAS_CLICKHOUSE_ADDR", "127.0.0.1:19000"),
		"--clickhouse-database", db}
	start := func(args ...string) *exec.Cmd {
		cmd := atlasCmd(t, args...)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s:\n%s", args[0], tailOf(&errb))
			}
		})
		return cmd
	}
	start(append([]string{"process", "--metrics-addr", freePort(t), "--group", "sc-" + suffix}, common...)...)
	start(append(append([]string{"project", "--metrics-addr", freePort(t)}, common...), store...)...)
	apiAddr := freePort(t)
	start(append(append([]string{"api", "--http-addr", apiAddr, "--require-auth=false", "--rate-limit=off", "--optimize-rate-limit=off"}, common...), store...)...)
	base := "http://" + apiAddr
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("api not up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	model, _ := os.ReadFile("../../examples/demo-model.json")
	if resp, err := http.Post(base+"/api/v1/models", "application/json", bytes.NewReader(model)); err != nil || resp.StatusCode != 202 {
		t.Fatalf("publish model: %v %v", resp, err)
	}
	time.Sleep(time.Second) // let the processor see the model before the burst

	accepted := map[string]bool{}
	post := func(i int) {
		id := fmt.Sprintf("sc-%04d", i)
		body := fmt.Sprintf(`{"request_id": %q, "model_id": "atlas-demo", "constraints": {"total": %d}}`, id, 100000+i*500)
		resp, err := http.Post(base+"/api/v1/optimize?wait=0", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 202 {
			accepted[id] = true
		}
	}
	for i := 0; i < 300; i++ {
		post(i)
	}
	if out, err := exec.Command(chScript, "stop").CombinedOutput(); err != nil {
		t.Fatalf("stopping ClickHouse: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(chScript, "start").Run() })
	for i := 300; i < 700; i++ {
		post(i) // the log keeps accepting; the projector waits
	}
	time.Sleep(3 * time.Second)
	if out, err := exec.Command(chScript, "start").CombinedOutput(); err != nil {
		t.Fatalf("starting ClickHouse: %v\n%s", err, out)
	}
	for i := 700; i < 1000; i++ {
		post(i)
	}
	deadline = time.Now().Add(120 * time.Second)
	for {
		seen := map[string]int{}
		cursor := ""
		ok := true
		for {
			q := base + "/api/v1/results?limit=1000"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			resp, err := http.Get(q)
			if err != nil || resp.StatusCode != 200 {
				ok = false
				if resp != nil {
					resp.Body.Close()
				}
				break
			}
			var page struct {
				Results []struct {
					RequestID string `json:"request_id"`
				} `json:"results"`
				NextCursor string `json:"next_cursor"`
			}
			json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			for _, r := range page.Results {
				seen[r.RequestID]++
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if ok {
			for id, c := range seen {
				if c != 1 {
					t.Fatalf("%s listed %d times", id, c)
				}
			}
			missing := 0
			for id := range accepted {
				if seen[id] == 0 {
					missing++
				}
			}
			if missing == 0 && len(accepted) == 1000 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d accepted requests missing after the outage", missing, len(accepted))
			}
		} else if time.Now().After(deadline) {
			t.Fatal("results never readable after the outage")
		}
		time.Sleep(500 * time.Millisecond)
	}
	exec.Command("clickhouse-client", "--port", "19000", "--query", "DROP DATABASE IF EXISTS "+db).Run()
}
