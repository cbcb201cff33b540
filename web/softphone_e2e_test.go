package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
)

const chromiumPath = "/usr/bin/chromium"

// requirePeers skips the test when a tool is missing, or fails it when SWITCHBOARD_REQUIRE_PEERS
// is set (make test sets it and installs the tools).
func requirePeers(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
		t.Fatalf("%s (SWITCHBOARD_REQUIRE_PEERS is set)", msg)
	}
	t.Skip(msg)
}

// e2eTools returns node's path with playwright-core installed in web/e2e (npm ci when missing).
func e2eTools(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		requirePeers(t, "node not installed: apt-get install nodejs npm")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		requirePeers(t, "%s not installed: apt-get install chromium", chromiumPath)
	}
	if _, err := os.Stat("e2e/node_modules/playwright-core/package.json"); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			requirePeers(t, "npm not installed: apt-get install npm")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = "e2e"
		if out, err := cmd.CombinedOutput(); err != nil {
			requirePeers(t, "npm ci in web/e2e failed: %v\n%s", err, out)
		}
	}
	return node
}

// e2eAPI is the part of /api/v2 the page uses, as the integrator serves it, reduced to fixed
// answers; it authenticates with the softphone's session cookie (Server.Authenticate).
func e2eAPI(h *harness, requesterSwitched chan<- string) {
	auth := func(fn http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, ok := h.srv.Authenticate(r); !ok {
				apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
				return
			}
			fn(w, r)
		}
	}
	h.mux.HandleFunc("GET /api/v2/calls/{id}/screen_pop", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"screen_pop": map[string]any{
			"call": map[string]any{"id": r.PathValue("id"), "location": "Chicago, IL"},
			"candidates": []any{
				map[string]any{"user": map[string]any{"id": 7, "name": "Ada Owner"}, "line_type": "direct"},
				map[string]any{"user": map[string]any{"id": 8, "name": "Bob Shared"}, "line_type": "shared"},
			},
			"requester": map[string]any{"id": 7}, "ticket": map[string]any{"id": 42, "subject": "Printer on fire"},
			"ticket_is_new": false, "wait_time": 12,
		}})
	}))
	h.mux.HandleFunc("PUT /api/v2/calls/{id}/requester", auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Call struct {
				RequesterID int64 `json:"requester_id"`
			} `json:"call"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		select {
		case requesterSwitched <- fmt.Sprint(body.Call.RequesterID):
		default:
		}
		writeJSON(w, 200, map[string]any{"call": map[string]any{"id": r.PathValue("id"), "requester_id": body.Call.RequesterID}})
	}))
	h.mux.HandleFunc("GET /api/v2/calls/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"call": map[string]any{"id": r.PathValue("id"), "ticket_id": 42}})
	}))
	h.mux.HandleFunc("GET /api/v2/calls", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"calls": []any{map[string]any{"id": "call-e2e-1", "direction": "inbound",
			"from": "+15550123", "to": "+15550199", "outcome": "answered", "ticket_id": 42,
			"started_at": time.Now().UTC().Format(time.RFC3339)}}, "next_page": nil})
	}))
	h.mux.HandleFunc("GET /api/v2/tickets/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"ticket": map[string]any{"id": 42, "subject": "Printer on fire", "status": "open"}})
	}))
	h.mux.HandleFunc("GET /api/v2/tickets/{id}/comments", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"comments": []any{
			map[string]any{"id": 1, "type": "Comment", "body": "Call ID call-e2e-1, language en, IVR 1", "public": false},
			map[string]any{"id": 2, "type": "VoiceComment", "body": "Inbound call", "public": false, "from": "+15550123",
				"to": "+15550199", "duration": 42, "location": "Chicago, IL", "recording": map[string]any{"id": "rec-1"}},
		}})
	}))
	h.mux.HandleFunc("GET /api/v2/recordings/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		_, _ = w.Write(writeToneWAV(8000, 1, 440))
	}))
	h.mux.HandleFunc("GET /api/v2/settings/voice", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"settings": map[string]any{"outbound": map[string]any{
			"prompt_ticket_choice": false, "allow_new_ticket": false, "allow_no_ticket": false, "allow_entered_number": false}}})
	}))
	h.mux.HandleFunc("GET /api/v2/users/search", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"users": []any{}, "next_page": nil})
	}))
	h.mux.HandleFunc("POST /api/v2/calls", auth(func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "Only numbers stored on the contact can be dialled (OB-5)"})
	}))
}

// Rule (issue 7, docs/softphone.md hooks): in a real headless Chromium the agent logs in, goes
// available, sees the offered call (caller's number, screen pop), answers; audio flows both
// ways (the page's getStats shows inbound audio; the carrier detects the browser's fake-mic
// 1 kHz tone); hold and resume reach the ACD; a keypad digit reaches the carrier as RFC 4733;
// "hang up and call back" ends the agent's leg and then asks for the callback of that call,
// showing the refusal (TU-3); Call back after it asks again (TU-4); a refused outbound dial shows
// its reason in dial-error.
func TestSoftphoneInChromium(t *testing.T) {
	node := e2eTools(t)
	h := newHarness(t, Options{})
	switched := make(chan string, 4)
	e2eAPI(h, switched)
	car := newCarrier(t, testAllocator(t, 4))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	offered := make(chan error, 1)
	hungUp := make(chan struct{})
	const callID = "call-e2e-1"
	// TU-4: the page's Call back asks for the ended call's callback; the answer here is a
	// refusal, which the page shows in callback-error.
	var cbMu sync.Mutex
	var calledBack []string
	h.mux.HandleFunc("POST /api/v2/calls/{id}/callback", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := h.srv.Authenticate(r); !ok {
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
			return
		}
		cbMu.Lock()
		calledBack = append(calledBack, r.PathValue("id"))
		cbMu.Unlock()
		apierror.Write(w, apierror.Error{Status: http.StatusUnprocessableEntity, Description: "call " + r.PathValue("id") + " has no number to call back"})
	})
	// 200 once the page asked for two callbacks (hang up and call back, then Call back).
	h.mux.HandleFunc("GET /test/callbacks", func(w http.ResponseWriter, r *http.Request) {
		cbMu.Lock()
		n := len(calledBack)
		cbMu.Unlock()
		if n < 2 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h.mux.HandleFunc("POST /test/offer", func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		go func() { // what the ACD does: offer, bridge on answer, wait for the agent's hang-up
			defer wg.Done()
			octx, ocancel := context.WithTimeout(ctx, 60*time.Second)
			defer ocancel()
			leg, err := h.srv.Dialer().Offer(octx, ivr.Offer{CallID: callID, AgentID: 1, Queue: "support",
				From: "+15550123", CallerName: "Ada Owner", Line: "+15550199", MenuPath: "1", Language: "en"})
			offered <- err
			if err != nil {
				return
			}
			stop, err := leg.Bridge(car.ep)
			if err != nil {
				t.Errorf("bridge: %v", err)
				return
			}
			defer stop()
			select {
			case <-leg.Done():
				close(hungUp)
			case <-octx.Done():
			}
		}()
		w.WriteHeader(http.StatusAccepted)
	})
	awaitHTTP := func(w http.ResponseWriter, ok bool) {
		if ok {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusGatewayTimeout)
	}
	h.mux.HandleFunc("GET /test/carrier-heard", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-car.heard:
			awaitHTTP(w, true)
		case <-time.After(20 * time.Second):
			awaitHTTP(w, false)
		}
	})
	h.mux.HandleFunc("GET /test/dtmf", func(w http.ResponseWriter, r *http.Request) {
		want := []rune(r.URL.Query().Get("digit"))
		deadline := time.After(10 * time.Second)
		for {
			select {
			case d := <-car.dtmf:
				if len(want) == 1 && d == want[0] {
					awaitHTTP(w, true)
					return
				}
			case <-deadline:
				awaitHTTP(w, false)
				return
			}
		}
	})
	h.mux.HandleFunc("GET /test/acd", func(w http.ResponseWriter, r *http.Request) {
		want := r.URL.Query().Get("action")
		for range 100 {
			if h.acd.did(want) {
				awaitHTTP(w, true)
				return
			}
			select {
			case <-h.acd.changed:
			case <-time.After(10 * time.Second):
				awaitHTTP(w, false)
				return
			}
		}
		awaitHTTP(w, false)
	})

	dir := t.TempDir()
	wav := filepath.Join(dir, "mic-1khz.wav")
	if err := os.WriteFile(wav, writeToneWAV(48000, 10, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	runBrowserTest(t, node, "softphone.test.mjs", 150*time.Second, "SOFTPHONE_URL="+h.http.URL, "FAKE_AUDIO_WAV="+wav,
		"SOFTPHONE_CALLER=+15550123")

	select {
	case err := <-offered:
		if err != nil {
			t.Fatalf("offer: %v", err)
		}
	default:
		t.Fatal("the call was never offered")
	}
	select {
	case <-hungUp:
	case <-time.After(wait):
		t.Fatal("the agent's leg did not end after the page's hang-up")
	}
	for _, a := range []string{"state:available", "hold:" + callID, "resume:" + callID} {
		if !h.acd.did(a) {
			t.Errorf("the ACD never got %q", a)
		}
	}
	cbMu.Lock()
	if got := strings.Join(calledBack, ","); got != callID+","+callID {
		t.Errorf("the page asked for callbacks of %q, want %s twice (hang up and call back, then Call back: TU-3, TU-4)", got, callID)
	}
	cbMu.Unlock()
	select {
	case id := <-switched:
		if id != "8" {
			t.Errorf("requester switched to %s, want 8", id)
		}
	default:
		t.Error("the page never switched the requester (PM-11)")
	}
}

// runBrowserTest runs one of e2e/'s node tests (headless Chromium through playwright-core) with
// env added to the environment (besides ARTIFACTS_DIR, .data/e2e for screenshots, and
// CHROMIUM_PATH), bounded by limit, and fails t when it fails. node and the browser it starts
// run in their own process group, killed whole at the end so no browser outlives the test.
func runBrowserTest(t *testing.T, node, script string, limit time.Duration, env ...string) {
	t.Helper()
	artifacts, err := filepath.Abs(filepath.Join("..", ".data", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", script)
	cmd.Dir = "e2e"
	cmd.Env = append(append(os.Environ(), "ARTIFACTS_DIR="+artifacts, "CHROMIUM_PATH="+chromiumPath), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a browser left behind by a crash
	}
	t.Logf("node --test output:\n%s", out.String())
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}
