package web

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// memSessions is a SessionStore in memory, shared by the test's nodes as the ticketing store's
// page_sessions is by a cluster's.
type memSessions struct {
	mu sync.Mutex
	m  map[string]session
}

func (s *memSessions) CreateSession(_ context.Context, key []byte, a Agent, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(key)] = session{agent: a, expires: exp}
	return nil
}

func (s *memSessions) Session(_ context.Context, key []byte) (Agent, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(key)]
	if !ok {
		return Agent{}, time.Time{}, ErrNoSession
	}
	return v.agent, v.expires, nil
}

func (s *memSessions) EndSession(_ context.Context, key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(key))
	return nil
}

func TestFrontURL_RefusesAnythingButSchemeAndHost(t *testing.T) {
	for in, want := range map[string]string{"http://127.0.0.1:8080": "http://127.0.0.1:8080", "https://gw.example.com/": "https://gw.example.com"} {
		if got, err := frontOrigin(in); err != nil || got != want {
			t.Errorf("frontOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"gw.example.com", "ftp://gw.example.com", "https://gw.example.com/agents", "https://u:p@gw.example.com", "https://gw.example.com/?a=1", "https://"} {
		if got, err := frontOrigin(bad); err == nil {
			t.Errorf("frontOrigin(%q) = %q, want an error", bad, got)
		}
	}
}

// Issue 19: a page opened at a node's own address (not through the cluster's HTTP front)
// moves when that node stops answering. Node A is told the front's URL (Options.FrontURL);
// "the front" is node B (a front would send the page to a live node); both share the logins.
// The agent logs in on node A in headless Chromium; node A then stops (its listener closed,
// the page's WebSocket cut, as a crash does): the page loads itself from the front, keeps its
// login (same host name, so the cookie goes along), and its softphone attaches to node B.
// Without the page's move it keeps reconnecting to node A and the test times out.
func TestPageAtANodesOwnAddressMovesToTheFrontWhenTheNodeStops(t *testing.T) {
	node := e2eTools(t)
	store := &memSessions{m: map[string]session{}}
	b := newHarness(t, Options{Sessions: store})
	a := newHarness(t, Options{Sessions: store, FrontURL: b.http.URL})
	for _, h := range []*harness{a, b} {
		for _, p := range []string{"GET /api/v2/settings/voice", "GET /api/v2/lines", "GET /api/v2/calls"} {
			h.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]any{}) })
		}
	}
	// The controls live on node B (node A goes away).
	b.mux.HandleFunc("POST /test/stop-a", func(w http.ResponseWriter, r *http.Request) {
		if a.srv.agentByID(1) == nil {
			w.WriteHeader(http.StatusConflict) // the page is not attached to node A
			return
		}
		a.http.Close() // no new connection: refused, as from a node that is gone
		if as := a.srv.agentByID(1); as != nil {
			as.mu.Lock()
			wc := as.conn
			as.mu.Unlock()
			if wc != nil {
				wc.c.CloseNow()
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	b.mux.HandleFunc("GET /test/attached", func(w http.ResponseWriter, r *http.Request) {
		as := b.srv.agentByID(1)
		attached := false
		if as != nil {
			as.mu.Lock()
			attached = as.conn != nil
			as.mu.Unlock()
		}
		if !attached {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	runBrowserTest(t, node, "front.test.mjs", 180*time.Second, "NODE_URL="+a.http.URL, "FRONT_URL="+b.http.URL)
}
