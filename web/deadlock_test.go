package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Bounds of the race tests: each racing loop stops after its count or raceBudget, whichever
// comes first; a loop not done within raceWatchdog is a deadlock.
const (
	raceBudget   = 3 * time.Second
	raceWatchdog = 20 * time.Second
	opTimeout    = 5 * time.Second // one HTTP request or WebSocket read or write
)

// goroutineDump is every goroutine's stack, for a deadlock report.
func goroutineDump() string {
	buf := make([]byte, 4<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// drained lists the errors the racing loops reported so far.
func drained(errs chan error) string {
	var out []string
	for {
		select {
		case err := <-errs:
			out = append(out, err.Error())
		default:
			if len(out) == 0 {
				return "no loop reported an error"
			}
			return strings.Join(out, "; ")
		}
	}
}

// answeredLeg is an agent's phone that answers and hangs up at once: each call through the
// queue ends as soon as it is connected, so the agent goes busy, then wrap_up, then available.
type answeredLeg struct{ done chan struct{} }

func newAnsweredLeg() *answeredLeg {
	l := &answeredLeg{done: make(chan struct{})}
	close(l.done)
	return l
}

func (l *answeredLeg) Bridge(*media.Endpoint) (func(), error) { return func() {}, nil }
func (l *answeredLeg) Done() <-chan struct{}                  { return l.done }
func (l *answeredLeg) Hangup(context.Context) error           { return nil }

// raceRig is the real ACD (its HTTP API mounted) and the real Server on one loopback HTTP
// server, wired as cmd/switchboard wires them: OnAgentState → Server.AgentStateChanged.
// Agents 1 and 2 log in to the page; agent 3 takes the queue's calls on a phone that answers
// at once. When the test found a deadlock, the cleanup leaves everything as it is (closing
// would hang on the stuck locks): goleak then lists the stuck goroutines too.
type raceRig struct {
	acd        *ivr.ACD
	eng        *ivr.Engine
	srv        *Server
	http       *httptest.Server
	client     *http.Client
	deadlocked bool
}

func newRaceRig(t *testing.T) *raceRig {
	t.Helper()
	r := &raceRig{client: &http.Client{Timeout: opTimeout}}
	var srv *Server
	var srvMu sync.Mutex // srv is set after the ACD exists
	acd, err := ivr.NewACD(ivr.ACDOptions{
		Queues: []ivr.Queue{{Name: "q", RingTimeout: opTimeout, MaxWait: time.Minute, WrapUp: time.Millisecond}},
		Agents: []ivr.Agent{
			{ID: 1, Email: "agent1@example.com"},
			{ID: 2, Email: "agent2@example.com"},
			{ID: 3, Email: "agent3@example.com", Queues: []string{"q"}},
		},
		Dialer: ivr.AgentDialerFunc(func(context.Context, ivr.Offer) (ivr.AgentLeg, error) {
			return newAnsweredLeg(), nil
		}),
		Authorizer: ivr.AuthorizerFunc(func(*http.Request) (int64, bool, error) { return 100, true, nil }),
		OnAgentState: func(st ivr.AgentStatus) {
			srvMu.Lock()
			s := srv
			srvMu.Unlock()
			if s != nil {
				s.AgentStateChanged(st)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.acd = acd
	if r.eng, err = ivr.New(ivr.Options{ACD: acd}); err != nil {
		t.Fatal(err)
	}
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 64)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Auth: fakeAuth{}, ACD: acd, WebRTC: rtc, ReconnectGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srvMu.Lock()
	srv = s
	srvMu.Unlock()
	r.srv = s
	mux := http.NewServeMux()
	s.Register(mux)
	acd.Register(mux, "/api/v2")
	r.http = httptest.NewServer(mux)
	t.Cleanup(func() {
		if r.deadlocked {
			return
		}
		r.http.Close()
		s.Close()
		acd.Close()
		rtc.Close()
	})
	return r
}

// do sends one request with the session cookie c (nil: none) and returns its status and body.
func (r *raceRig) do(method, path, body string, c *http.Cookie) (int, []byte, error) {
	req, err := http.NewRequest(method, r.http.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c != nil {
		req.AddCookie(c)
	}
	res, err := r.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// TestPageAttachRacingAgentStateChangesNeverDeadlocks proves issue 13's first item fixed: agents'
// pages attaching (the Server builds the session and reads the agent's state from the ACD)
// while agents' states change every way they can — PUT /api/v2/agents/{id}/state, the page's
// own state button, calls ending, wrap-up running out, logout — never deadlock the Server and
// the ACD. Before the fix attach held Server.mu while it called ACD.Agent, and the ACD called
// AgentStateChanged (which takes Server.mu) with its own lock held: the loops below hung in a
// second and the queue, the logins and the softphone offers with them.
func TestPageAttachRacingAgentStateChangesNeverDeadlocks(t *testing.T) {
	r := newRaceRig(t)
	if _, err := r.acd.SetState(3, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	stop := time.Now().Add(raceBudget)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	loop := func(name string, count int, turn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := 0
			defer func() { t.Logf("%s: %d turns", name, i) }()
			for ; i < count && time.Now().Before(stop); i++ {
				if err := turn(i); err != nil {
					errs <- fmt.Errorf("%s, turn %d: %w", name, i, err)
					return
				}
			}
		}()
	}
	// Pages of agents 1 and 2 attach, press buttons and log out, over and over.
	for _, email := range []string{"agent1@example.com", "agent2@example.com"} {
		loop("page of "+email, 300, func(i int) error { return r.page(email, i) })
	}
	// An admin flips agents 1 and 2 between available and away through the ACD's API.
	for _, id := range []int64{1, 2} {
		loop(fmt.Sprintf("PUT state of agent %d", id), 2000, func(i int) error {
			st := []string{"available", "away"}[i%2]
			code, b, err := r.do("PUT", fmt.Sprintf("/api/v2/agents/%d/state", id), `{"agent":{"state":"`+st+`"}}`, nil)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d: %s", code, b)
			}
			return err
		})
	}
	// Calls go through the queue to agent 3, who answers and hangs up at once: busy, then
	// wrap_up, then available when the 1 ms wrap-up runs out on its timer.
	loop("calls to agent 3", 5000, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		leg := &queueLeg{id: fmt.Sprintf("race-call-%d", i), done: make(chan struct{})}
		defer close(leg.done)
		res := r.eng.NewCall(leg, ivr.CallInfo{From: "+15550123", Line: "+15550199"}).
			Run(ctx, ivr.Line{Number: "+15550199", Target: ivr.QueueTarget("q")})
		if res.Outcome != callevent.OutcomeAnswered {
			return fmt.Errorf("call ended %q (%v), want answered", res.Outcome, res.Err)
		}
		return nil
	})

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(raceWatchdog):
		r.deadlocked = true
		t.Fatalf("deadlock: the racing page attaches and state changes did not finish within %s (%s)\n%s",
			raceWatchdog, drained(errs), goroutineDump())
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r.mustAnswer(t)
}

// mustAnswer proves the ACD and the API still answer, within opTimeout each: the ACD directly,
// a state change, and GET /api/v2/agents.
func (r *raceRig) mustAnswer(t *testing.T) {
	t.Helper()
	answered := make(chan error, 1)
	go func() {
		_ = r.acd.Agents()
		if _, err := r.acd.SetState(1, ivr.StateAway); err != nil {
			answered <- fmt.Errorf("SetState: %w", err)
			return
		}
		code, b, err := r.do("GET", "/api/v2/agents", "", nil)
		if err == nil && (code != http.StatusOK || !strings.Contains(string(b), `"agents"`)) {
			err = fmt.Errorf("GET /api/v2/agents: %d %s", code, b)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			r.deadlocked = true // maybe not, but closing must not hang the test if it is
			t.Fatalf("after the race the ACD or its API does not answer: %v\n%s", err, goroutineDump())
		}
	case <-time.After(2 * opTimeout):
		r.deadlocked = true
		t.Fatalf("deadlock: the ACD does not answer after the race\n%s", goroutineDump())
	}
}

// page is one life of an agent's page: log in, open the WebSocket (the Server attaches the
// page: a new session, its WebRTC leg, the agent's state from the ACD), read hello, on odd
// turns press available and await the state message, then log out (the session is freed and
// the agent set offline, so the next turn attaches anew).
func (r *raceRig) page(email string, turn int) error {
	body := `{"email":"` + email + `","password":"agentpass"}`
	req, _ := http.NewRequest("POST", r.http.URL+"/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	res.Body.Close()
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == CookieName || c.Name == SecureCookieName {
			cookie = c
		}
	}
	if res.StatusCode != http.StatusOK || cookie == nil {
		return fmt.Errorf("login: %d", res.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	hdr := http.Header{"Cookie": {cookie.String()}, "Origin": {r.http.URL}}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.http.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return fmt.Errorf("open the WebSocket: %w", err)
	}
	defer conn.CloseNow()
	next := func(typ string) error {
		for range 100 { // state messages of other changes may come first
			_, b, err := conn.Read(ctx)
			if err != nil {
				return fmt.Errorf("await %s: %w", typ, err)
			}
			var m message
			if json.Unmarshal(b, &m) == nil && m.Type == typ {
				return nil
			}
		}
		return fmt.Errorf("no %s message among 100", typ)
	}
	if err := next("hello"); err != nil {
		return err
	}
	if turn%2 == 1 {
		b, _ := json.Marshal(message{Type: "state", State: "available"})
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			return fmt.Errorf("press available: %w", err)
		}
		if err := next("state"); err != nil {
			return err
		}
	}
	// The page keeps reading while it logs out, as a browser does: the Server closes the
	// WebSocket with a close handshake.
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	defer func() { conn.CloseNow(); <-reading }()
	code, _, err := r.do("POST", "/logout", "", cookie)
	if err == nil && code != http.StatusNoContent {
		err = fmt.Errorf("status %d", code)
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// TestPageSeesEveryAgentStateChangeInOrder: the ACD tells state changes after releasing its
// lock, on its notifier goroutine; the page still gets every change of its agent, in the order
// they happened, and ends on the ACD's state (never a stale one).
func TestPageSeesEveryAgentStateChangeInOrder(t *testing.T) {
	r := newRaceRig(t)
	_, c := login(t, r.http.URL, "agent1@example.com", "agentpass")
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	hdr := http.Header{"Cookie": {c.String()}, "Origin": {r.http.URL}}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.http.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	read := func() message {
		t.Helper()
		_, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := read(); m.Type != "hello" || m.State != string(ivr.StateOffline) {
		t.Fatalf("first message %+v, want hello with state offline", m)
	}
	var want []string
	for i := range 40 {
		st := []string{"available", "away", "offline"}[i%3]
		want = append(want, st)
		code, b, err := r.do("PUT", "/api/v2/agents/1/state", `{"agent":{"state":"`+st+`"}}`, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s %v", st, code, b, err)
		}
	}
	var got []string
	for len(got) < len(want) {
		if m := read(); m.Type == "state" {
			got = append(got, m.State)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("the page saw states\n%v\nwant, in the order they happened,\n%v", got, want)
	}
	if st, _ := r.acd.Agent(1); string(st.State) != got[len(got)-1] {
		t.Fatalf("the page ends on %s, the ACD on %s", got[len(got)-1], st.State)
	}
}
