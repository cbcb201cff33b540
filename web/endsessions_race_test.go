package web

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// gatedSessions is a SessionStore in memory whose Session answers can be held: armed, the next
// Session reads the login, says so on read and waits for release before answering what it
// read — a database answer in flight while an admin's change commits.
type gatedSessions struct {
	mu      sync.Mutex
	logins  map[string]Agent
	armed   bool
	read    chan struct{}
	release chan struct{}
}

func newGatedSessions() *gatedSessions {
	return &gatedSessions{logins: map[string]Agent{}, read: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedSessions) CreateSession(_ context.Context, key []byte, a Agent, _ time.Time) error {
	g.mu.Lock()
	g.logins[string(key)] = a
	g.mu.Unlock()
	return nil
}

func (g *gatedSessions) Session(ctx context.Context, key []byte) (Agent, time.Time, error) {
	g.mu.Lock()
	a, ok := g.logins[string(key)]
	held := g.armed
	g.armed = false
	g.mu.Unlock()
	if held {
		close(g.read)
		select {
		case <-g.release:
		case <-ctx.Done():
			return Agent{}, time.Time{}, ctx.Err()
		}
	}
	if !ok {
		return Agent{}, time.Time{}, ErrNoSession
	}
	return a, time.Now().Add(time.Hour), nil
}

func (g *gatedSessions) EndSession(_ context.Context, key []byte) error {
	g.mu.Lock()
	delete(g.logins, string(key))
	g.mu.Unlock()
	return nil
}

// endUser deletes every login of agent id, as the users trigger of migration 023 does in the
// transaction of a password or role change.
func (g *gatedSessions) endUser(id int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, a := range g.logins {
		if a.ID == id {
			delete(g.logins, k)
		}
	}
}

// dialPage opens the page's WebSocket with cookie and reads it until it closes: hello is closed
// at the first message (the softphone is attached), done when reading stops. A handshake
// refused with 401 (the login already ended) is a nil conn and no error. It may run on any
// goroutine.
func dialPage(h *harness, cookie *http.Cookie) (conn *websocket.Conn, hello, done chan struct{}, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	hdr := http.Header{"Cookie": {cookie.String()}, "Origin": {h.http.URL}}
	conn, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.http.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		if res != nil && res.StatusCode == http.StatusUnauthorized {
			return nil, nil, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("WebSocket: %w", err)
	}
	hello, done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for first := true; ; first = false {
			if _, _, err := conn.Read(context.Background()); err != nil {
				return
			}
			if first {
				close(hello)
			}
		}
	}()
	return conn, hello, done, nil
}

// awaitClosed fails the test unless the page's WebSocket closes within wait.
func awaitClosed(t *testing.T, conn *websocket.Conn, done chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(wait):
		conn.CloseNow()
		<-done
		t.Fatalf("%s: the WebSocket stayed open after EndSessions", what)
	}
}

// The CI failure of TestGateway_PasswordChangeEndsSessionAndClosesWebSocket, made certain: the
// store reads the WebSocket's login as valid, then the admin's change commits and EndSessions
// runs before that answer reaches the handshake — and before the softphone is listed, so
// EndSessions finds nothing to close. The page must not stay open: its handshake is refused,
// or its WebSocket closes.
func TestEndSessions_WhileWebSocketLoginIsRead_NoPageStaysOpen(t *testing.T) {
	store := newGatedSessions()
	h := newHarness(t, Options{Sessions: store})
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	store.mu.Lock()
	store.armed = true
	store.mu.Unlock()
	type dialed struct {
		conn *websocket.Conn
		done chan struct{}
		err  error
	}
	got := make(chan dialed, 1)
	go func() {
		conn, _, done, err := dialPage(h, c)
		got <- dialed{conn, done, err}
	}()
	select {
	case <-store.read:
	case <-time.After(wait):
		t.Fatal("the WebSocket's handshake never read the login")
	}
	store.endUser(1) // the change commits...
	h.srv.EndSessions(1)
	close(store.release) // ...after the store read the login as valid
	d := <-got
	if d.err != nil {
		t.Fatal(d.err)
	}
	if d.conn != nil {
		awaitClosed(t, d.conn, d.done, "login ended while it was read")
		d.conn.CloseNow()
	}
	r, _ := http.NewRequest("GET", h.http.URL+"/session", nil)
	r.AddCookie(c)
	if _, ok := h.srv.Authenticate(r); ok {
		t.Fatal("the cookie still authenticates after EndSessions")
	}
}

