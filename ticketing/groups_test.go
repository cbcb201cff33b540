package ticketing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// codeOf returns the error code of field in an error answer's details ("DuplicateValue", …).
func (r resp) codeOf(field string) string {
	d, _ := r.Body["details"].(map[string]any)
	list, _ := d[field].([]any)
	if len(list) == 0 {
		return ""
	}
	m, _ := list[0].(map[string]any)
	s, _ := m["error"].(string)
	return s
}

// staff makes a user of role with a password (the store's way: an admin would POST /users).
func (e *env) staff(email, role string) ticketing.User {
	e.t.Helper()
	u, err := e.store.EnsureUser(context.Background(), email, strings.Split(email, "@")[0], role, "password1")
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// Rule (issue 21, teams): groups and group memberships answer as Zendesk's do, as node-zendesk
// calls them — 201 with {"group":{id,url,name,description,default,deleted,is_public,created_at,
// updated_at}}, 200 lists with next_page and Zendesk's cursor pagination, 204 deletes; admins
// change them (an agent is refused with 403), every agent reads them; every mistake is a 422
// naming its field (name required, blank, too long, taken: DuplicateValue; a private group made
// public; user_id an end user or already a member: DuplicateValue; group_id no group; an
// unknown field), an unknown id a 404. A user's first membership is their default; deleting it
// makes their next one the default; make_default switches it. A user made an end user leaves
// every group. Every answer is checked against openapi.yaml by env.call.
func TestGroups_ZendeskShapesStatusesAndValidation(t *testing.T) {
	e := newEnv(t)
	admin, agent := e.asAdmin(), e.asAgent()
	sup := e.staff("sup@example.com", ticketing.RoleSupervisor)

	// Create: admins only; Zendesk's shape.
	must(t, e.call(agent, "POST", "/groups", map[string]any{"group": map[string]any{"name": "Tier 1"}}), http.StatusForbidden)
	g := must(t, e.call(admin, "POST", "/groups", map[string]any{"group": map[string]any{"name": "  Tier 1\u202e ", "description": "first line"}}), http.StatusCreated)
	g1 := g.id("group", "id")
	if g.str("group", "name") != "Tier 1" || g.get("group", "is_public") != true || g.get("group", "deleted") != false ||
		g.get("group", "default") != false || g.str("group", "description") != "first line" ||
		!strings.HasSuffix(g.str("group", "url"), fmt.Sprintf("/api/v2/groups/%d.json", g1)) || g.str("group", "created_at") == "" {
		t.Errorf("created group %s", g.Raw)
	}
	for _, c := range []struct {
		body  any
		field string
		code  string
	}{
		{map[string]any{"group": map[string]any{"description": "no name"}}, "name", ""},
		{map[string]any{"group": map[string]any{"name": " \t "}}, "name", ""},
		{map[string]any{"group": map[string]any{"name": strings.Repeat("x", 256)}}, "name", ""},
		{map[string]any{"group": map[string]any{"name": "tier 1"}}, "name", "DuplicateValue"},
		{map[string]any{"group": map[string]any{"name": "T", "is_public": "yes"}}, "is_public", ""},
		{map[string]any{"group": map[string]any{"name": "T", "colour": "red"}}, "colour", ""},
		{map[string]any{"group": map[string]any{"name": "T", "description": strings.Repeat("d", 1001)}}, "description", ""},
		{map[string]any{"name": "T"}, "group", ""},
	} {
		r := must(t, e.call(admin, "POST", "/groups", c.body), http.StatusUnprocessableEntity)
		if !r.detail(c.field) || (c.code != "" && r.codeOf(c.field) != c.code) {
			t.Errorf("POST /groups %v: %s, want a 422 naming %s %s", c.body, r.Raw, c.field, c.code)
		}
	}
	g2 := must(t, e.call(admin, "POST", "/groups", map[string]any{"group": map[string]any{"name": "Tier 2", "is_public": false, "default": true}}), http.StatusCreated).id("group", "id")

	// Read: every agent; pagination both ways.
	l := must(t, e.call(agent, "GET", "/groups?per_page=1", nil), http.StatusOK)
	if gs := l.list("groups"); len(gs) != 1 || int64(gs[0]["id"].(float64)) != g1 || l.get("next_page") == nil || l.get("meta", "has_more") != true {
		t.Errorf("first page of groups %s", l.Raw)
	}
	l = must(t, e.call(agent, "GET", "/groups?page[size]=1&page[after]="+l.str("meta", "after_cursor"), nil), http.StatusOK)
	if gs := l.list("groups"); len(gs) != 1 || int64(gs[0]["id"].(float64)) != g2 || l.get("meta", "has_more") != false {
		t.Errorf("second page of groups %s", l.Raw)
	}
	if gs := must(t, e.call(agent, "GET", "/groups/assignable", nil), http.StatusOK).list("groups"); len(gs) != 2 {
		t.Errorf("assignable groups %v", gs)
	}
	must(t, e.call(agent, "GET", fmt.Sprintf("/groups/%d", g2), nil), http.StatusOK)
	must(t, e.call(agent, "GET", "/groups/999999", nil), http.StatusNotFound)
	must(t, e.call(agent, "GET", "/groups/x", nil), http.StatusNotFound)

	// Update: admins; a private group stays private; one default group.
	must(t, e.call(agent, "PUT", fmt.Sprintf("/groups/%d", g1), map[string]any{"group": map[string]any{"name": "x"}}), http.StatusForbidden)
	r := must(t, e.call(admin, "PUT", fmt.Sprintf("/groups/%d", g2), map[string]any{"group": map[string]any{"is_public": true}}), http.StatusUnprocessableEntity)
	if !r.detail("is_public") {
		t.Errorf("private made public: %s, want a 422 naming is_public", r.Raw)
	}
	r = must(t, e.call(admin, "PUT", fmt.Sprintf("/groups/%d", g1), map[string]any{"group": map[string]any{"name": "TIER 2"}}), http.StatusUnprocessableEntity)
	if r.codeOf("name") != "DuplicateValue" {
		t.Errorf("renamed onto another group's name: %s, want DuplicateValue on name", r.Raw)
	}
	u := must(t, e.call(admin, "PUT", fmt.Sprintf("/groups/%d", g1), map[string]any{"group": map[string]any{"name": "Tier One", "default": true, "id": g1, "url": "x"}}), http.StatusOK)
	if u.str("group", "name") != "Tier One" || u.get("group", "default") != true {
		t.Errorf("updated group %s", u.Raw)
	}
	if must(t, e.call(agent, "GET", fmt.Sprintf("/groups/%d", g2), nil), http.StatusOK).get("group", "default") != false {
		t.Error("two default groups: the one before kept default after another was made it")
	}
	must(t, e.call(admin, "PUT", "/groups/999999", map[string]any{"group": map[string]any{"name": "x"}}), http.StatusNotFound)

	// Memberships.
	member := func(a auth, path string, body map[string]any, status int) resp {
		t.Helper()
		return must(t, e.call(a, "POST", path, map[string]any{"group_membership": body}), status)
	}
	must(t, e.call(agent, "POST", "/group_memberships", map[string]any{"group_membership": map[string]any{"user_id": e.agent.ID, "group_id": g1}}), http.StatusForbidden)
	m1 := member(admin, "/group_memberships", map[string]any{"user_id": e.agent.ID, "group_id": g1}, http.StatusCreated)
	if m1.id("group_membership", "user_id") != e.agent.ID || m1.id("group_membership", "group_id") != g1 || m1.get("group_membership", "default") != true ||
		!strings.HasSuffix(m1.str("group_membership", "url"), fmt.Sprintf("/group_memberships/%d.json", m1.id("group_membership", "id"))) {
		t.Errorf("first membership %s, want the user's default", m1.Raw)
	}
	m2 := member(admin, fmt.Sprintf("/users/%d/group_memberships", e.agent.ID), map[string]any{"group_id": g2}, http.StatusCreated)
	if m2.get("group_membership", "default") != false {
		t.Errorf("second membership %s, want not the default", m2.Raw)
	}
	member(admin, "/group_memberships", map[string]any{"user_id": sup.ID, "group_id": g1}, http.StatusCreated)
	endUser := e.newUser("Caller")
	for _, c := range []struct {
		path  string
		body  map[string]any
		field string
		code  string
	}{
		{"/group_memberships", map[string]any{"user_id": e.agent.ID, "group_id": g1}, "user_id", "DuplicateValue"},
		{"/group_memberships", map[string]any{"user_id": endUser, "group_id": g1}, "user_id", ""},
		{"/group_memberships", map[string]any{"user_id": 999999, "group_id": g1}, "user_id", ""},
		{"/group_memberships", map[string]any{"user_id": e.agent.ID, "group_id": 999999}, "group_id", ""},
		{"/group_memberships", map[string]any{"group_id": g1}, "user_id", ""},
		{"/group_memberships", map[string]any{"user_id": e.agent.ID}, "group_id", ""},
		{"/group_memberships", map[string]any{"user_id": "7", "group_id": g1}, "user_id", ""},
		{"/group_memberships", map[string]any{"user_id": e.agent.ID, "group_id": g1, "role": "lead"}, "role", ""},
		{fmt.Sprintf("/users/%d/group_memberships", e.agent.ID), map[string]any{"user_id": sup.ID, "group_id": g2}, "user_id", ""},
	} {
		r := member(admin, c.path, c.body, http.StatusUnprocessableEntity)
		if !r.detail(c.field) || (c.code != "" && r.codeOf(c.field) != c.code) {
			t.Errorf("POST %s %v: %s, want a 422 naming %s %s", c.path, c.body, r.Raw, c.field, c.code)
		}
	}
	ids := func(r resp, key, field string) []int64 {
		var out []int64
		for _, m := range r.list(key) {
			out = append(out, int64(m[field].(float64)))
		}
		return out
	}
	if got := ids(must(t, e.call(agent, "GET", fmt.Sprintf("/groups/%d/memberships", g1), nil), http.StatusOK), "group_memberships", "user_id"); fmt.Sprint(got) != fmt.Sprint([]int64{e.agent.ID, sup.ID}) {
		t.Errorf("members of group 1: %v", got)
	}
	if got := ids(must(t, e.call(agent, "GET", fmt.Sprintf("/users/%d/groups", e.agent.ID), nil), http.StatusOK), "groups", "id"); fmt.Sprint(got) != fmt.Sprint([]int64{g1, g2}) {
		t.Errorf("the agent's groups: %v", got)
	}
	if got := ids(must(t, e.call(agent, "GET", "/group_memberships?per_page=100", nil), http.StatusOK), "group_memberships", "id"); len(got) != 3 {
		t.Errorf("every membership: %v", got)
	}
	must(t, e.call(agent, "GET", "/group_memberships/assignable", nil), http.StatusOK)
	must(t, e.call(agent, "GET", "/users/999999/groups", nil), http.StatusNotFound)
	must(t, e.call(agent, "GET", "/users/999999/group_memberships", nil), http.StatusNotFound)
	must(t, e.call(agent, "GET", "/groups/999999/memberships", nil), http.StatusNotFound)
	mid1, mid2 := m1.id("group_membership", "id"), m2.id("group_membership", "id")
	must(t, e.call(agent, "GET", fmt.Sprintf("/group_memberships/%d", mid1), nil), http.StatusOK)
	must(t, e.call(agent, "GET", fmt.Sprintf("/users/%d/group_memberships/%d", e.agent.ID, mid1), nil), http.StatusOK)
	must(t, e.call(agent, "GET", fmt.Sprintf("/users/%d/group_memberships/%d", sup.ID, mid1), nil), http.StatusNotFound)

	// make_default: an agent their own, not someone else's.
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/users/%d/group_memberships/%d/make_default", sup.ID, mid1), nil), http.StatusForbidden)
	md := must(t, e.call(agent, "PUT", fmt.Sprintf("/users/%d/group_memberships/%d/make_default", e.agent.ID, mid2), nil), http.StatusOK)
	for _, m := range md.list("group_memberships") {
		if want := int64(m["id"].(float64)) == mid2; m["default"] != want {
			t.Errorf("after make_default of %d: %v", mid2, md.list("group_memberships"))
		}
	}
	must(t, e.call(agent, "PUT", fmt.Sprintf("/users/%d/group_memberships/999999/make_default", e.agent.ID), nil), http.StatusNotFound)

	// Deleting the default membership makes the next one the default.
	must(t, e.call(agent, "DELETE", fmt.Sprintf("/group_memberships/%d", mid2), nil), http.StatusForbidden)
	must(t, e.call(admin, "DELETE", fmt.Sprintf("/users/%d/group_memberships/%d", sup.ID, mid2), nil), http.StatusNotFound)
	must(t, e.call(admin, "DELETE", fmt.Sprintf("/users/%d/group_memberships/%d", e.agent.ID, mid2), nil), http.StatusNoContent)
	must(t, e.call(admin, "DELETE", fmt.Sprintf("/group_memberships/%d", mid2), nil), http.StatusNotFound)
	if must(t, e.call(agent, "GET", fmt.Sprintf("/group_memberships/%d", mid1), nil), http.StatusOK).get("group_membership", "default") != true {
		t.Error("the user's remaining membership did not become their default")
	}

	// A supervisor made an end user leaves every group.
	must(t, e.call(admin, "PUT", fmt.Sprintf("/users/%d", sup.ID), map[string]any{"user": map[string]any{"role": "end-user"}}), http.StatusOK)
	if got := must(t, e.call(agent, "GET", fmt.Sprintf("/users/%d/group_memberships", sup.ID), nil), http.StatusOK).list("group_memberships"); len(got) != 0 {
		t.Errorf("an end user still in groups: %v", got)
	}

	// A ticket's group_id is kept and returned; an unknown group is a 422 naming group_id; null
	// clears it; a deleted group leaves its tickets without one.
	req := e.newUser("Requester")
	tk := must(t, e.call(agent, "POST", "/tickets", map[string]any{"ticket": map[string]any{"subject": "s", "requester_id": req,
		"comment": map[string]any{"body": "b"}, "group_id": g1}}), http.StatusCreated)
	tid := tk.id("ticket", "id")
	if tk.id("ticket", "group_id") != g1 {
		t.Errorf("ticket created with group_id %d: %s", g1, tk.Raw)
	}
	r = must(t, e.call(agent, "POST", "/tickets", map[string]any{"ticket": map[string]any{"subject": "s", "requester_id": req, "group_id": 999999}}), http.StatusUnprocessableEntity)
	if !r.detail("group_id") {
		t.Errorf("unknown group: %s, want a 422 naming group_id", r.Raw)
	}
	if got := must(t, e.call(agent, "PUT", fmt.Sprintf("/tickets/%d", tid), map[string]any{"ticket": map[string]any{"group_id": g2}}), http.StatusOK).id("ticket", "group_id"); got != g2 {
		t.Errorf("group_id after PUT %d, want %d", got, g2)
	}
	must(t, e.call(admin, "DELETE", fmt.Sprintf("/groups/%d", g2), nil), http.StatusNoContent)
	must(t, e.call(admin, "DELETE", fmt.Sprintf("/groups/%d", g2), nil), http.StatusNotFound)
	if got := must(t, e.call(agent, "GET", fmt.Sprintf("/tickets/%d", tid), nil), http.StatusOK).get("ticket", "group_id"); got != nil {
		t.Errorf("group_id %v after its group was deleted, want null", got)
	}
	must(t, e.call(agent, "PUT", fmt.Sprintf("/tickets/%d", tid), map[string]any{"ticket": map[string]any{"group_id": g1}}), http.StatusOK)
	if got := must(t, e.call(agent, "PUT", fmt.Sprintf("/tickets/%d", tid), map[string]any{"ticket": map[string]any{"group_id": nil}}), http.StatusOK).get("ticket", "group_id"); got != nil {
		t.Errorf("group_id %v after PUT null, want null", got)
	}
	must(t, e.call(agent, "DELETE", fmt.Sprintf("/groups/%d", g1), nil), http.StatusForbidden)
}

// Rule (issue 21, teams): SupervisionScope says whom a user supervises — an admin every agent
// (in a group or not); a supervisor in no group every agent (deployments without groups keep
// today's behaviour); a supervisor in groups only the members of those groups, with a refusal
// naming the groups; an agent nobody. A membership change applies to the next call.
func TestSupervisionScope_GroupsNarrowASupervisor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sup := e.staff("sup@example.com", ticketing.RoleSupervisor)
	a2 := e.staff("a2@example.com", ticketing.RoleAgent)
	a3 := e.staff("a3@example.com", ticketing.RoleAgent)
	scope := func(id int64) ticketing.AgentScope {
		t.Helper()
		sc, err := e.store.SupervisionScope(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	if sc := scope(sup.ID); !sc.All || !sc.Allows(a3.ID) {
		t.Errorf("a supervisor in no group: %+v, want every agent", sc)
	}
	if sc := scope(e.agent.ID); sc.All || sc.Allows(a2.ID) {
		t.Errorf("an agent: %+v, want nobody", sc)
	}
	actor := ticketing.Actor(e.admin.ID)
	g, err := e.store.CreateGroup(ctx, actor, ticketing.GroupInput{Name: ptr("Tier 1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []int64{sup.ID, a2.ID, e.admin.ID} {
		if _, err := e.store.CreateGroupMembership(ctx, actor, u, g.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	sc := scope(sup.ID)
	if sc.All || !sc.Allows(a2.ID) || sc.Allows(a3.ID) || !sc.Allows(e.admin.ID) {
		t.Errorf("a supervisor in Tier 1 with a2: %+v, want a2 (and the group's admin), not a3", sc)
	}
	if why := sc.Refusal(a3.ID); !strings.Contains(why, "Tier 1") || !strings.Contains(why, fmt.Sprint(a3.ID)) {
		t.Errorf("refusal %q, want it to name the agent and the supervisor's groups", why)
	}
	if sc := scope(e.admin.ID); !sc.All {
		t.Errorf("an admin in a group: %+v, want every agent", sc)
	}
	// a3 joins a second group of the supervisor's: covered at once.
	g2, err := e.store.CreateGroup(ctx, actor, ticketing.GroupInput{Name: ptr("Tier 2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []int64{sup.ID, a3.ID} {
		if _, err := e.store.CreateGroupMembership(ctx, actor, u, g2.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	if sc := scope(sup.ID); !sc.Allows(a3.ID) || !sc.Allows(a2.ID) {
		t.Errorf("a supervisor in Tier 1 and Tier 2: %+v, want a2 and a3", sc)
	}
	// Out of every group again: every agent.
	if err := e.store.DeleteGroup(ctx, actor, g.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteGroup(ctx, actor, g2.ID); err != nil {
		t.Fatal(err)
	}
	if sc := scope(sup.ID); !sc.All {
		t.Errorf("a supervisor whose groups were deleted: %+v, want every agent", sc)
	}
}

// serveAPI serves mux on loopback until the test ends and returns its URL.
func serveAPI(t *testing.T, mux *http.ServeMux) string {
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// getAs GETs url with Basic credentials and decodes the JSON answer.
func getAs(t *testing.T, url, user, pass string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return res.StatusCode, m
}

// Rule (issue 21, the agent page's Recent calls, "my team's"): GET /calls?team=true lists the
// calls of the agents sharing a group with the caller, and the caller's own — not those of an
// agent in none of their groups; an agent in no group sees their own; group_id=N lists the
// calls of group N's members; a malformed team or an unknown group_id is a 422 naming it.
func TestListCalls_TeamAndGroupFilters(t *testing.T) {
	h := newEngineHarness(t, nil)
	agent3 := h.ensure("agent3@example.com", "Agent Three", "agent")
	mux := http.NewServeMux()
	srv := serveAPI(t, mux)
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{PublicURL: srv})
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", nil, nil)
	get := func(user, path string) (int, map[string]any) {
		t.Helper()
		return getAs(t, srv+"/api/v2"+path, user, "password1")
	}
	// agent1 and agent2 share Tier 1; agent3 is in no group.
	actor := ticketing.Actor(h.admin.ID)
	g, err := h.store.CreateGroup(h.ctx, actor, ticketing.GroupInput{Name: ptr("Tier 1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []int64{h.agent1.ID, h.agent2.ID} {
		if _, err := h.store.CreateGroupMembership(h.ctx, actor, u, g.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range []int64{h.agent1.ID, h.agent2.ID, agent3.ID} {
		h.run(h.answeredCall(h.now.Add(time.Duration(i)*time.Minute), fmt.Sprintf("+1555777100%d", i), "support", a, 10).evs...)
	}
	froms := func(m map[string]any) string {
		var out []string
		calls, _ := m["calls"].([]any)
		for _, c := range calls {
			out = append(out, c.(map[string]any)["from"].(string))
		}
		return strings.Join(out, ",")
	}
	if code, m := get("agent1@example.com", "/calls?team=true"); code != 200 || froms(m) != "+15557771001,+15557771000" {
		t.Errorf("agent1's team = %d %v, want agent2's and agent1's calls, newest first", code, m)
	}
	if code, m := get("agent3@example.com", "/calls?team=true"); code != 200 || froms(m) != "+15557771002" {
		t.Errorf("agent3 (no group) team = %d %v, want their own call", code, m)
	}
	if code, m := get("agent3@example.com", fmt.Sprintf("/calls?group_id=%d", g.ID)); code != 200 || froms(m) != "+15557771001,+15557771000" {
		t.Errorf("group %d's calls = %d %v", g.ID, code, m)
	}
	if code, m := get("agent1@example.com", "/calls?team=false"); code != 200 || froms(m) != "+15557771002,+15557771001,+15557771000" {
		t.Errorf("team=false = %d %v, want every call", code, m)
	}
	for _, q := range []struct{ path, field string }{
		{"/calls?team=yes", "team"}, {"/calls?group_id=x", "group_id"}, {"/calls?group_id=999999", "group_id"},
	} {
		code, m := get("agent1@example.com", q.path)
		if d, _ := m["details"].(map[string]any); code != 422 || d[q.field] == nil {
			t.Errorf("GET %s = %d %v, want 422 naming %s", q.path, code, m, q.field)
		}
	}
}
