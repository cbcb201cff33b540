package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// extendingACD is the fake ACD with the wrap-up extension the page's Extend button asks for.
type extendingACD struct{ *fakeACD }

func (a extendingACD) ExtendWrapUp(id int64, d time.Duration) (ivr.AgentStatus, error) {
	a.record(fmt.Sprintf("extend:%d", int(d.Seconds())))
	return ivr.AgentStatus{Agent: ivr.Agent{ID: id}, State: ivr.StateWrapUp}, nil
}

func (a extendingACD) Agent(id int64) (ivr.AgentStatus, error) {
	st, err := a.fakeACD.Agent(id)
	st.Queues = []string{"support", "sales"}
	return st, err
}

// fakePauser records the page's Pause recording presses in the fake ACD's actions.
type fakePauser struct{ acd *fakeACD }

func (p fakePauser) PauseCall(_ context.Context, callID string, by int64, pause bool) error {
	p.acd.record(fmt.Sprintf("recording:%s:%d:%t", callID, by, pause))
	return nil
}

// agentPageHarness serves the page with its WebSocket upgrade delayed by wsDelay (a loaded or
// distant gateway: the page is up long before /ws opens), the fake ACD, the part of /api/v2 the
// page uses, and the /test/* controls of agent_page.test.mjs.
type agentPageHarness struct {
	*harness
	wsDelay atomic.Int64 // ms each /ws upgrade waits
	mu      sync.Mutex
	notes   []string // bodies of the private comments posted
	scopes  []string // the queries of GET /calls
}

func newAgentPageHarness(t *testing.T) *agentPageHarness {
	t.Helper()
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 16)})
	if err != nil {
		t.Fatal(err)
	}
	acd := newFakeACD()
	srv, err := New(Options{Auth: fakeAuth{}, ACD: extendingACD{acd}, WebRTC: rtc, Recordings: fakePauser{acd}})
	if err != nil {
		t.Fatal(err)
	}
	inner := http.NewServeMux()
	srv.Register(inner)
	ap := &agentPageHarness{}
	outer := http.NewServeMux()
	outer.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Duration(ap.wsDelay.Load()) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		inner.ServeHTTP(w, r)
	})
	outer.Handle("/", inner)
	hs := newTestHTTP(t, outer)
	t.Cleanup(func() {
		srv.Close()
		rtc.Close()
	})
	ap.harness = &harness{srv: srv, acd: acd, rtc: rtc, http: hs, mux: outer}
	return ap
}