// The other half of the race, which no store can hold: the login was checked, the WebSocket
// upgraded, and EndSessions runs before the softphone is listed (its WebRTC leg is being
// built). attach refuses the page — whether the agent had no softphone yet or one another page
// opened — and what the check recorded is forgotten once no check is in flight.
func TestEndSessions_BeforeSoftphoneAttached_AttachRefuses(t *testing.T) {
	h := newHarness(t, Options{})
	a := Agent{ID: 1, Email: "agent1@example.com"}
	seq := h.srv.beginCheck()
	h.srv.EndSessions(1)
	if as, err := h.srv.attach(a, seq); !errors.Is(err, errSessionEnded) {
		t.Fatalf("attach after EndSessions since the check: %v, %v; want errSessionEnded", as, err)
	}
	h.srv.endCheck()

	// An agent whose softphone is listed (another page): the listed session is not handed out.
	seq = h.srv.beginCheck()
	as, err := h.srv.attach(a, seq)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.endCheck()
	seq = h.srv.beginCheck()
	h.srv.mu.Lock()
	h.srv.endSeq++ // EndSessions' first half; its endAgent has not run yet
	h.srv.ended[1] = h.srv.endSeq
	h.srv.mu.Unlock()
	if got, err := h.srv.attach(a, seq); !errors.Is(err, errSessionEnded) {
		t.Fatalf("attach to a listed softphone after EndSessions since the check: %v, %v; want errSessionEnded", got, err)
	}
	h.srv.endCheck()
	h.srv.endAgent(1)
	as.mu.Lock()
	closed := as.closed
	as.mu.Unlock()
	if !closed {
		t.Fatal("endAgent left the softphone open")
	}
	h.srv.mu.Lock()
	n := len(h.srv.ended)
	h.srv.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d agents' ends kept with no check in flight", n)
	}
	// A check begun after EndSessions is not refused by it.
	seq = h.srv.beginCheck()
	defer h.srv.endCheck()
	if _, err := h.srv.attach(a, seq); err != nil {
		t.Fatalf("attach of a check begun after EndSessions: %v", err)
	}
}

// The same race left to the scheduler, many times under -race: a page dials its WebSocket while
// EndSessions runs at a random moment of the handshake. Every WebSocket that opens closes, on
// a node without a session store and on one with. (Before the fix, the first few dials left a
// WebSocket open: EndSessions ran between the upgrade and the attach.)
func TestEndSessions_RacingWebSocketDials_AlwaysClose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store SessionStore
	}{{"memory", nil}, {"store", newGatedSessions()}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{Sessions: tc.store})
			deadline := time.Now().Add(5 * time.Second)
			var opened, refused int
			// The first dial is not raced: it measures how long a page takes to be attached
			// here, the span over which EndSessions is then spread.
			_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
			start := time.Now()
			conn, hello, done, err := dialPage(h, c)
			if err != nil || conn == nil {
				t.Fatalf("unraced dial: %v", err)
			}
			select {
			case <-hello:
			case <-done:
				t.Fatal("unraced dial: closed before hello")
			}
			span := time.Since(start)
			h.srv.EndSessions(1)
			awaitClosed(t, conn, done, "unraced")
			conn.CloseNow()
			for i := 0; i < 300 && time.Now().Before(deadline); i++ {
				_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(rand.N(span + span/2)) // a random moment of the handshake, not an await

					if g, ok := tc.store.(*gatedSessions); ok {
						g.endUser(1)
					}
					h.srv.EndSessions(1)
				}()
				conn, _, done, err := dialPage(h, c)
				wg.Wait()
				if err != nil {
					t.Fatal(err)
				}
				if conn == nil {
					refused++
					continue
				}
				opened++
				awaitClosed(t, conn, done, fmt.Sprintf("dial %d", i))
				conn.CloseNow()
			}
			t.Logf("%d WebSockets opened and closed, %d refused at the handshake; attach %s", opened, refused, span)
			if opened == 0 {
				t.Error("no WebSocket opened: EndSessions always came first, the race was never run")
			}
		})
	}
}
