package ticketing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// env is a ticketing API on a fresh database behind a real HTTP server, with an admin and an
// agent holding API tokens. Every response it sees is checked against the OpenAPI description
// and must never be a 500.
type env struct {
	t      testing.TB
	store  *ticketing.Store
	srv    *httptest.Server
	router routers.Router

	admin, agent           ticketing.User
	adminToken, agentToken string

	mu        *sync.Mutex
	validated map[string]map[int]bool // operationId → statuses seen and validated
}

const (
	adminPass = "adminpass"
	agentPass = "agentpass"
)

func newEnv(t testing.TB) *env {
	t.Helper()
	pool := pgtest.Pool(t)
	store := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	api := ticketing.NewAPI(store, ticketing.APIOptions{})
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatalf("openapi: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: srv.URL + "/api/v2"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	e := &env{t: t, store: store, srv: srv, router: router, validated: map[string]map[int]bool{}, mu: &sync.Mutex{}}
	ctx := context.Background()
	if e.admin, err = store.EnsureUser(ctx, "admin@example.com", "Admin", ticketing.RoleAdmin, adminPass); err != nil {
		t.Fatal(err)
	}
	if e.agent, err = store.EnsureUser(ctx, "agent1@example.com", "Agent One", ticketing.RoleAgent, agentPass); err != nil {
		t.Fatal(err)
	}
	if e.adminToken, err = store.CreateAPIToken(ctx, e.admin.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if e.agentToken, err = store.CreateAPIToken(ctx, e.agent.ID, "test"); err != nil {
		t.Fatal(err)
	}
	return e
}

// resp is one API answer.
type resp struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

// field walks a decoded JSON body: r.get("user", "id").
func (r resp) get(path ...string) any {
	var v any = r.Body
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func (r resp) id(path ...string) int64 {
	f, _ := r.get(path...).(float64)
	return int64(f)
}

func (r resp) str(path ...string) string {
	s, _ := r.get(path...).(string)
	return s
}

func (r resp) list(key string) []map[string]any {
	items, _ := r.Body[key].([]any)
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

// detail reports whether the error names field in its details.
func (r resp) detail(field string) bool {
	d, _ := r.Body["details"].(map[string]any)
	_, ok := d[field]
	return ok
}

// auth is how a request authenticates: a token, basic credentials, or nothing.
type auth struct {
	token       string
	user, pass  string
	description string
}

func (e *env) asAdmin() auth { return auth{token: e.adminToken, description: "admin"} }
func (e *env) asAgent() auth { return auth{token: e.agentToken, description: "agent"} }

// call sends one request; body is a value to encode, a string or []byte sent as is, or nil.
func (e *env) call(a auth, method, path string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+"/api/v2"+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case a.token != "":
		req.Header.Set("Authorization", "Bearer "+a.token)
	case a.user != "":
		req.SetBasicAuth(a.user, a.pass)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := resp{Status: res.StatusCode, Raw: raw}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			e.t.Errorf("%s %s: response is not a JSON object: %v: %s", method, path, err, raw)
		}
	}
	if res.StatusCode >= 500 {
		e.t.Errorf("%s %s: %d, never a 5xx: %s", method, path, res.StatusCode, raw)
	}
	e.validate(req, res, raw)
	return out
}

// validate checks one real response against the OpenAPI description.
func (e *env) validate(req *http.Request, res *http.Response, raw []byte) {
	e.t.Helper()
	if strings.HasSuffix(req.URL.Path, "/openapi.json") {
		return
	}
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		return // not an operation of the API (e.g. a 404 for an unknown path)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  res.StatusCode,
		Header:  res.Header,
		Body:    io.NopCloser(bytes.NewReader(raw)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		e.t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%s", req.Method, req.URL.Path, res.StatusCode, err, raw)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	op := route.Operation.OperationID
	if e.validated[op] == nil {
		e.validated[op] = map[int]bool{}
	}
	e.validated[op][res.StatusCode] = true
}

// must asserts a status and returns the response.
func must(t testing.TB, r resp, status int) resp {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

// newUser creates an end user through the API, with phone numbers added in order.
func (e *env) newUser(name string, phones ...string) int64 {
	e.t.Helper()
	r := must(e.t, e.call(e.asAgent(), "POST", "/users", map[string]any{"user": map[string]any{"name": name}}), http.StatusCreated)
	id := r.id("user", "id")
	for _, p := range phones {
		e.addPhone(id, p, http.StatusCreated)
	}
	return id
}

// addPhone adds a number to user id and asserts the status; it returns the identity.
func (e *env) addPhone(id int64, phone string, status int) resp {
	e.t.Helper()
	return must(e.t, e.call(e.asAgent(), "POST", fmt.Sprintf("/users/%d/identities", id),
		map[string]any{"identity": map[string]any{"type": "phone_number", "value": phone}}), status)
}

// identities returns user id's identities as value → line_type.
func (e *env) identities(id int64) map[string]string {
	e.t.Helper()
	r := must(e.t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/identities", id), nil), http.StatusOK)
	out := map[string]string{}
	for _, i := range r.list("identities") {
		out[i["value"].(string)] = i["line_type"].(string)
	}
	return out
}

func (e *env) resolve(number string, opts ticketing.ResolveOptions) ticketing.Resolution {
	e.t.Helper()
	r, err := e.store.ResolveCaller(context.Background(), number, opts)
	if err != nil {
		e.t.Fatalf("resolve %q: %v", number, err)
	}
	return r
}

func (e *env) putSettings(patch map[string]any) {
	e.t.Helper()
	must(e.t, e.call(e.asAdmin(), "PUT", "/settings/voice", map[string]any{"settings": patch}), http.StatusOK)
}

// newTicket creates a ticket through the API for requester.
func (e *env) newTicket(requester int64, extra map[string]any) int64 {
	e.t.Helper()
	body := map[string]any{"subject": "help", "requester_id": requester, "comment": map[string]any{"body": "first"}}
	for k, v := range extra {
		body[k] = v
	}
	r := must(e.t, e.call(e.asAgent(), "POST", "/tickets", map[string]any{"ticket": body}), http.StatusCreated)
	return r.id("ticket", "id")
}

// voiceTicket creates a ticket the way the events engine does: via voice, with the number
// that created it and a voice comment of that call.
func (e *env) voiceTicket(requester int64, from string) int64 {
	e.t.Helper()
	ctx := context.Background()
	t, err := e.store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{
		Subject: "Call from " + from, RequesterID: requester, OriginPhone: from,
		Via: ticketing.Via{Channel: ticketing.ChannelVoice, Source: "inbound"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	d := int64(42)
	if _, err := e.store.AppendVoiceComment(ctx, t.ID, ticketing.VoiceComment{
		Body: "Inbound call", CallID: "call-" + from, From: from, To: "+15550100",
		StartedAt: time.Now(), Duration: &d, Location: e.store.PhoneLocation(from),
	}); err != nil {
		e.t.Fatal(err)
	}
	return t.ID
}
