package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// DNS rebinding: a page on attacker.example whose name now resolves to the gateway's loopback
// address sends "Host: attacker.example"; the gateway answers 421 before any handler runs,
// and every response — refused or not, page or API — carries the security headers.
func TestEdge_DNSRebindingHostRefusedAndSecurityHeadersEverywhere(t *testing.T) {
	reached := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { reached++ })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	h := Edge(mux, EdgeOptions{AllowedHosts: []string{"localhost", "127.0.0.1", "::1", "GW.example.com."}, AnyHost: []string{"/healthz"}})
	for _, c := range []struct {
		host, path string
		want       int
	}{
		{"attacker.example", "/api/v2/users", http.StatusMisdirectedRequest},
		{"attacker.example:8080", "/", http.StatusMisdirectedRequest},
		{"127.0.0.2:8080", "/", http.StatusMisdirectedRequest},
		{"", "/", http.StatusMisdirectedRequest},
		{"127.0.0.1:8080", "/api/v2/users", http.StatusOK},
		{"[::1]:8080", "/", http.StatusOK},
		{"LOCALHOST:8080", "/", http.StatusOK},
		{"gw.example.com", "/", http.StatusOK},
		{"attacker.example", "/healthz", http.StatusOK},
	} {
		req := httptest.NewRequest("GET", "http://x"+c.path, nil)
		req.Host = c.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("Host %q %s: %d, want %d", c.host, c.path, rec.Code, c.want)
		}
		hd := rec.Header()
		if !strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'") || hd.Get("X-Content-Type-Options") != "nosniff" ||
			hd.Get("Referrer-Policy") == "" || hd.Get("X-Frame-Options") != "DENY" {
			t.Errorf("Host %q %s: security headers missing: %v", c.host, c.path, hd)
		}
	}
	if reached != 4 {
		t.Errorf("the handler ran %d times, want 4 (refused hosts never reach it)", reached)
	}
	any := Edge(mux, EdgeOptions{AllowedHosts: []string{"*ip", "localhost"}})
	for host, want := range map[string]int{"10.1.2.3:8080": 200, "[2001:db8::1]:80": 200, "evil.example": 421} {
		req := httptest.NewRequest("GET", "http://x/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		any.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("*ip: Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

// The agent page's own CSP (it replaces the API's) forbids framing too.
func TestPageCSPForbidsFraming(t *testing.T) {
	h := newHarness(t, Options{})
	res, err := http.Get(h.http.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("page CSP %q does not forbid framing", csp)
	}
}

// Behind a TLS-terminating proxy (SecureCookie, the default off loopback) the session cookie
// is Secure with the __Host- prefix — HttpOnly, SameSite=Strict, Path=/, no Domain — so that
// a plain-http page or a sibling subdomain can neither read nor plant it; the unprefixed name
// is not accepted then.
func TestCookie_BehindTLSProxy_SecureHostPrefixed(t *testing.T) {
	h := newHarness(t, Options{SecureCookie: true})
	res, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	if res.StatusCode != http.StatusOK || c == nil {
		t.Fatalf("login: %d %v", res.StatusCode, c)
	}
	if c.Name != "__Host-switchboard_session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie behind a TLS proxy: %+v", c)
	}
	r, _ := http.NewRequest("GET", h.http.URL+"/session", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: c.Value})
	if _, ok := h.srv.Authenticate(r); ok {
		t.Fatal("the unprefixed cookie name is accepted with SecureCookie")
	}
	plain := newHarness(t, Options{})
	if _, c := login(t, plain.http.URL, "agent1@example.com", "agentpass"); c == nil || c.Name != CookieName || c.Secure || !c.HttpOnly {
		t.Fatalf("cookie on loopback without TLS: %+v", c)
	}
}

// A password change (role change, deletion) ends the agent's sessions: EndSessions closes the
// softphone's WebSocket and the cookie stops working, on /session and for the API.
func TestEndSessions_ClosesWebSocketAndCookie(t *testing.T) {
	h := newHarness(t, Options{})
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	h.srv.EndSessions(1)
	select {
	case <-p.done:
	case <-time.After(wait):
		t.Fatal("the WebSocket stayed open after EndSessions")
	}
	r, _ := http.NewRequestWithContext(context.Background(), "GET", h.http.URL+"/session", nil)
	r.AddCookie(c)
	if _, ok := h.srv.Authenticate(r); ok {
		t.Fatal("the cookie still authenticates after EndSessions")
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/session after EndSessions: %d", res.StatusCode)
	}
}