// Rule (issue 21, agent page), in headless Chromium with its CPU throttled 4× and the
// WebSocket upgrade delayed 3 s:
//   - Available clicked right after login, before the WebSocket is open, is kept and carried
//     out once the connection and the audio are up (before, it was dropped and the agent stayed
//     offline); Away clicked while the page reconnects likewise;
//   - an incoming call rings (ringtone) and, with the page in a background tab, shows a
//     browser notification; answering stops both;
//   - a private note typed during the call lands on the call's ticket (public false);
//   - Pause recording and Resume recording reach the recordings service with the agent's id;
//   - the wrap-up card shows; Extend and End wrap-up reach the ACD;
//   - the microphone and speaker pickers list the devices and switching the microphone works;
//   - audio failure is said (ICE failed, Retry audio) and Available says why it is refused;
//     Retry audio reconnects and Available works again;
//   - Recent calls asks for the agent's own calls (agent_id), their team's (team=true: the agents
//     sharing a group with them) or their queues' (queue), and the table fits its card.
func TestAgentPageInChromium(t *testing.T) {
	node := e2eTools(t)
	h := newAgentPageHarness(t)
	car := newCarrier(t, testAllocator(t, 4))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	auth := func(fn http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, ok := h.srv.Authenticate(r); !ok {
				apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
				return
			}
			fn(w, r)
		}
	}
	m := h.mux
	m.HandleFunc("GET /api/v2/calls/{id}/screen_pop", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"screen_pop": map[string]any{"call": map[string]any{"id": r.PathValue("id")},
			"candidates": []any{}, "ticket": map[string]any{"id": 77, "subject": "Router"}, "wait_time": 3}})
	}))
	m.HandleFunc("GET /api/v2/calls/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"call": map[string]any{"id": r.PathValue("id"), "ticket_id": 77}})
	}))
	m.HandleFunc("GET /api/v2/calls", auth(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.scopes = append(h.scopes, r.URL.RawQuery)
		h.mu.Unlock()
		var calls []any
		for i := range 10 { // long numbers and outcomes: what made the table overflow its card
			calls = append(calls, map[string]any{"id": fmt.Sprintf("c%d", i), "direction": "inbound",
				"from": "+4420712345678" + fmt.Sprint(i), "to": "+15550199", "outcome": "no_answer", "ticket_id": 1000 + i,
				"started_at": time.Now().UTC().Format(time.RFC3339)})
		}
		writeJSON(w, 200, map[string]any{"calls": calls, "next_page": nil})
	}))
	m.HandleFunc("POST /api/v2/tickets/{id}/comments", auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Comment struct {
				Body   string `json:"body"`
				Public *bool  `json:"public"`
			} `json:"comment"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if r.PathValue("id") != "77" || body.Comment.Public == nil || *body.Comment.Public {
			apierror.Write(w, apierror.Error{Status: 422, Description: "want a private comment on ticket 77"})
			return
		}
		h.mu.Lock()
		h.notes = append(h.notes, body.Comment.Body)
		h.mu.Unlock()
		writeJSON(w, 201, map[string]any{"comment": map[string]any{"id": 1, "body": body.Comment.Body, "public": false}})
	}))
	for _, p := range []string{"GET /api/v2/settings/voice", "GET /api/v2/lines"} {
		m.HandleFunc(p, auth(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]any{}) }))
	}

	awaitHTTP := func(w http.ResponseWriter, ok bool) {
		if ok {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusGatewayTimeout)
	}
	m.HandleFunc("POST /test/ws-delay", func(w http.ResponseWriter, r *http.Request) {
		var ms int64
		fmt.Sscan(r.URL.Query().Get("ms"), &ms)
		h.wsDelay.Store(ms)
		w.WriteHeader(http.StatusNoContent)
	})
	// drop cuts the agent's WebSocket as a network blip does: the page reconnects.
	m.HandleFunc("POST /test/drop", func(w http.ResponseWriter, r *http.Request) {
		as := h.srv.agentByID(1)
		if as == nil {
			w.WriteHeader(http.StatusConflict)
			return
		}
		as.mu.Lock()
		wc := as.conn
		as.mu.Unlock()
		if wc != nil {
			wc.c.CloseNow()
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// audio-failed tells the page what the server sees when ICE fails (the Go test
	// TestAudioFailureSetsAgentAwayAndRefusesAvailableUntilAudioReconnects makes it fail for real).
	m.HandleFunc("POST /test/audio-failed", func(w http.ResponseWriter, r *http.Request) {
		if as := h.srv.agentByID(1); as != nil {
			as.audioChanged(media.WebRTCFailed)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /test/wrap-up", func(w http.ResponseWriter, r *http.Request) {
		h.srv.AgentStateChanged(ivr.AgentStatus{Agent: ivr.Agent{ID: 1}, State: ivr.StateWrapUp}) // Seq 0, as the fake ACD's
		w.WriteHeader(http.StatusNoContent)
	})
	offered := make(chan error, 1)
	m.HandleFunc("POST /test/offer", func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, ocancel := context.WithTimeout(ctx, 60*time.Second)
			defer ocancel()
			leg, err := h.srv.Dialer().Offer(octx, ivr.Offer{CallID: "call-ap-1", AgentID: 1, Queue: "support", From: "+15550123"})
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
			case <-octx.Done():
			}
		}()
		w.WriteHeader(http.StatusAccepted)
	})
	m.HandleFunc("GET /test/acd", func(w http.ResponseWriter, r *http.Request) {
		want := r.URL.Query().Get("action")
		n := 1
		fmt.Sscan(r.URL.Query().Get("count"), &n)
		deadline := time.After(20 * time.Second)
		for range 1000 {
			if h.acd.count(want) >= n {
				awaitHTTP(w, true)
				return
			}
			select {
			case <-h.acd.changed:
			case <-time.After(200 * time.Millisecond):
			case <-deadline:
				awaitHTTP(w, false)
				return
			}
		}
		awaitHTTP(w, false)
	})
	m.HandleFunc("GET /test/notes", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		writeJSON(w, 200, map[string]any{"notes": h.notes, "scopes": h.scopes})
	})

	dir := t.TempDir()
	wav := filepath.Join(dir, "mic.wav")
	if err := os.WriteFile(wav, writeToneWAV(48000, 10, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	h.wsDelay.Store(3000)
	runBrowserTest(t, node, "agent_page.test.mjs", 240*time.Second, "SOFTPHONE_URL="+h.http.URL, "FAKE_AUDIO_WAV="+wav)

	select {
	case err := <-offered:
		if err != nil {
			t.Fatalf("offer: %v", err)
		}
	default:
		t.Fatal("the call was never offered")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.notes) != 1 || !strings.Contains(h.notes[0], "asked for a refund") {
		t.Errorf("private notes posted: %q, want the one typed during the call", h.notes)
	}
	var mine, team, queues bool
	for _, q := range h.scopes {
		mine = mine || strings.Contains(q, "agent_id=1")
		team = team || strings.Contains(q, "team=true")
		queues = queues || strings.Contains(q, "queue=support%2Csales")
		if !strings.Contains(q, "agent_id=") && !strings.Contains(q, "queue=") && !strings.Contains(q, "team=true") {
			t.Errorf("the page asked for every call of the gateway: GET /calls?%s", q)
		}
	}
	if !mine || !team || !queues {
		t.Errorf("GET /calls queries %q: want the agent's own (agent_id=1), their team's (team=true) and their queues' (queue=support,sales)", h.scopes)
	}
}
