package roster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/roster"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// await bounds what normally takes milliseconds: generous for a loaded machine.
const await = 20 * time.Second

type env struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *ticketing.Store
	auth  *ticketing.API
	admin string // an admin's API token
	agent string // an agent's API token
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, pool: pgtest.Pool(t)}
	e.store = ticketing.NewStore(e.pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	e.auth = ticketing.NewAPI(e.store, ticketing.APIOptions{})
	hash, _ := bcrypt.GenerateFromPassword([]byte("password1"), bcrypt.MinCost)
	ctx := context.Background()
	for _, u := range []struct {
		email, role string
		tok         *string
	}{{"admin@example.com", "admin", &e.admin}, {"agent1@example.com", "agent", &e.agent}} {
		user, err := e.store.EnsureUser(ctx, u.email, u.role, u.role, string(hash))
		if err != nil {
			t.Fatal(err)
		}
		if *u.tok, err = e.store.CreateAPIToken(ctx, user.ID, "test"); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// node is one gateway node: its ACD, its roster manager and the admin API it serves.
type node struct {
	acd *ivr.ACD
	m   *roster.Manager
	srv *httptest.Server
}

func (e *env) node(seed *roster.Seed) *node {
	e.t.Helper()
	return e.nodeOn(e.pool, seed)
}

// nodeOn is node with its own pool (one through a proxy the test can cut).
func (e *env) nodeOn(pool *pgxpool.Pool, seed *roster.Seed) *node {
	e.t.Helper()
	acd, err := ivr.NewACD(ivr.ACDOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(acd.Close)
	m, err := roster.New(roster.Options{Pool: pool, ACD: acd, Seed: seed, ListenRetry: 100 * time.Millisecond,
		ParseTarget: func(s string) (ivr.Target, error) {
			switch {
			case s == "voicemail":
				return ivr.VoicemailTarget(), nil
			case strings.HasPrefix(s, "queue:"):
				return ivr.QueueTarget(strings.TrimPrefix(s, "queue:")), nil
			}
			return ivr.Target{}, fmt.Errorf("%q is not a target", s)
		},
		Recheck: time.Hour}) // only the notification can bring a change in time
	if err != nil {
		e.t.Fatal(err)
	}
	m.Start(nil, 10*time.Second)
	e.t.Cleanup(m.Close)
	mux := http.NewServeMux()
	m.NewAPI(roster.APIOptions{Auth: e.auth, Users: e.store, InUse: func(q string) string {
		if q == "support" {
			return "lines[0].target"
		}
		return ""
	}}).Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return &node{acd: acd, m: m, srv: srv}
}

func (n *node) call(t *testing.T, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, n.srv.URL+"/api/v2"+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func devSeed() *roster.Seed {
	return &roster.Seed{
		Queues: []roster.Queue{{Name: "support", RingTimeout: 15 * time.Second}, {Name: "sales"}},
		Agents: []roster.SeedAgent{{Email: "agent1@example.com", Queues: []string{"support"}}},
	}
}

// agentOf returns the ACD's status of the agent with email, if it is on the roster.
func agentOf(acd *ivr.ACD, email string) (ivr.AgentStatus, bool) {
	for _, s := range acd.Agents() {
		if s.Email == email {
			return s, true
		}
	}
	return ivr.AgentStatus{}, false
}

func awaitAgent(t *testing.T, acd *ivr.ACD, email string, cond func(ivr.AgentStatus, bool) bool) ivr.AgentStatus {
	t.Helper()
	deadline := time.Now().Add(await)
	for {
		s, ok := agentOf(acd, email)
		if cond(s, ok) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s never reached the expected roster state within %s (last %+v, on roster %v)", email, await, s, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSeed_FirstStartOnlyThenTheDatabaseIsTheSource: the configuration's queues and agents are
// written on the first start and the ACD runs them; a later start with an edited file does not
// apply the edit (the database is the source) and reports that the file differs.
func TestSeed_FirstStartOnlyThenTheDatabaseIsTheSource(t *testing.T) {
	e := newEnv(t)
	a := e.node(devSeed())
	if s, ok := agentOf(a.acd, "agent1@example.com"); !ok || !slices.Equal(s.Queues, []string{"support"}) {
		t.Fatalf("after the first start agent1 is %+v (on roster %v), want in support", s, ok)
	}
	edited := devSeed()
	edited.Agents[0].Queues = []string{"sales"}
	res, err := roster.ApplySeed(context.Background(), e.pool, *edited)
	if err != nil {
		t.Fatal(err)
	}
	if res.Seeded || !res.Differs {
		t.Fatalf("second seed = %+v, want not seeded and differs", res)
	}
	b := e.node(edited)
	if s, _ := agentOf(b.acd, "agent1@example.com"); !slices.Equal(s.Queues, []string{"support"}) {
		t.Errorf("a node started with the edited file runs agent1 in %v, want support (the database's)", s.Queues)
	}
	same, err := roster.ApplySeed(context.Background(), e.pool, *devSeed())
	if err != nil || same.Differs || same.Seeded {
		t.Errorf("seed with the recorded file = %+v, %v; want neither seeded nor differing", same, err)
	}
}

// TestAPI_AgentCreatedOnOneNodeIsOnEveryNodeAtOnce: POST /agents on node A is in A's ACD when
// the answer arrives, and in node B's (another process's roster, sharing only the database)
// through NOTIFY — B re-reads nothing on a timer within the test. A membership's priority
// changed on B reaches A the same way; the SIP phone's credentials are stored as HA1s only.
func TestAPI_AgentCreatedOnOneNodeIsOnEveryNodeAtOnce(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(devSeed()), e.node(devSeed())
	code, m := a.call(t, e.admin, "POST", "/agents", `{"agent":{"name":"Dana","email":"dana@example.com","password":"danapass123","queues":["support","sales"]}}`)
	if code != 201 {
		t.Fatalf("POST /agents = %d %v", code, m)
	}
	ag := m["agent"].(map[string]any)
	id := int64(ag["id"].(float64))
	secret, _ := ag["sip_secret"].(string)
	if s, ok := agentOf(a.acd, "dana@example.com"); !ok || !slices.Equal(s.Queues, []string{"support", "sales"}) {
		t.Fatalf("node A's ACD right after the answer: %+v (on roster %v), want dana in support then sales (the order given)", s, ok)
	}
	awaitAgent(t, b.acd, "dana@example.com", func(s ivr.AgentStatus, ok bool) bool { return ok && len(s.Queues) == 2 })
	acct, ok := b.m.SIPAccount("DANA")
	md5h, shah := roster.HA1("dana", secret)
	if !ok || acct.UserID != id || acct.HA1MD5 != md5h || acct.HA1SHA256 != shah {
		t.Errorf("node B's SIP account for dana = %+v %v, want user %d with the secret's HA1s", acct, ok, id)
	}
	var plain int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM roster_agents WHERE ha1_md5 = $1 OR ha1_sha256 = $1`, secret).Scan(&plain); err != nil || plain != 0 {
		t.Errorf("the plain secret is stored (%d rows, %v)", plain, err)
	}

	code, m = b.call(t, e.admin, "PUT", fmt.Sprintf("/queues/support/memberships/%d", id), `{"membership":{"priority":7}}`)
	if code != 200 || m["membership"].(map[string]any)["priority"] != float64(7) {
		t.Fatalf("PUT membership = %d %v", code, m)
	}
	awaitAgent(t, a.acd, "dana@example.com", func(s ivr.AgentStatus, _ bool) bool { return s.Priority["support"] == 7 })

	code, _ = a.call(t, e.admin, "DELETE", fmt.Sprintf("/agents/%d", id), "")
	if code != 204 {
		t.Fatalf("DELETE /agents/%d = %d", id, code)
	}
	if _, ok := agentOf(a.acd, "dana@example.com"); ok {
		t.Error("dana still on node A's roster after DELETE answered")
	}
	awaitAgent(t, b.acd, "dana@example.com", func(_ ivr.AgentStatus, ok bool) bool { return !ok })
	if _, ok := b.m.SIPAccount("dana"); ok {
		t.Error("dana's SIP phone still registers on node B")
	}

	// Every change is in the audit trail, with the admin as the actor.
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM audits WHERE kind = 'agent_changed' AND user_id = $1
		AND actor_id IS NOT NULL`, id).Scan(&n); err != nil || n != 3 {
		t.Errorf("agent_changed audits for dana: %d (%v), want 3 (created, priority, removed)", n, err)
	}
}

// TestAPI_QueueLifecycleTakesEffectAtOnce: a queue created through the API is in the ACD
// when the answer arrives, its settings changes too; deleting a queue the configuration's
// call flow uses is refused (409) and deleting another works.
func TestAPI_QueueLifecycleTakesEffectAtOnce(t *testing.T) {
	e := newEnv(t)
	a := e.node(devSeed())
	queue := func(name string) (ivr.QueueStatus, bool) {
		for _, q := range a.acd.Queues() {
			if q.Name == name {
				return q, true
			}
		}
		return ivr.QueueStatus{}, false
	}
	code, m := a.call(t, e.admin, "POST", "/queues", `{"queue":{"name":"billing","ring_timeout":20,"max_wait":300,"overflow":"queue:sales"}}`)
	if code != 201 || m["queue"].(map[string]any)["ring_timeout"] != float64(20) {
		t.Fatalf("POST /queues = %d %v", code, m)
	}
	if _, ok := queue("billing"); !ok {
		t.Fatal("billing not in the ACD when the answer arrived")
	}
	if code, m := a.call(t, e.admin, "POST", "/queues", `{"queue":{"name":"billing"}}`); code != 409 {
		t.Errorf("a second billing = %d %v, want 409", code, m)
	}
	if code, m := a.call(t, e.admin, "PUT", "/queues/billing", `{"queue":{"wrap_up":10,"announce_position":true}}`); code != 200 ||
		m["queue"].(map[string]any)["wrap_up"] != float64(10) || m["queue"].(map[string]any)["ring_timeout"] != float64(20) {
		t.Errorf("PUT /queues/billing = %d %v, want wrap_up 10 and ring_timeout kept", code, m)
	}
	if code, m := a.call(t, e.admin, "DELETE", "/queues/sales", ""); code != 409 {
		t.Errorf("DELETE sales, billing's overflow = %d %v, want 409", code, m)
	}
	if code, m := a.call(t, e.admin, "DELETE", "/queues/support", ""); code != 409 {
		t.Errorf("DELETE support, used by the configuration = %d %v, want 409", code, m)
	}
	if code, _ := a.call(t, e.admin, "DELETE", "/queues/billing", ""); code != 204 {
		t.Errorf("DELETE billing = %d, want 204", code)
	}
	if _, ok := queue("billing"); ok {
		t.Error("billing still in the ACD after DELETE answered")
	}
}

// TestAPI_RefusesWithThePreciseAnswer: admins only (401, 403); bad input gets 422 naming the
// field; unknown things 404; nothing is changed by a refused request.
func TestAPI_RefusesWithThePreciseAnswer(t *testing.T) {
	e := newEnv(t)
	a := e.node(devSeed())
	var agent1 int64
	if err := e.pool.QueryRow(context.Background(), `SELECT id FROM users WHERE email = 'agent1@example.com'`).Scan(&agent1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, method, path, body string
		status                          int
		field                           string
	}{
		{"no login", "", "POST", "/queues", `{"queue":{"name":"x"}}`, 401, ""},
		{"an agent", e.agent, "POST", "/queues", `{"queue":{"name":"x"}}`, 403, ""},
		{"not JSON", e.admin, "POST", "/queues", `{`, 422, "queue"},
		{"no wrapper", e.admin, "POST", "/queues", `{"name":"x"}`, 422, "name"},
		{"unknown field", e.admin, "POST", "/queues", `{"queue":{"name":"x","colour":"red"}}`, 422, "colour"},
		{"bad name", e.admin, "POST", "/queues", `{"queue":{"name":"a b"}}`, 422, "name"},
		{"ring timeout out of range", e.admin, "POST", "/queues", `{"queue":{"name":"x","ring_timeout":9999}}`, 422, "ring_timeout"},
		{"ring timeout a string", e.admin, "POST", "/queues", `{"queue":{"name":"x","ring_timeout":"15s"}}`, 422, "ring_timeout"},
		{"overflow nonsense", e.admin, "POST", "/queues", `{"queue":{"name":"x","overflow":"elsewhere"}}`, 422, "overflow"},
		{"overflow into itself", e.admin, "POST", "/queues", `{"queue":{"name":"x","overflow":"queue:x"}}`, 422, "overflow"},
		{"overflow to no queue", e.admin, "POST", "/queues", `{"queue":{"name":"x","overflow":"queue:nowhere"}}`, 422, "overflow"},
		{"unknown queue for an agent", e.admin, "PUT", fmt.Sprintf("/agents/%d", agent1), `{"agent":{"queues":["nowhere"]}}`, 422, "queues[0]"},
		{"queue twice", e.admin, "PUT", fmt.Sprintf("/agents/%d", agent1), `{"agent":{"queues":["sales","sales"]}}`, 422, "queues[1]"},
		{"priority out of range", e.admin, "PUT", fmt.Sprintf("/agents/%d", agent1), `{"agent":{"memberships":[{"queue":"sales","priority":0}]}}`, 422, "memberships[0].priority"},
		{"both lists", e.admin, "PUT", fmt.Sprintf("/agents/%d", agent1), `{"agent":{"queues":[],"memberships":[]}}`, 422, "memberships"},
		{"short secret", e.admin, "PUT", fmt.Sprintf("/agents/%d", agent1), `{"agent":{"sip_secret":"short"}}`, 422, "sip_secret"},
		{"bad SIP username", e.admin, "PUT", fmt.Sprintf("/agents/%d", agent1), `{"agent":{"sip_username":"a:b","sip_secret":"generate"}}`, 422, "sip_username"},
		{"new username without secret", e.admin, "PUT", fmt.Sprintf("/agents/%d", agent1), `{"agent":{"sip_username":"other"}}`, 422, "sip_secret"},
		{"no such user", e.admin, "PUT", "/agents/999999", `{"agent":{"queues":[]}}`, 404, ""},
		{"no such queue", e.admin, "PUT", "/queues/nowhere", `{"queue":{"wrap_up":1}}`, 404, ""},
		{"priority on no agent", e.admin, "PUT", "/queues/sales/memberships/999999", `{"membership":{"priority":2}}`, 404, ""},
		{"new agent bad email", e.admin, "POST", "/agents", `{"agent":{"name":"X","email":"not-an-email","password":"longenough1"}}`, 422, "email"},
		{"new agent and user_id", e.admin, "POST", "/agents", fmt.Sprintf(`{"agent":{"user_id":%d,"name":"X"}}`, agent1), 422, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := a.call(t, tc.token, tc.method, tc.path, tc.body)
			if code != tc.status {
				t.Fatalf("%s %s = %d %v, want %d", tc.method, tc.path, code, m, tc.status)
			}
			if _, ok := m["error"].(string); !ok {
				t.Errorf("answer %v lacks the API's error shape", m)
			}
			if tc.field != "" {
				if d, _ := m["details"].(map[string]any); d[tc.field] == nil {
					t.Errorf("answer %v does not name the field %s", m, tc.field)
				}
			}
		})
	}
	s, _ := agentOf(a.acd, "agent1@example.com")
	if !slices.Equal(s.Queues, []string{"support"}) {
		t.Errorf("refused requests changed agent1's queues: %v", s.Queues)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM roster_queues WHERE name = 'x'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a refused POST /queues stored queue x (%d, %v)", n, err)
	}
}

// TestManager_DatabaseAwayKeepsTheLastRosterAndCatchesUpWhenBack: a node that loses the
// database keeps running the roster it last read (its queues and agents stay), misses the
// changes another node makes meanwhile, and applies them once the database is back — no
// restart, no re-read timer within the test (Recheck is an hour): its listener reconnects and
// the reload it triggers reads everything missed.
func TestManager_DatabaseAwayKeepsTheLastRosterAndCatchesUpWhenBack(t *testing.T) {
	e := newEnv(t)
	b := e.node(devSeed())
	proxy, pool := pgtest.ProxiedPoolTo(t, e.pool.Config().ConnString())
	a := e.nodeOn(pool, devSeed())
	has := func(acd *ivr.ACD, name string) bool {
		for _, q := range acd.Queues() {
			if q.Name == name {
				return true
			}
		}
		return false
	}
	proxy.Down()
	if code, m := b.call(t, e.admin, "POST", "/queues", `{"queue":{"name":"billing"}}`); code != 201 {
		t.Fatalf("POST /queues on node B = %d %v", code, m)
	}
	if code, m := a.call(t, e.admin, "POST", "/queues", `{"queue":{"name":"other"}}`); code < 500 || m["error"] == nil {
		t.Errorf("POST /queues on node A without its database = %d %v, want a 5xx in the API's error shape", code, m)
	}
	if !has(a.acd, "support") || has(a.acd, "billing") {
		t.Fatalf("node A without its database: queues %+v, want the last roster (support, no billing)", a.acd.Queues())
	}
	if _, ok := agentOf(a.acd, "agent1@example.com"); !ok {
		t.Fatal("node A dropped agent1 while the database was away")
	}
	proxy.Up()
	deadline := time.Now().Add(await)
	for !has(a.acd, "billing") {
		if time.Now().After(deadline) {
			t.Fatalf("node A never applied billing after the database came back: %+v", a.acd.Queues())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
