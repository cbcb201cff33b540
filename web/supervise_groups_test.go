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

// Rule (issue 21, teams), with the real ticketing store on PostgreSQL as the scope: a
// supervisor who belongs to a group supervises only its agents — monitoring another agent's
// call is a 403 with reason not_in_your_groups naming the group, before anything is audited or
// joined, and the wallboard lists only the group's agents; a supervisor in no group and an
// admin in a group still reach every agent (the check lets them on to the next one: their
// page's audio); a membership added applies to the next request; the groups unreadable (the
// database away) is a 503 with nothing audited or joined.
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

	h := newHarness(t, Options{})
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
	nothingDone := func(when string) {
		t.Helper()
		audit.mu.Lock()
		n := len(audit.entries)
		audit.mu.Unlock()
		if n != 0 || acd.supervised() != 0 {
			t.Fatalf("%s: %d audit entries, %d Supervise calls; want none", when, n, acd.supervised())
		}
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
	nothingDone("refused outside the group")
	// Inside the group the check passes: the next refusal is about the lead's page audio.
	if code, m := do("lead", "POST", call(inTeam), monitor); code != 409 || !strings.Contains(fmt.Sprint(m["description"]), "softphone") {
		t.Errorf("lead monitoring a Tier 1 agent: %d %v, want past the group check (409: no page audio)", code, m)
	}
	if got := wallboard("lead"); len(got) != 1 || got[0] != inTeam.ID {
		t.Errorf("lead's wallboard agents %v, want only %d (Tier 1)", got, inTeam.ID)
	}
	// A supervisor in no group, and an admin in Tier 1, reach every agent.
	for _, u := range []string{"free", "admin"} {
		if code, m := do(u, "POST", call(outside), monitor); code != 409 {
			t.Errorf("%s monitoring any agent: %d %v, want past the group check (409: no page audio)", u, code, m)
		}
		if got := wallboard(u); len(got) != 2 {
			t.Errorf("%s's wallboard agents %v, want both", u, got)
		}
	}
	nothingDone("no page audio")

	// The agent joins Tier 1: the next request lets the lead through.
	join(outside.ID)
	if code, m := do("lead", "POST", call(outside), monitor); code != 409 {
		t.Errorf("lead, after the agent joined Tier 1: %d %v, want past the group check", code, m)
	}
	if got := wallboard("lead"); len(got) != 2 {
		t.Errorf("lead's wallboard after the join: %v, want both", got)
	}

	// The database away: the groups cannot be read, nothing is done.
	proxy.Down()
	if code, m := do("lead", "POST", call(outside), monitor); code != 503 {
		t.Errorf("groups unreadable: %d %v, want 503", code, m)
	}
	if code, m := do("lead", "GET", "/wallboard", ""); code != 503 {
		t.Errorf("wallboard with the groups unreadable: %d %v, want 503", code, m)
	}
	proxy.Up()
	nothingDone("database away")
}
