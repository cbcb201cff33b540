package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// storeAuth logs staff in against the ticketing store (what the gateway's wiring does).
type storeAuth struct{ store *ticketing.Store }

func (a storeAuth) Login(ctx context.Context, email, password string) (Agent, error) {
	u, err := a.store.CheckPassword(ctx, email, password)
	if errors.Is(err, ticketing.ErrUnauthorized) {
		return Agent{}, ErrBadCredentials
	}
	if err != nil {
		return Agent{}, err
	}
	return Agent{ID: u.ID, Email: email, Name: u.Name}, nil
}

// storeSessions is the gateway's SessionStore: the ticketing store's page_sessions.
type storeSessions struct{ store *ticketing.Store }

func (s storeSessions) CreateSession(ctx context.Context, key []byte, a Agent, exp time.Time) error {
	return s.store.CreatePageSession(ctx, key, a.ID, exp)
}

func (s storeSessions) Session(ctx context.Context, key []byte) (Agent, time.Time, error) {
	u, exp, err := s.store.PageSession(ctx, key)
	if errors.Is(err, ticketing.ErrNotFound) {
		return Agent{}, time.Time{}, fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	if err != nil {
		return Agent{}, time.Time{}, err
	}
	return Agent{ID: u.ID, Name: u.Name}, exp, nil
}

func (s storeSessions) EndSession(ctx context.Context, key []byte) error {
	return s.store.EndPageSession(ctx, key)
}

// Issue 19: three nodes' page servers on one PostgreSQL (through a proxy the test cuts). A login
// made on node A is accepted by node B (GET /session, the API's cookie authentication). With
// the database away, node B still accepts the login it saw itself, while node C, which never
// saw it, answers 503 with Retry-After — try again — rather than 401, which would send the
// page back to its login form. Once the database is back, a logout on node A ends the login on
// node B at once.
func TestSessions_LoginOnOneNodeHoldsOnAnother_DatabaseAwayKeepsSeenLogins(t *testing.T) {
	proxy, pool, _ := pgtest.ProxiedPool(t)
	store := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	ctx := context.Background()
	if _, err := store.EnsureUser(ctx, "agent1@example.com", "Agent One", ticketing.RoleAgent, "agentpass"); err != nil {
		t.Fatal(err)
	}
	node := func() *harness {
		t.Helper()
		rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 4)})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Options{Auth: storeAuth{store}, ACD: newFakeACD(), WebRTC: rtc, Sessions: storeSessions{store}})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		srv.Register(mux)
		hs := newTestHTTP(t, mux)
		t.Cleanup(func() { srv.Close(); rtc.Close() })
		return &harness{srv: srv, rtc: rtc, http: hs, mux: mux}
	}
	a, b, c := node(), node(), node()
	client := &http.Client{Timeout: wait}
	session := func(h *harness, cookie *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.http.URL+"/session", nil)
		req.AddCookie(cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp, err := client.Post(a.http.URL+"/login", "application/json", strings.NewReader(`{"email":"agent1@example.com","password":"agentpass"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == CookieName {
			cookie = ck
		}
	}
	if resp.StatusCode != http.StatusOK || cookie == nil {
		t.Fatalf("login on node A: %d, cookie %v", resp.StatusCode, cookie)
	}
	if got := session(b, cookie).StatusCode; got != http.StatusOK {
		t.Fatalf("node B: GET /session with node A's login = %d, want 200", got)
	}
	if ag, ok := b.srv.Authenticate(&http.Request{Header: http.Header{"Cookie": {cookie.String()}}}); !ok || ag.Name != "Agent One" {
		t.Fatalf("node B's Authenticate = %v %v, want Agent One", ag, ok)
	}

	proxy.Down()
	if got := session(b, cookie).StatusCode; got != http.StatusOK {
		t.Errorf("node B with the database away: GET /session = %d, want 200 (it saw the login)", got)
	}
	r := session(c, cookie)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("node C with the database away: GET /session = %d (Retry-After %q), want 503 with Retry-After, not 401",
			r.StatusCode, r.Header.Get("Retry-After"))
	}
	proxy.Up()

	// The pool reconnects after the outage: a logout that found it broken is repeated.
	deadline := time.Now().Add(wait)
	for {
		req, _ := http.NewRequest(http.MethodPost, a.http.URL+"/logout", nil)
		req.AddCookie(cookie)
		if resp, err = client.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if session(b, cookie).StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node B still accepts the login node A logged out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
