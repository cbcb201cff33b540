package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
)

var (
	buildOnce sync.Once
	binPath   string
	keepBin   bool // binPath given by SWITCHBOARD_TEST_BINARY: not ours to remove
	buildErr  error
)

// binary builds the switchboard command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// make test builds the race binary once for its shards of this package.
		if p := os.Getenv("SWITCHBOARD_TEST_BINARY"); p != "" {
			binPath, keepBin = p, true
			return
		}
		dir, err := os.MkdirTemp("", "switchboard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "switchboard")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" && !keepBin {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// freePort is a loopback port for a gateway's listener, from the peers' band below the
// ephemeral range (testport): a port the kernel handed out could be some process's outgoing
// connection by the time the gateway binds it.
func freePort(t *testing.T) int {
	t.Helper()
	return testport.FreeUDP(t)
}

// writeConfig writes a configuration for a test gateway on free ports and returns its path
// and HTTP base URL.
func writeConfig(t *testing.T, dbURL string) (path, base string) {
	t.Helper()
	path, base, _, _, _ = writeGatewayConfig(t, dbURL)
	return path, base
}

// waitReady polls /readyz until it answers 200 or the deadline passes. The deadline is
// generous: a race-built gateway's first start migrates an empty database, and at load 22 that
// alone took 40 s (the old 60 s bound failed a test there).
func waitReady(t *testing.T, base string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(150 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("serve exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("serve did not become ready within 150s")
}

// The gateway starts as a subprocess, migrates, answers /readyz and /metrics, and exits 0
// within the grace period on SIGTERM.
func TestServeReadyMetricsAndSIGTERM(t *testing.T) {
	bin := binary(t)
	path, base := writeConfig(t, pgtest.EmptyURL(t))

	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
		}
	}()
	exited := make(chan error, 1)
	go func() { <-logsDone; exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})

	waitReady(t, base, exited)

	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d, want 200", p, resp.StatusCode)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"switchboard_build_info{", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The ticketing core is mounted: an outside phone system's events become a call record
	// and a ticket.
	callID := "serve-test-call"
	events := fmt.Sprintf(`{"events":[
		{"id":"6f1c2a3e-0000-4000-8000-000000000001","call_id":%[1]q,"seq":1,"type":"call.started","at":"2026-11-22T10:00:00Z","direction":"inbound","from":"+15557779999","to":"+15550100","line":"+15550100"},
		{"id":"6f1c2a3e-0000-4000-8000-000000000002","call_id":%[1]q,"seq":2,"type":"call.answered","at":"2026-11-22T10:00:05Z"},
		{"id":"6f1c2a3e-0000-4000-8000-000000000003","call_id":%[1]q,"seq":3,"type":"call.ended","at":"2026-11-22T10:01:05Z","outcome":"answered"}]}`, callID)
	req, _ := http.NewRequest("POST", base+"/api/v2/call_events", strings.NewReader(events))
	req.SetBasicAuth("admin@example.com", "adminpass")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"accepted":3`) {
		t.Fatalf("POST /call_events = %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/api/v2/calls/"+callID, nil)
		req.SetBasicAuth("admin@example.com", "adminpass")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.Contains(string(body), `"state":"ended"`) && !strings.Contains(string(body), `"ticket_id":null`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call not applied within 30s: %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM, want 0; logs:\n%s", err, logs.String())
		}
	case <-time.After(10*time.Second + 5*time.Second):
		t.Fatalf("serve did not exit within the 10s grace period; logs:\n%s", logs.String())
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{`"database migrated"`, `"switchboard started"`, `"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

// migrate applies the schema once, then reports it is up to date.
func TestMigrateCommandIsIdempotent(t *testing.T) {
	path, _ := writeConfig(t, pgtest.EmptyURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("DATABASE_URL", "")
	var out, errb strings.Builder
	if code := run(ctx, []string{"migrate", "--config", path}, &out, &errb); code != 0 {
		t.Fatalf("first migrate exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "migrated from version 0") {
		t.Errorf("first migrate said %q", out.String())
	}
	out.Reset()
	if code := run(ctx, []string{"migrate", "--config", path}, &out, &errb); code != 0 {
		t.Fatalf("second migrate exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "up to date") {
		t.Errorf("second migrate said %q", out.String())
	}
}

// token creates an API token that the API accepts as a Bearer token.
func TestTokenCommand(t *testing.T) {
	g := runGateway(t)
	path := filepath.Join(g.dir, "switchboard.yaml")
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"token", "--config", path, "--email", "admin@example.com", "--description", "test"}, &out, &errb); code != 0 {
		t.Fatalf("token: exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	req, _ := http.NewRequest("GET", g.base+"/api/v2/users", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /users with the new token = %d, want 200", resp.StatusCode)
	}
	out.Reset()
	if code := run(context.Background(), []string{"token", "--config", path, "--email", "nobody@example.com"}, &out, &errb); code != 1 {
		t.Errorf("token for an unknown email: exit %d, want 1", code)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: loud\nbogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"check-config", bad}, &out, &errb); code != 1 {
		t.Fatalf("check-config on a bad file: exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "bogus_key") {
		t.Errorf("check-config output does not name the unknown key:\n%s", out.String())
	}

	out.Reset()
	if code := run(context.Background(), []string{"check-config", "../../deploy/dev/switchboard.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("check-config on the dev file: exit %d:\n%s", code, out.String())
	}
	if strings.TrimSpace(out.String()) != "ok" {
		t.Errorf("check-config on the dev file printed %q, want ok", out.String())
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"migrate", "--help"}, {"check-config", "--help"}, {"token", "--help"}, {"dead-letters", "--help"}, {"version", "--help"}, {"version"}} {
		var out, errb strings.Builder
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d, want 0 (stderr %q)", args, code, errb.String())
		}
		if out.Len() == 0 {
			t.Errorf("%v printed nothing", args)
		}
	}
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// http.max_upload_bytes reaches the API: with 4 KiB, a 5,000-byte attachment gets 413 naming
// the field and the limit, a 1,000-byte one is stored (201).
func TestUploadLimitFromConfiguration(t *testing.T) {
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, pgtest.EmptyURL(t))
	listen := strings.TrimPrefix(base, "http://")
	editConfig(t, path, [][2]string{{`http: {listen: "` + listen + `"}`, `http: {listen: "` + listen + `", max_upload_bytes: 4096}`}})
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(binary(t), path)
	code, m := g.api("POST", "/uploads?filename=big.txt", strings.Repeat("x", 5000))
	if desc, _ := m["description"].(string); code != 413 || !strings.Contains(desc, "file:") || !strings.Contains(desc, "4096 bytes") {
		t.Errorf("5,000-byte upload with a 4 KiB limit: %d %v, want 413 naming file and 4096 bytes", code, m)
	}
	if code, m := g.api("POST", "/uploads?filename=small.txt", strings.Repeat("x", 1000)); code != 201 {
		t.Errorf("1,000-byte upload: %d %v, want 201", code, m)
	}
}
