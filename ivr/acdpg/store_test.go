package acdpg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ivr/acdpg"
	"github.com/switchboard-voice/switchboard/media"
)

// TestMain fails the package if any test leaves a goroutine behind (the listener, the ACD's
// shared loop, a call's goroutine).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgxpool's background health check ends a moment after Close.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("github.com/jackc/puddle/v2.(*Pool[...]).Acquire.func1"))
}

// wait bounds every await of these tests.
const wait = 10 * time.Second

// --- a node -------------------------------------------------------------------------------

// node is one gateway node's ACD over the shared database: its own pool (its own connections,
// as another process would have), store, ACD and engine, and a dialer that hands its offers
// to the test.
type node struct {
	name   string
	pool   *pgxpool.Pool
	store  *acdpg.Store
	acd    *ivr.ACD
	eng    *ivr.Engine
	dialer *dialer
	states chan ivr.AgentStatus // OnAgentState
}

type queueOpt func(*ivr.Queue)

func startNode(t *testing.T, url, name string, dial ivr.AgentDialer, qopts ...queueOpt) *node {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return startNodeOn(t, pool, name, dial, qopts...)
}

// startNodeOn is startNode over a pool of the test's (one through a proxy it can cut).
func startNodeOn(t *testing.T, pool *pgxpool.Pool, name string, dial ivr.AgentDialer, qopts ...queueOpt) *node {
	t.Helper()
	st, err := acdpg.New(acdpg.Options{Pool: pool, ListenRetry: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	n := &node{name: name, pool: pool, store: st, dialer: newDialer(), states: make(chan ivr.AgentStatus, 1024)}
	if dial == nil {
		dial = n.dialer
	}
	prompts, err := ivr.NewPrompts(ivr.PromptOptions{NoBuiltin: true})
	if err != nil {
		t.Fatal(err)
	}
	var self atomic.Pointer[ivr.ACD]
	q := ivr.Queue{Name: "support", RingTimeout: 3 * time.Second, MaxWait: time.Minute, RetryDelay: 100 * time.Millisecond}
	for _, o := range qopts {
		o(&q)
	}
	n.acd, err = ivr.NewACD(ivr.ACDOptions{
		Queues: []ivr.Queue{q},
		Agents: []ivr.Agent{
			{ID: 1, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}},
			{ID: 2, Email: "agent2@example.com", Name: "Agent Two", Queues: []string{"support"}},
			{ID: 3, Email: "agent3@example.com", Name: "Agent Three", Queues: []string{"support"}},
		},
		Dialer: dial, Prompts: prompts, Shared: st, Node: name, Recheck: 500 * time.Millisecond,
		Authorizer: ivr.AuthorizerFunc(func(*http.Request) (int64, bool, error) { return 99, true, nil }),
		OnAgentState: func(s ivr.AgentStatus) {
			// As the softphone server does: the hook calls the ACD back (a lock held across the
			// hook would deadlock here, which the racing test would show as a hang).
			if acd := self.Load(); acd != nil {
				_, _ = acd.Agent(s.ID)
			}
			select {
			case n.states <- s:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	self.Store(n.acd)
	t.Cleanup(n.acd.Close)
	if n.eng, err = ivr.New(ivr.Options{ACD: n.acd, Prompts: prompts}); err != nil {
		t.Fatal(err)
	}
	return n
}

// call queues a call of this node in "support" and returns its leg and the channel of its
// result.
func (n *node) call(t *testing.T, id string) (*leg, <-chan ivr.Result) {
	t.Helper()
	l := &leg{id: id, done: make(chan struct{})}
	c := n.eng.NewCall(l, ivr.CallInfo{From: "+15551230000", Line: "+15550199"})
	ch := make(chan ivr.Result, 1)
	ended := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-l.done
		cancel()
	}()
	go func() {
		defer close(ended)
		ch <- c.Run(ctx, ivr.Line{Number: "+15550199", Target: ivr.QueueTarget("support")})
	}()
	t.Cleanup(func() {
		l.hangup()
		select {
		case <-ended:
		case <-time.After(wait):
			t.Errorf("call %s did not end", id)
		}
	})
	return l, ch
}

func (n *node) setState(t *testing.T, id int64, st ivr.AgentState) {
	t.Helper()
	if _, err := n.acd.SetState(id, st); err != nil {
		t.Fatal(err)
	}
}

// agent reads an agent's status through this node's ACD.
func (n *node) agent(t *testing.T, id int64) ivr.AgentStatus {
	t.Helper()
	s, err := n.acd.Agent(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// awaitWaiting waits until the cluster holds want waiting calls.
func awaitWaiting(t *testing.T, st *acdpg.Store, want int) {
	t.Helper()
	awaitCond(t, fmt.Sprintf("%d calls waiting", want), func() bool {
		ws, err := st.Waiting(context.Background())
		return err == nil && len(ws) == want
	})
}

func awaitCond(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- the caller and the agents ------------------------------------------------------------

// leg is a caller without media (the ACD's logic is under test, not audio).
type leg struct {
	id   string
	done chan struct{}
	once sync.Once
}

func (l *leg) CallID() string            { return l.id }
func (l *leg) Endpoint() *media.Endpoint { return nil }
func (l *leg) Done() <-chan struct{}     { return l.done }
func (l *leg) hangup()                   { l.once.Do(func() { close(l.done) }) }

type offerResult struct {
	leg ivr.AgentLeg
	err error
}

// pending is an offer the test answers, declines or lets ring.
type pending struct {
	ivr.Offer
	resp chan offerResult
	ctx  context.Context
}

func (p *pending) answer() *agentLeg {
	l := &agentLeg{done: make(chan struct{})}
	p.resp <- offerResult{leg: l}
	return l
}

func (p *pending) decline() { p.resp <- offerResult{err: ivr.ErrNoAnswer} }

type dialer struct{ offers chan *pending }

func newDialer() *dialer { return &dialer{offers: make(chan *pending, 64)} }

func (d *dialer) Offer(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	p := &pending{Offer: o, resp: make(chan offerResult, 1), ctx: ctx}
	select {
	case d.offers <- p:
	case <-ctx.Done(): // nobody reads the offers any more (the test has moved on)
		return nil, ctx.Err()
	}
	select {
	case r := <-p.resp:
		return r.leg, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *dialer) next(t *testing.T) *pending {
	t.Helper()
	select {
	case p := <-d.offers:
		return p
	case <-time.After(wait):
		t.Fatal("no offer made")
	}
	return nil
}

func (d *dialer) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case p := <-d.offers:
		t.Fatalf("unexpected offer of call %s to agent %d", p.CallID, p.AgentID)
	case <-time.After(within):
	}
}

type agentLeg struct {
	done chan struct{}
	once sync.Once
}

func (l *agentLeg) Bridge(*media.Endpoint) (func(), error) { return func() {}, nil }
func (l *agentLeg) Done() <-chan struct{}                  { return l.done }
func (l *agentLeg) Hangup(context.Context) error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// --- tests --------------------------------------------------------------------------------

// A call waiting on node A is offered to the agent whose page is attached to node B, through
// A's dialer with Offer.Node "B" (the internal leg's seam); B's dialer is not asked; once
// answered, the agent is busy on that call as both nodes see it.
func TestSharedACD_CallWaitingOnAOfferedToAgentAttachedToB(t *testing.T) {
	url := pgtest.URL(t)
	a := startNode(t, url, "A", nil)
	b := startNode(t, url, "B", nil)

	b.acd.AgentAttached(1, ivr.ViaPage)
	b.setState(t, 1, ivr.StateAvailable)
	caller, res := a.call(t, "call-on-a")

	p := a.dialer.next(t)
	if p.CallID != "call-on-a" || p.AgentID != 1 || p.Node != "B" {
		t.Fatalf("offer %+v, want call-on-a to agent 1 on node B", p.Offer)
	}
	b.dialer.none(t, 300*time.Millisecond)
	al := p.answer()
	awaitCond(t, "agent 1 busy on call-on-a, as node B sees it", func() bool {
		s := b.agent(t, 1)
		return s.State == ivr.StateBusy && s.CallID == "call-on-a" && s.Node == "B"
	})
	awaitWaiting(t, a.store, 0)

	al.Hangup(context.Background())
	r := <-res
	if r.Kind != ivr.ResultHangup || r.Outcome != "answered" {
		t.Fatalf("result %+v, want an answered hang-up", r)
	}
	awaitCond(t, "agent 1 available again after the call", func() bool { return b.agent(t, 1).State == ivr.StateAvailable })
	caller.hangup()

	// An agent attached to this node is offered the call with Node empty: the local path.
	a.acd.AgentAttached(2, ivr.ViaPage)
	b.setState(t, 1, ivr.StateAway)
	a.setState(t, 2, ivr.StateAvailable)
	_, _ = a.call(t, "local-call")
	p = a.dialer.next(t)
	if p.AgentID != 2 || p.Node != "" {
		t.Fatalf("offer %+v, want agent 2 with Node empty (this node)", p.Offer)
	}
	p.decline()
}

// Two nodes each hold calls and race for one agent, or for three, every round: an agent is
// never offered two calls at once, a call never rings two agents, and every call is answered.
// Meanwhile an admin toggles agent 3 between away and available through the other node.
func TestSharedACD_TwoNodesRacingNeverDoubleOfferAgentOrCall(t *testing.T) {
	t.Run("one agent", func(t *testing.T) { raceNodes(t, 1, 6, 2) })
	t.Run("three agents", func(t *testing.T) { raceNodes(t, 3, 8, 4) })
}

func raceNodes(t *testing.T, agents int64, rounds, perNode int) {
	url := pgtest.URL(t)
	var (
		mu        sync.Mutex
		agentBusy = map[int64]string{} // agent → call offered or talking
		callBusy  = map[string]int64{}
		violation atomic.Value
		answered  atomic.Int64
		offers    atomic.Int64
	)
	race := func(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
		offers.Add(1)
		mu.Lock()
		if c, ok := agentBusy[o.AgentID]; ok {
			violation.CompareAndSwap(nil, fmt.Sprintf("agent %d offered %s while on %s", o.AgentID, o.CallID, c))
		}
		if ag, ok := callBusy[o.CallID]; ok {
			violation.CompareAndSwap(nil, fmt.Sprintf("call %s offered to agent %d while ringing agent %d", o.CallID, o.AgentID, ag))
		}
		agentBusy[o.AgentID], callBusy[o.CallID] = o.CallID, o.AgentID
		n := offers.Load()
		mu.Unlock()
		free := func() {
			mu.Lock()
			delete(agentBusy, o.AgentID)
			delete(callBusy, o.CallID)
			mu.Unlock()
		}
		if n%3 == 0 { // every third offer is declined: the call goes to the next agent
			free()
			return nil, ivr.ErrNoAnswer
		}
		answered.Add(1)
		l := &agentLeg{done: make(chan struct{})}
		go func() { // a short conversation; the agent is busy until the hang-up
			time.Sleep(5 * time.Millisecond)
			free()
			_ = l.Hangup(ctx)
		}()
		return l, nil
	}
	a := startNode(t, url, "A", ivr.AgentDialerFunc(race))
	b := startNode(t, url, "B", ivr.AgentDialerFunc(race))
	for id := int64(1); id <= agents; id++ {
		nd := a
		if id == 2 {
			nd = b
		}
		nd.acd.AgentAttached(id, ivr.ViaPage)
		nd.setState(t, id, ivr.StateAvailable)
	}
	toggling := make(chan struct{})
	toggled := make(chan struct{})
	go func() { // state changes racing the dispatch: agent 3 comes and goes
		defer close(toggled)
		for i := 0; ; i++ {
			select {
			case <-toggling:
				return
			case <-time.After(3 * time.Millisecond):
			}
			if agents < 3 {
				continue
			}
			st := ivr.StateAway
			if i%2 == 1 {
				st = ivr.StateAvailable
			}
			_, _ = b.acd.SetState(3, st)
		}
	}()
	defer func() {
		close(toggling)
		<-toggled
	}()
	for r := range rounds {
		var results []<-chan ivr.Result
		for i := range perNode {
			_, ra := a.call(t, fmt.Sprintf("a-%d-%d", r, i))
			_, rb := b.call(t, fmt.Sprintf("b-%d-%d", r, i))
			results = append(results, ra, rb)
		}
		for _, ch := range results {
			select {
			case res := <-ch:
				if res.Outcome != "answered" {
					t.Fatalf("round %d: a call ended %+v, want answered", r, res)
				}
			case <-time.After(3 * wait):
				t.Fatalf("round %d: a call was never answered (offers %d, answered %d)", r, offers.Load(), answered.Load())
			}
		}
		if v := violation.Load(); v != nil {
			t.Fatalf("round %d: %s", r, v)
		}
	}
	if got := answered.Load(); got != int64(rounds*perNode*2) {
		t.Errorf("%d calls answered, want %d", got, rounds*perNode*2)
	}
}

// Calls are served in arrival order across the nodes, and each goes to the agent of the
// cluster who has been available longest, whichever node either is on.
func TestSharedACD_FIFOAndLongestIdleAcrossNodes(t *testing.T) {
	url := pgtest.URL(t)
	a := startNode(t, url, "A", nil)
	b := startNode(t, url, "B", nil)
	a.acd.AgentAttached(1, ivr.ViaPage)
	b.acd.AgentAttached(2, ivr.ViaPage)

	// FIFO: three calls arrive on alternating nodes while nobody is available.
	_, _ = a.call(t, "first")
	awaitWaiting(t, a.store, 1)
	_, _ = b.call(t, "second")
	awaitWaiting(t, a.store, 2)
	_, _ = a.call(t, "third")
	awaitWaiting(t, a.store, 3)

	offerOn := func(want string) (*node, *pending) {
		t.Helper()
		select {
		case p := <-a.dialer.offers:
			if p.CallID != want {
				t.Fatalf("offered %s, want %s (arrival order)", p.CallID, want)
			}
			return a, p
		case p := <-b.dialer.offers:
			if p.CallID != want {
				t.Fatalf("offered %s, want %s (arrival order)", p.CallID, want)
			}
			return b, p
		case <-time.After(wait):
			t.Fatalf("no offer of %s", want)
		}
		return nil, nil
	}
	b.setState(t, 2, ivr.StateAvailable) // on B: the oldest call (on A) is its
	nd, p := offerOn("first")
	if nd != a || p.AgentID != 2 || p.Node != "B" {
		t.Fatalf("first offered on %s to agent %d node %q, want on A to agent 2 node B", nd.name, p.AgentID, p.Node)
	}
	l2 := p.answer()
	a.setState(t, 1, ivr.StateAvailable)
	nd, p = offerOn("second")
	if nd != b || p.AgentID != 1 || p.Node != "A" {
		t.Fatalf("second offered on %s to agent %d node %q, want on B to agent 1 node A", nd.name, p.AgentID, p.Node)
	}
	l1 := p.answer()
	l2.Hangup(context.Background()) // agent 2 free again: the third call is its
	nd, p = offerOn("third")
	if nd != a || p.AgentID != 2 {
		t.Fatalf("third offered on %s to agent %d, want on A to agent 2", nd.name, p.AgentID)
	}
	l2 = p.answer()
	awaitWaiting(t, a.store, 0)

	// Longest idle: agents 1 and 2 end their calls and go away; agent 3 (on B) becomes
	// available before agent 2 (also on B). A call arriving on A goes to agent 3, then one
	// arriving on B to agent 2.
	a.setState(t, 1, ivr.StateAway)
	a.setState(t, 2, ivr.StateAway)
	l1.Hangup(context.Background())
	l2.Hangup(context.Background())
	awaitCond(t, "agents 1 and 2 away after their calls", func() bool {
		return a.agent(t, 1).State == ivr.StateAway && a.agent(t, 2).State == ivr.StateAway
	})
	b.acd.AgentAttached(3, ivr.ViaPage)
	b.setState(t, 3, ivr.StateAvailable)
	time.Sleep(20 * time.Millisecond) // database time moves on: agent 2 is idle after agent 3
	b.setState(t, 2, ivr.StateAvailable)
	_, _ = a.call(t, "fourth")
	nd, p = offerOn("fourth")
	if p.AgentID != 3 || p.Node != "B" {
		t.Fatalf("fourth offered to agent %d on %q, want agent 3 (longest idle) on B", p.AgentID, p.Node)
	}
	l3 := p.answer()
	defer l3.Hangup(context.Background())
	_, _ = b.call(t, "fifth")
	nd, p = offerOn("fifth")
	if nd != b || p.AgentID != 2 || p.Node != "" {
		t.Fatalf("fifth offered on %s to agent %d on %q, want on B to agent 2 on B (Node empty: local)", nd.name, p.AgentID, p.Node)
	}
	l2b := p.answer()
	defer l2b.Hangup(context.Background())
}

// When node B is lost, the agents attached to it go offline and its waiting calls leave the
// queues; the agent's page reconnecting to node A attaches it there, and B's late detach of
// the old page (its reconnect grace ending) no longer sets the agent offline.
func TestSharedACD_LostNodesAgentsGoOfflineUntilTheirPageReconnects(t *testing.T) {
	url := pgtest.URL(t)
	a := startNode(t, url, "A", nil)
	b := startNode(t, url, "B", nil)
	b.acd.AgentAttached(1, ivr.ViaPage)
	b.setState(t, 1, ivr.StateAway)
	b.acd.AgentAttached(2, ivr.ViaPhone)
	b.setState(t, 2, ivr.StateAway)
	a.acd.AgentAttached(3, ivr.ViaPage)
	a.setState(t, 3, ivr.StateAway)
	_, _ = b.call(t, "waiting-on-b")
	awaitWaiting(t, a.store, 1)
	awaitCond(t, "agent 2's phone attached to B", func() bool { return a.agent(t, 2).Node == "B" })

	if err := a.acd.NodeLost(context.Background(), "B"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{1, 2} {
		if s := a.agent(t, id); s.State != ivr.StateOffline || s.Node != "" {
			t.Errorf("agent %d after B was lost: %s on %q, want offline, attached nowhere", id, s.State, s.Node)
		}
	}
	if s := a.agent(t, 3); s.State != ivr.StateAway || s.Node != "A" {
		t.Errorf("agent 3 (on A) after B was lost: %s on %q, want away on A", s.State, s.Node)
	}
	awaitWaiting(t, a.store, 0)

	// The page reconnects through the front to A.
	a.acd.AgentAttached(1, ivr.ViaPage)
	a.setState(t, 1, ivr.StateAvailable)
	if _, err := b.acd.AgentDetached(1, ivr.ViaPage); err != nil {
		t.Fatal(err)
	}
	if s := a.agent(t, 1); s.State != ivr.StateAvailable || s.Node != "A" {
		t.Errorf("agent 1 after its page moved to A and B's old session ended: %s on %q, want available on A", s.State, s.Node)
	}
	// Its own page leaving A does set it offline.
	if _, err := a.acd.AgentDetached(1, ivr.ViaPage); err != nil {
		t.Fatal(err)
	}
	if s := b.agent(t, 1); s.State != ivr.StateOffline {
		t.Errorf("agent 1 after its page left A: %s, want offline", s.State)
	}
}

// A node's restart clears what its previous run left: agents attached to it go offline, its
// waiting calls leave.
func TestSharedACD_RestartedNodeClearsItsPreviousRun(t *testing.T) {
	url := pgtest.URL(t)
	a := startNode(t, url, "A", nil)
	a.acd.AgentAttached(1, ivr.ViaPage)
	a.setState(t, 1, ivr.StateAvailable)
	ctx := context.Background()
	if err := a.store.Enqueue(ctx, "left-by-a-crash", "support", "A2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.store.Attach(ctx, 2, ivr.ViaPage, "A2", true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.SetState(ctx, 2, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	// Node A2 starts again (after a kill -9): what its previous run held is gone.
	a2 := startNode(t, url, "A2", nil)
	awaitCond(t, "A2's previous waiting call removed and its agent offline", func() bool {
		ws, err := a2.store.Waiting(ctx)
		if err != nil {
			return false
		}
		for _, w := range ws {
			if w.CallID == "left-by-a-crash" {
				return false
			}
		}
		return a2.agent(t, 2).State == ivr.StateOffline
	})
	// Agent 1 on A is untouched (it was offered nothing: no call waits).
	if s := a2.agent(t, 1); s.State != ivr.StateAvailable || s.Node != "A" {
		t.Errorf("agent 1 (on A) after A2's start: %s on %q, want available on A", s.State, s.Node)
	}
}

// The API of any node shows the cluster's truth: a state set on A is what B's GET /agents
// says, B's page hears of it (OnAgentState), and a call waiting on A counts in B's GET /queues.
func TestSharedACD_StateChangesVisibleOnTheOtherNodesAPI(t *testing.T) {
	url := pgtest.URL(t)
	a := startNode(t, url, "A", nil)
	b := startNode(t, url, "B", nil)
	serve := func(n *node) *httptest.Server {
		mux := http.NewServeMux()
		n.acd.Register(mux, "/api/v2")
		s := httptest.NewServer(mux)
		t.Cleanup(s.Close)
		return s
	}
	sa, sb := serve(a), serve(b)
	b.acd.AgentAttached(1, ivr.ViaPage)

	req, _ := http.NewRequest(http.MethodPut, sa.URL+"/api/v2/agents/1/state", strings.NewReader(`{"agent":{"state":"away"}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT state on A: %d", resp.StatusCode)
	}
	get := func(s *httptest.Server, path string, v any) {
		t.Helper()
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var agents struct {
		Agents []struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
			Node  string `json:"node"`
		} `json:"agents"`
	}
	get(sb, "/api/v2/agents", &agents)
	found := false
	for _, ag := range agents.Agents {
		if ag.ID == 1 {
			found = true
			if ag.State != "away" || ag.Node != "B" {
				t.Errorf("GET /agents on B: agent 1 %s on %q, want away on B (set through A)", ag.State, ag.Node)
			}
		}
	}
	if !found || len(agents.Agents) != 3 {
		t.Fatalf("GET /agents on B: %+v, want the three agents", agents)
	}
	// B's page of agent 1 hears the change made on A.
	deadline := time.After(wait)
	for heard := false; !heard; {
		select {
		case s := <-b.states:
			heard = s.ID == 1 && s.State == ivr.StateAway
		case <-deadline:
			t.Fatal("node B's OnAgentState never told agent 1 is away")
		}
	}

	_, _ = a.call(t, "waiting-on-a")
	awaitWaiting(t, a.store, 1)
	var queues struct {
		Queues []struct {
			Name         string         `json:"name"`
			CallsWaiting int            `json:"calls_waiting"`
			Agents       map[string]int `json:"agents"`
		} `json:"queues"`
	}
	get(sb, "/api/v2/queues", &queues)
	if len(queues.Queues) != 1 || queues.Queues[0].CallsWaiting != 1 || queues.Queues[0].Agents["away"] != 1 {
		t.Errorf("GET /queues on B: %+v, want support with A's call waiting and one agent away", queues)
	}
}

// After a call, the agent's wrap-up is timed by the node that ran the call and ends there, as
// the other node sees; a node that closes during an agent's wrap-up ends it in the store
// (no node would end it otherwise).
func TestSharedACD_WrapUpEndsOnTheCallsNodeAndAtItsClose(t *testing.T) {
	url := pgtest.URL(t)
	wrap := func(q *ivr.Queue) { q.WrapUp = 300 * time.Millisecond }
	a := startNode(t, url, "A", nil, wrap)
	b := startNode(t, url, "B", nil)
	b.acd.AgentAttached(1, ivr.ViaPage)
	b.setState(t, 1, ivr.StateAvailable)
	_, _ = a.call(t, "wrapped")
	al := a.dialer.next(t).answer()
	awaitCond(t, "agent 1 busy", func() bool { return b.agent(t, 1).State == ivr.StateBusy })
	al.Hangup(context.Background())
	awaitCond(t, "agent 1 in wrap-up, as B sees it", func() bool { return b.agent(t, 1).State == ivr.StateWrapUp })
	awaitCond(t, "agent 1 available after the wrap-up A timed", func() bool { return b.agent(t, 1).State == ivr.StateAvailable })

	// Again, and A closes during the wrap-up.
	_, _ = a.call(t, "wrapped-2")
	al = a.dialer.next(t).answer()
	awaitCond(t, "agent 1 busy again", func() bool { return b.agent(t, 1).State == ivr.StateBusy })
	al.Hangup(context.Background())
	awaitCond(t, "agent 1 in wrap-up again", func() bool { return b.agent(t, 1).State == ivr.StateWrapUp })
	a.acd.Close()
	awaitCond(t, "agent 1 available after A closed during its wrap-up", func() bool {
		return b.agent(t, 1).State == ivr.StateAvailable
	})
}

// Node A loses the database and gets it back: meanwhile a state change through A is refused
// (PUT /agents/{id}/state answers 503, nothing changed) and a call waiting on A overflows at
// its maximum wait; once the database is back, A hears B's changes again (its listener
// reconnected, or its re-check) and its calls are offered as before.
func TestSharedACD_NodeLosesTheDatabaseAndGetsItBack(t *testing.T) {
	proxy, poolA, direct := pgtest.ProxiedPool(t)
	short := func(q *ivr.Queue) { q.MaxWait = 2 * time.Second }
	a := startNodeOn(t, poolA, "A", nil, short)
	b := startNode(t, direct, "B", nil)
	b.acd.AgentAttached(1, ivr.ViaPage)
	b.setState(t, 1, ivr.StateAway)

	mux := http.NewServeMux()
	a.acd.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	proxy.Down()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/v2/agents/1/state", strings.NewReader(`{"agent":{"state":"available"}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("PUT state on A without its database: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if s := b.agent(t, 1); s.State != ivr.StateAway {
		t.Errorf("agent 1 after the refused change: %s, want still away", s.State)
	}
	_, res := a.call(t, "during-the-outage")
	select {
	case r := <-res:
		if r.Kind != ivr.ResultHangup { // overflow to voicemail, which has no recorder here: goodbye
			t.Errorf("the call waiting during the outage ended %+v, want its overflow's hang-up", r)
		}
	case <-time.After(wait):
		t.Fatal("the call waiting on A during the outage did not overflow at its maximum wait")
	}

	proxy.Up()
	b.setState(t, 1, ivr.StateAvailable)
	deadline := time.After(wait)
	for heard := false; !heard; {
		select {
		case s := <-a.states:
			heard = s.ID == 1 && s.State == ivr.StateAvailable
		case <-deadline:
			t.Fatal("node A never heard agent 1 go available after its database came back")
		}
	}
	_, _ = a.call(t, "after-the-outage")
	p := a.dialer.next(t)
	if p.CallID != "after-the-outage" || p.AgentID != 1 || p.Node != "B" {
		t.Fatalf("offer %+v after the outage, want after-the-outage to agent 1 on B", p.Offer)
	}
	p.decline()
}
