package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// teamACD is an ACD with one call per agent ("c<id>"), all busy; it counts Supervise calls
// (and refuses them: the real one is proven in ivr and end to end).
type teamACD struct {
	agents []int64
	mu     sync.Mutex
	calls  int
}

func (a *teamACD) Supervise(callID string, sup *media.Endpoint, mode ivr.SuperviseMode) (ivr.Supervision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return nil, ivr.ErrNoCall
}

func (a *teamACD) supervised() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *teamACD) CallAgent(callID string) (int64, bool) {
	id, err := strconv.ParseInt(strings.TrimPrefix(callID, "c"), 10, 64)
	return id, err == nil && strings.HasPrefix(callID, "c")
}

func (a *teamACD) Agents() []ivr.AgentStatus {
	var out []ivr.AgentStatus
	for _, id := range a.agents {
		out = append(out, ivr.AgentStatus{Agent: ivr.Agent{ID: id, Queues: []string{"support"}}, State: ivr.StateBusy, CallID: fmt.Sprintf("c%d", id)})
	}
	return out
}

func (a *teamACD) Queues() []ivr.QueueStatus {
	return []ivr.QueueStatus{{Name: "support", Agents: map[ivr.AgentState]int{ivr.StateBusy: len(a.agents)}}}
}

// Rule (issue 21, teams), with the real ticketing store on PostgreSQL as the scope and the
// supervisors' pages connected: a supervisor who belongs to a group supervises only its agents
// — monitoring (whispering, barging into) another agent's call is a 403 with reason
// not_in_your_groups naming the agent and the group, before anything is audited or joined,
// while their group's agent is audited and joined; the wallboard lists only the group's
// agents; a supervisor in no group joins any agent's call and an admin in a group sees every
// agent; a membership added applies to the next request; the groups unreadable (the database
// away) is a 503 with nothing audited or joined.
func TestSupervisors_GroupsLimitWhomASupervisorSupervises(t *testing.T) {
	proxy, pool, _ := pgtest.ProxiedPool(t)
	store := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	ctx := context.Background()
	user := func(email, role string) ticketing.User {
		t.Helper()
		u, err := store.EnsureUser(ctx, email, strings.Split(email, "@")[0], role, "password1")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	lead, free := user("lead@example.com", ticketing.RoleSupervisor), user("free@example.com", ticketing.RoleSupervisor)
	admin := user("admin@example.com", ticketing.RoleAdmin)
	inTeam, outside := user("a2@example.com", ticketing.RoleAgent), user("a3@example.com", ticketing.RoleAgent)
	actor := ticketing.Actor(admin.ID)
	name := "Tier 1"
	g, err := store.CreateGroup(ctx, actor, ticketing.GroupInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	join := func(u int64) {
		t.Helper()
		if _, err := store.CreateGroupMembership(ctx, actor, u, g.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	join(lead.ID)
	join(inTeam.ID)
	join(admin.ID)

	// The page server logs the supervisors in as themselves (their softphone is their audio).
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 16)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Auth: storeAuth{store}, ACD: newFakeACD(), WebRTC: rtc})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	h := &harness{srv: srv, rtc: rtc, mux: mux, http: newTestHTTP(t, mux)}
	t.Cleanup(func() { srv.Close(); rtc.Close() })
	acd, audit := &teamACD{agents: []int64{inTeam.ID, outside.ID}}, &supAudit{}
	roles := map[string]ticketing.User{"lead": lead, "free": free, "admin": admin}
	auth := func(r *http.Request) (ticketing.Principal, error) {
		if u, ok := roles[r.Header.Get("X-User")]; ok {
			return ticketing.Principal{UserID: u.ID, Role: u.Role}, nil
		}
		return ticketing.Principal{}, &ticketing.Error{Kind: ticketing.ErrUnauthorized, Description: "log in"}
	}
	sp, err := h.srv.Supervisors(SupervisorOptions{ACD: acd, Audit: audit, Auth: auth, Scope: store})
	if err != nil {
		t.Fatal(err)
	}
	sp.Register(h.mux, "/api/v2")
	do := func(user, method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, h.http.URL+"/api/v2"+path, strings.NewReader(body))
		req.Header.Set("X-User", user)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, b)
		}
		return res.StatusCode, m
	}
	monitor := `{"supervision":{"mode":"monitor"}}`
	call := func(u ticketing.User) string { return fmt.Sprintf("/calls/c%d/supervision", u.ID) }
	// done is the number of audit entries and Supervise calls so far.
	done := func() (int, int) {
		audit.mu.Lock()
		defer audit.mu.Unlock()
		return len(audit.entries), acd.supervised()
	}
	nothingDoneSince := func(when string, entries, calls int) {
		t.Helper()
		if e, c := done(); e != entries || c != calls {
			t.Fatalf("%s: %d audit entries and %d Supervise calls, want %d and %d: nothing done", when, e, c, entries, calls)
		}
	}
	// joined proves a request got past the group check: audited, then the ACD asked (which
	// answers that the call ended: 404).
	joined := func(who string, target ticketing.User) {
		t.Helper()
		e, c := done()
		if code, m := do(who, "POST", call(target), monitor); code != 404 {
			t.Errorf("%s monitoring agent %d: %d %v, want past the group check (the fake ACD's 404)", who, target.ID, code, m)
		}
		if e2, c2 := done(); e2 != e+2 || c2 != c+1 {
			t.Errorf("%s monitoring agent %d: %d audit entries and %d Supervise calls after, want %d and %d", who, target.ID, e2, c2, e+2, c+1)
		}
	}
	// The supervisors' pages, audio connected.
	for email, u := range map[string]ticketing.User{"lead@example.com": lead, "free@example.com": free} {
		_, c := login(t, h.http.URL, email, "password1")
		p := openPage(t, h, c, false)
		p.answerOffer(p.expect("offer").SDP)
		awaitConnected(t, h, u.ID)
	}
	wallboard := func(user string) []int64 {
		t.Helper()
		code, m := do(user, "GET", "/wallboard", "")
		if code != 200 {
			t.Fatalf("%s's wallboard: %d %v", user, code, m)
		}
		var ids []int64
		for _, a := range m["wallboard"].(map[string]any)["agents"].([]any) {
			ids = append(ids, int64(a.(map[string]any)["id"].(float64)))
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		return ids
	}

	// The lead (in Tier 1 with inTeam) and the agent outside it.
	code, m := do("lead", "POST", call(outside), monitor)
	if code != 403 || m["error"] != "Forbidden" || m["reason"] != ivr.ReasonNotInYourGroups ||
		!strings.Contains(fmt.Sprint(m["description"]), "Tier 1") || !strings.Contains(fmt.Sprint(m["description"]), fmt.Sprint(outside.ID)) {
		t.Errorf("lead monitoring an agent outside Tier 1: %d %v, want 403 not_in_your_groups naming the agent and the group", code, m)
	}
	for _, mode := range []string{"whisper", "barge"} {
		if code, m := do("lead", "POST", call(outside), `{"supervision":{"mode":"`+mode+`"}}`); code != 403 {
			t.Errorf("lead %s outside Tier 1: %d %v, want 403", mode, code, m)
		}
	}
	nothingDoneSince("refused outside the group", 0, 0)
	// Inside the group the check passes.
	joined("lead", inTeam)
	if got := wallboard("lead"); len(got) != 1 || got[0] != inTeam.ID {
		t.Errorf("lead's wallboard agents %v, want only %d (Tier 1)", got, inTeam.ID)
	}
	// A supervisor in no group, and an admin in Tier 1, reach every agent.
	joined("free", outside)
	for _, u := range []string{"free", "admin"} {
		if got := wallboard(u); len(got) != 2 {
			t.Errorf("%s's wallboard agents %v, want both", u, got)
		}
	}

	// The agent joins Tier 1: the next request lets the lead through.
	join(outside.ID)
	joined("lead", outside)
	if got := wallboard("lead"); len(got) != 2 {
		t.Errorf("lead's wallboard after the join: %v, want both", got)
	}

	// The database away: the groups cannot be read, nothing is done.
	entries, calls := done()
	proxy.Down()
	if code, m := do("lead", "POST", call(outside), monitor); code != 503 {
		t.Errorf("groups unreadable: %d %v, want 503", code, m)
	}
	if code, m := do("lead", "GET", "/wallboard", ""); code != 503 {
		t.Errorf("wallboard with the groups unreadable: %d %v, want 503", code, m)
	}
	proxy.Up()
	nothingDoneSince("database away", entries, calls)
}
