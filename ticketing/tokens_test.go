package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// tokenID is the id of the first token user holds.
func (e *env) tokenID(user int64) int64 {
	e.t.Helper()
	toks, err := e.store.APITokens(context.Background(), user)
	if err != nil || len(toks) == 0 {
		e.t.Fatalf("tokens of %d: %v %v", user, toks, err)
	}
	return toks[0].ID
}

// A token that leaked (a script in a repository, a log line) stops working when revoked, and
// every token stops working at its expiry: the API lists them, revokes them, and a revoked or
// expired token is a 401 at once. An agent sees and revokes only their own tokens, and a
// token cannot mint its own successor.
func TestAPIToken_LeakedTokenIsRevokedAndExpiredTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	agentBasic := auth{user: "agent1@example.com", pass: agentPass, description: "agent basic"}

	// Made with the password; listed without the token itself.
	made := must(t, e.call(agentBasic, "POST", "/tokens", map[string]any{"token": map[string]any{"description": "ci script", "expires_in": 3600}}), http.StatusCreated)
	tok, id := made.str("token", "token"), made.id("token", "id")
	exp, err := time.Parse(time.RFC3339, made.str("token", "expires_at"))
	if tok == "" || id == 0 || err != nil || time.Until(exp) < 50*time.Minute || time.Until(exp) > 61*time.Minute {
		t.Fatalf("created token: %s (expires_at %v)", made.Raw, err)
	}
	leaked := auth{token: tok, description: "leaked token"}
	must(t, e.call(leaked, "GET", "/users?per_page=1", nil), http.StatusOK)
	list := must(t, e.call(agentBasic, "GET", "/tokens", nil), http.StatusOK).list("tokens")
	if len(list) != 2 { // the env's token and this one
		t.Fatalf("agent's tokens: %v", list)
	}
	for _, l := range list {
		if _, ok := l["token"]; ok || int64(l["user_id"].(float64)) != e.agent.ID {
			t.Fatalf("listed token shows the secret or another user's token: %v", l)
		}
	}

	// A token cannot make tokens; an agent cannot revoke the admin's token (404, not told it exists).
	must(t, e.call(leaked, "POST", "/tokens", map[string]any{"token": map[string]any{"expires_in": 99999999}}), http.StatusForbidden)
	must(t, e.call(e.asAgent(), "DELETE", fmt.Sprintf("/tokens/%d", e.tokenID(e.admin.ID)), nil), http.StatusNotFound)
	must(t, e.call(e.asAdmin(), "GET", "/users?per_page=1", nil), http.StatusOK)
	must(t, e.call(agentBasic, "POST", "/tokens", map[string]any{"token": map[string]any{"user_id": e.admin.ID}}), http.StatusForbidden)
	must(t, e.call(agentBasic, "POST", "/tokens", map[string]any{"token": map[string]any{"expires_in": 0}}), http.StatusUnprocessableEntity)

	// Revoked: the next request is a 401, and it is gone from the list.
	must(t, e.call(agentBasic, "DELETE", fmt.Sprintf("/tokens/%d", id), nil), http.StatusNoContent)
	must(t, e.call(leaked, "GET", "/users?per_page=1", nil), http.StatusUnauthorized)
	if l := must(t, e.call(e.asAdmin(), "GET", fmt.Sprintf("/tokens?user_id=%d", e.agent.ID), nil), http.StatusOK).list("tokens"); len(l) != 1 {
		t.Fatalf("after revocation the agent has %d tokens, want 1: %v", len(l), l)
	}

	// Expired: a token of one second works, then is refused once its second is over.
	short := must(t, e.call(agentBasic, "POST", "/tokens", map[string]any{"token": map[string]any{"expires_in": 1}}), http.StatusCreated)
	st := auth{token: short.str("token", "token"), description: "short token"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.call(st, "GET", "/users?per_page=1", nil)
		if r.Status == http.StatusUnauthorized {
			break
		}
		if r.Status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("a 1-second token still answers %d after 10 s: %s", r.Status, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A token made by the store without a lifetime gets the default (90 days).
	_, _, err = e.store.NewAPIToken(context.Background(), e.agent.ID, "x", 10*365*24*time.Hour)
	if err == nil {
		t.Fatal("a 10-year token was accepted")
	}
	toks, err := e.store.APITokens(context.Background(), e.admin.ID)
	if err != nil || len(toks) == 0 || toks[0].ExpiresAt == nil || time.Until(toks[0].ExpiresAt.Time) < ticketing.DefaultTokenTTL-time.Hour {
		t.Fatalf("default token lifetime: %+v %v", toks, err)
	}
}
