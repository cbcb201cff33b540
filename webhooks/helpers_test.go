package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
	"github.com/switchboard-voice/switchboard/webhooks"
)

// await is how long a test waits for something that normally takes milliseconds: generous,
// so that a loaded machine does not fail a test, bounded, so that a bug does not hang one.
const await = 20 * time.Second

// env is one test's world: a fresh database, the ticketing store and its authentication, the
// event log, the webhooks API on a loopback HTTP server, and an admin's and an agent's tokens.
type env struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *ticketing.Store
	log   *eventlog.Log
	api   *httptest.Server
	admin string
	agent string
	reg   *prometheus.Registry
	// dispatch is the running dispatcher, woken when events are stored or webhooks change.
	dispatch atomic.Pointer[webhooks.Dispatcher]
}

func (e *env) wake() {
	if d := e.dispatch.Load(); d != nil {
		d.Wake()
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, pool: pgtest.Pool(t), reg: prometheus.NewRegistry()}
	e.store = ticketing.NewStore(e.pool, ticketing.StoreOptions{})
	ctx := context.Background()
	var err error
	e.log, err = eventlog.Open(ctx, eventlog.Options{Pool: e.pool, SpoolPath: filepath.Join(t.TempDir(), "spool"),
		OnStored: e.wake})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.log.Close() })
	hash, err := bcrypt.GenerateFromPassword([]byte("password1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		email, role string
		tok         *string
	}{{"admin@example.com", "admin", &e.admin}, {"agent@example.com", "agent", &e.agent}} {
		user, err := e.store.EnsureUser(ctx, u.email, u.role, u.role, string(hash))
		if err != nil {
			t.Fatal(err)
		}
		if *u.tok, err = e.store.CreateAPIToken(ctx, user.ID, "test"); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	e.api = httptest.NewServer(mux)
	t.Cleanup(e.api.Close)
	api := webhooks.NewAPI(webhooks.APIOptions{Pool: e.pool, Auth: ticketing.NewAPI(e.store, ticketing.APIOptions{}),
		Changed: e.wake})
	api.Register(mux, "/api/v2")
	return e
}

// fast are dispatcher options that keep the tests short: quick polls and short backoffs.
func fast(e *env) webhooks.Options {
	return webhooks.Options{Pool: e.pool, Node: "test", PollInterval: 50 * time.Millisecond,
		InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Timeout: 5 * time.Second}
}

// run starts a dispatcher with opts until the returned stop is called (or the test ends).
func (e *env) run(opts webhooks.Options) (stop func()) {
	e.t.Helper()
	if opts.Registerer == nil {
		opts.Registerer = e.reg
	}
	d, err := webhooks.NewDispatcher(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.dispatch.Store(d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(await):
				e.t.Error("dispatcher did not stop")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// do calls the API with a Bearer token ("" for none) and returns the status, the decoded body
// and the headers.
func (e *env) do(method, path, token, body string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.api.URL+"/api/v2"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

// createHook registers a webhook to endpoint subscribed to subs and returns its id and secret.
func (e *env) createHook(endpoint string, subs ...string) (string, string) {
	e.t.Helper()
	sb, _ := json.Marshal(subs)
	code, m, _ := e.do("POST", "/webhooks", e.admin, fmt.Sprintf(
		`{"webhook":{"name":"test","endpoint":%q,"http_method":"POST","request_format":"json","status":"active","subscriptions":%s}}`, endpoint, sb))
	if code != http.StatusCreated {
		e.t.Fatalf("create webhook: %d %v", code, m)
	}
	id := m["webhook"].(map[string]any)["id"].(string)
	code, m, _ = e.do("GET", "/webhooks/"+id+"/signing_secret", e.admin, "")
	if code != http.StatusOK {
		e.t.Fatalf("signing secret: %d %v", code, m)
	}
	return id, m["signing_secret"].(map[string]any)["secret"].(string)
}

// emit stores n events of one call through the event log (call.started, then holds and
// resumes) and returns their ids in order.
func (e *env) emit(callID string, from, n int) []string {
	e.t.Helper()
	var ids []string
	for i := from; i < from+n; i++ {
		ev := callevent.Event{ID: uuid.NewString(), CallID: callID, Seq: int64(i), At: time.Now().UTC(), Type: callevent.EventHeld}
		switch {
		case i == 1:
			ev.Type, ev.Direction, ev.From, ev.To, ev.Line = callevent.EventStarted, "inbound", "+15550001111", "+15550100", "+15550100"
		case i%2 == 1:
			ev.Type = callevent.EventResumed
		}
		ctx, cancel := context.WithTimeout(context.Background(), await)
		err := e.log.Emit(ctx, ev)
		cancel()
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	id     string // the event's id (the body's "id")
	typ    string
}

// receiver is a webhook receiver on 127.0.0.1. answer, when set, gives the status of the n-th
// request (from 0); 200 otherwise.
type receiver struct {
	srv    *httptest.Server
	url    string
	mu     sync.Mutex
	got    []delivery
	more   chan struct{} // signalled at each request
	answer func(n int, d delivery) int
}

func newReceiver(t *testing.T, answer func(n int, d delivery) int) *receiver {
	r := &receiver{more: make(chan struct{}, 1), answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.url = r.srv.URL + "/hook"
	t.Cleanup(r.srv.Close)
	return r
}

// newReceiverOn is a receiver on a given loopback address (one that was down until now).
func newReceiverOn(t *testing.T, addr string) *receiver {
	r := &receiver{more: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Listener.Close()
	r.srv.Listener = ln
	r.srv.Start()
	r.url = r.srv.URL + "/hook"
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	var env struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &env)
	d := delivery{header: req.Header.Clone(), body: b, id: env.ID, typ: env.Type}
	r.mu.Lock()
	n := len(r.got)
	r.got = append(r.got, d)
	answer := r.answer
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
	code := http.StatusOK
	if answer != nil {
		code = answer(n, d)
	}
	w.WriteHeader(code)
}

func (r *receiver) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// wait returns the requests once there are at least n, failing the test after await.
func (r *receiver) wait(t *testing.T, n int) []delivery {
	t.Helper()
	deadline := time.After(await)
	for {
		if got := r.all(); len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", len(r.all()), n)
		}
	}
}

// ids are the event ids of ds, in the order received.
func ids(ds []delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.id)
	}
	return out
}

// eventually polls cond every 20 ms until it holds, failing the test after await.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(await)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter reads switchboard_webhook_deliveries_total{result}.
func (e *env) counter(result string) float64 {
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}
