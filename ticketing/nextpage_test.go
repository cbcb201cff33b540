package ticketing_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Host header poisoning: a request whose Host names the attacker's site (a DNS-rebinding page,
// a proxy that passes Host on) must not make next_page point there — an API client following
// the link would send its credentials to the attacker. Links are built on the configured
// public URL, or are relative when there is none.
func TestNextPage_NeverEchoesHostileHost(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.newUser("Paged")
	}
	for _, c := range []struct{ public, want string }{
		{"https://gw.example.com/", "https://gw.example.com/api/v2/users?"},
		{"", "/api/v2/users?"},
	} {
		api := ticketing.NewAPI(e.store, ticketing.APIOptions{PublicURL: c.public})
		mux := http.NewServeMux()
		api.Register(mux, "/api/v2")
		req := httptest.NewRequest("GET", "http://attacker.example/api/v2/users?per_page=1&role=end-user", nil)
		req.Host = "attacker.example"
		req.SetBasicAuth("admin@example.com", adminPass)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		var body struct {
			NextPage *string `json:"next_page"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK || body.NextPage == nil {
			t.Fatalf("public URL %q: %d %s", c.public, rec.Code, rec.Body)
		}
		if !strings.HasPrefix(*body.NextPage, c.want) || strings.Contains(*body.NextPage, "attacker") {
			t.Errorf("public URL %q: next_page = %q, want it under %q and never the request's Host", c.public, *body.NextPage, c.want)
		}
	}
}
