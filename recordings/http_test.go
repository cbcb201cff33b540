package recordings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// fakeAuth stands in for ticketing's authentication: the X-Test-User header names the role.
type fakeAuth struct {
	mu        sync.Mutex
	agentsCan bool
}

func (a *fakeAuth) Authorize(r *http.Request) (int64, bool, error) {
	switch r.Header.Get("X-Test-User") {
	case "admin":
		return 1, true, nil
	case "agent":
		return 2, false, nil
	case "guesser":
		return 0, false, backoffError(3 * time.Second)
	}
	return 0, false, errors.New("no credentials")
}

// backoffError is what ticketing returns for a login during its brute-force backoff.
type backoffError time.Duration

func (e backoffError) Error() string                { return "too many requests" }
func (e backoffError) TryAgainAfter() time.Duration { return time.Duration(e) }

// A password guesser in its backoff gets 429 with Retry-After on recordings too, not a 401
// that would invite the next guess.
func TestHTTP_LoginBackoffIs429WithRetryAfter(t *testing.T) {
	e := newHTTPEnv(t)
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v2/recordings/x", nil)
	req.Header.Set("X-Test-User", "guesser")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "3" {
		t.Fatalf("%d Retry-After %q, want 429 and 3", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

func (a *fakeAuth) AgentsCanAccess(context.Context) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.agentsCan, nil
}

func (a *fakeAuth) set(v bool) {
	a.mu.Lock()
	a.agentsCan = v
	a.mu.Unlock()
}

// fakeTickets stands in for ticketing's comments: ticket → recording ids, and the marks made.
type fakeTickets struct {
	mu      sync.Mutex
	tickets map[int64][]string
	marked  []string // "ticket:id:by"
}

func (f *fakeTickets) RecordingIDs(_ context.Context, ticket int64) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids, ok := f.tickets[ticket]
	if !ok {
		return nil, fmt.Errorf("ticket %d: %w", ticket, ErrNotFound)
	}
	return ids, nil
}

func (f *fakeTickets) MarkDeleted(_ context.Context, ticket int64, ids []string, by int64, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.marked = append(f.marked, fmt.Sprintf("%d:%s:%d", ticket, id, by))
	}
	return nil
}

type httpEnv struct {
	s       *Service
	srv     *httptest.Server
	auth    *fakeAuth
	tickets *fakeTickets
	clk     *clock
}

func newHTTPEnv(t *testing.T) *httpEnv {
	e := &httpEnv{auth: &fakeAuth{agentsCan: true}, tickets: &fakeTickets{tickets: map[int64][]string{}}, clk: newClock()}
	e.s = newService(t, Options{Now: e.clk.Now, Buffer: 1024, Authorizer: e.auth, Tickets: e.tickets})
	mux := http.NewServeMux()
	e.s.Register(mux, "/api/v2/")
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// record makes a finished 1 s stereo recording for callID.
func (e *httpEnv) record(t *testing.T, callID string) Result {
	t.Helper()
	ctx := ctxTimeout(t)
	base := e.clk.Now()
	w, err := e.s.Start(ctx, callID)
	if err != nil {
		t.Fatal(err)
	}
	feed(w.CallerTap(), base, media.PCMU, 440, 1, 0, 50)
	e.clk.Set(base.Add(time.Second))
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, e.s)
	return res
}

func (e *httpEnv) do(t *testing.T, method, path, user string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxTimeout(t), method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func errorName(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Error, Description string }
	if err := json.Unmarshal(body, &e); err != nil || e.Description == "" {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error
}

// Rule CD-6 (access): GET /recordings/{id} serves audio/wav to admins always and to agents only
// while recordings.agents_can_access is on (403 otherwise); anonymous → 401; unknown → 404.
func TestRule_CD6_RecordingAccessPerRole(t *testing.T) {
	e := newHTTPEnv(t)
	res := e.record(t, "call-access")
	file, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v2/recordings/" + res.ID
	cases := []struct {
		name      string
		user      string
		agentsCan bool
		path      string
		status    int
		errName   string
	}{
		{"admin, setting on", "admin", true, path, 200, ""},
		{"admin, setting off", "admin", false, path, 200, ""},
		{"agent, setting on", "agent", true, path, 200, ""},
		{"agent, setting off", "agent", false, path, 403, "Forbidden"},
		{"anonymous", "", true, path, 401, "Unauthorized"},
		{"unknown id", "admin", true, "/api/v2/recordings/nope", 404, "RecordNotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.auth.set(c.agentsCan)
			resp, body := e.do(t, "GET", c.path, c.user)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.status == 200 {
				if ct := resp.Header.Get("Content-Type"); ct != "audio/wav" {
					t.Errorf("Content-Type %q", ct)
				}
				if !bytes.Equal(body, file) {
					t.Errorf("served %d bytes, file has %d", len(body), len(file))
				}
				return
			}
			if got := errorName(t, body); got != c.errName {
				t.Errorf("error %q, want %q", got, c.errName)
			}
			if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// Rule (docs/recordings.md): GET /recordings/{id} supports HTTP Range (RFC 9110 §14): 206 with the
// requested bytes and Content-Range, 416 beyond the end.
func TestRecordingRangeRequests(t *testing.T) {
	e := newHTTPEnv(t)
	res := e.record(t, "call-range")
	file, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v2/recordings/" + res.ID
	n := len(file)
	for _, c := range []struct {
		rng        string
		from, to   int // inclusive
		contentRng string
	}{
		{"bytes=0-43", 0, 43, fmt.Sprintf("bytes 0-43/%d", n)},
		{"bytes=1000-1999", 1000, 1999, fmt.Sprintf("bytes 1000-1999/%d", n)},
		{"bytes=-100", n - 100, n - 1, fmt.Sprintf("bytes %d-%d/%d", n-100, n-1, n)},
		{fmt.Sprintf("bytes=%d-", n-10), n - 10, n - 1, fmt.Sprintf("bytes %d-%d/%d", n-10, n-1, n)},
	} {
		resp, body := e.do(t, "GET", path, "admin", "Range", c.rng)
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("%s: status %d", c.rng, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Range"); got != c.contentRng {
			t.Errorf("%s: Content-Range %q, want %q", c.rng, got, c.contentRng)
		}
		if !bytes.Equal(body, file[c.from:c.to+1]) {
			t.Errorf("%s: wrong bytes", c.rng)
		}
	}
	if resp, _ := e.do(t, "GET", path, "admin", "Range", fmt.Sprintf("bytes=%d-", n+10)); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range beyond the end: status %d, want 416", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", path, "agent", "Range", "bytes=0-1"); resp.StatusCode != 206 {
		t.Errorf("agent range: %d", resp.StatusCode)
	}
}

// The Range flood (issue 14): 5,000 tiny ranges get the recording once (200), not a 5,000-part
// multipart body; a few ranges still get their parts.
func TestRangeFlood_FiveThousandRangesOnARecordingGetTheFileOnce(t *testing.T) {
	e := newHTTPEnv(t)
	res := e.record(t, "call-range-flood")
	file, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v2/recordings/" + res.ID
	rs := make([]string, 5000)
	for i := range rs {
		rs[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
	}
	resp, body := e.do(t, "GET", path, "admin", "Range", "bytes="+strings.Join(rs, ","))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, file) {
		t.Fatalf("5,000 ranges: status %d, %d bytes (the file has %d); want 200 and the file once", resp.StatusCode, len(body), len(file))
	}
	if resp, _ := e.do(t, "GET", path, "admin", "Range", "bytes=0-1,10-11"); resp.StatusCode != http.StatusPartialContent {
		t.Errorf("two ranges: status %d, want 206", resp.StatusCode)
	}
}

// Rule CD-6 (deletion): DELETE /tickets/{id}/recordings removes every recording of the ticket
// for good — the file is gone, the metadata says deleted with who and when, GET answers 404 —
// and asks ticketing to mark the comments (which stay) with an audit entry. Other tickets'
// recordings stay; agents need agents_can_access as for listening; an unknown ticket is 404;
// deleting again is harmless.
func TestRule_CD6_DeleteTicketRecordings(t *testing.T) {
	e := newHTTPEnv(t)
	ctx := ctxTimeout(t)
	a, b, keep := e.record(t, "call-a"), e.record(t, "call-b"), e.record(t, "call-keep")
	e.tickets.tickets[7] = []string{a.ID, b.ID, "external-recording"}
	e.tickets.tickets[8] = []string{keep.ID}

	if resp, body := e.do(t, "DELETE", "/api/v2/tickets/7/recordings", ""); resp.StatusCode != 401 {
		t.Fatalf("anonymous delete: %d %s", resp.StatusCode, body)
	}
	e.auth.set(false)
	if resp, body := e.do(t, "DELETE", "/api/v2/tickets/7/recordings", "agent"); resp.StatusCode != 403 {
		t.Fatalf("agent delete with agents_can_access off: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(a.Path); err != nil {
		t.Fatalf("a refused delete removed the file: %v", err)
	}
	if resp, body := e.do(t, "DELETE", "/api/v2/tickets/99/recordings", "admin"); resp.StatusCode != 404 || errorName(t, body) != "RecordNotFound" {
		t.Fatalf("unknown ticket: %d %s", resp.StatusCode, body)
	}
	before := e.clk.Now()
	if resp, body := e.do(t, "DELETE", "/api/v2/tickets/7/recordings", "admin"); resp.StatusCode != 204 {
		t.Fatalf("admin delete: %d %s", resp.StatusCode, body)
	}
	for _, r := range []Result{a, b} {
		if _, err := os.Stat(r.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: file still there (%v)", r.CallID, err)
		}
		rec, err := e.s.Recording(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != StateDeleted || rec.DeletedAt == nil || rec.DeletedAt.Sub(before).Abs() > time.Microsecond || rec.DeletedBy == nil || *rec.DeletedBy != 1 {
			t.Errorf("%s: metadata %+v", r.CallID, rec)
		}
		if resp, body := e.do(t, "GET", "/api/v2/recordings/"+r.ID, "admin"); resp.StatusCode != 404 || errorName(t, body) != "RecordNotFound" {
			t.Errorf("GET deleted: %d %s", resp.StatusCode, body)
		}
	}
	want := []string{"7:" + a.ID + ":1", "7:" + b.ID + ":1", "7:external-recording:1"}
	if !slices.Equal(e.tickets.marked, want) {
		t.Errorf("marked %v, want %v", e.tickets.marked, want)
	}
	if _, err := os.Stat(keep.Path); err != nil {
		t.Errorf("another ticket's recording was removed: %v", err)
	}
	e.auth.set(true)
	if resp, body := e.do(t, "DELETE", "/api/v2/tickets/7/recordings", "agent"); resp.StatusCode != 204 {
		t.Fatalf("delete again: %d %s", resp.StatusCode, body)
	}
	rec, err := e.s.Recording(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if *rec.DeletedBy != 1 {
		t.Errorf("deleting again changed who deleted it: %d", *rec.DeletedBy)
	}
}

// Rule CD-6: a recording deleted while its call is still recording stays deleted: Finish
// neither recreates the file nor marks it ready.
func TestDeleteWhileRecordingStaysDeleted(t *testing.T) {
	e := newHTTPEnv(t)
	ctx := ctxTimeout(t)
	w, err := e.s.Start(ctx, "call-live")
	if err != nil {
		t.Fatal(err)
	}
	feed(w.CallerTap(), e.clk.Now(), media.PCMU, 440, 1, 0, 10)
	if ok, err := e.s.Delete(ctx, w.ID(), 1, e.clk.Now()); !ok || err != nil {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateDeleted {
		t.Errorf("state %s", res.State)
	}
	if _, err := os.Stat(res.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after Finish: %v", err)
	}
	flush(t, e.s)
	if rec, err := e.s.Recording(ctx, res.ID); err != nil || rec.State != StateDeleted {
		t.Errorf("metadata %+v, %v", rec, err)
	}
}

// Rule (retention): recordings older than the retention are deleted as by the system (no
// user), file and all, and the hook tells ticketing which ones so their comments show
// deleted_at; younger ones and 0 days keep everything.
func TestRetentionDeletesOldRecordings(t *testing.T) {
	var hooked []string
	var hookAt time.Time
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, OnExpired: func(_ context.Context, ids []string, at time.Time) error {
		hooked, hookAt = append(hooked, ids...), at
		return nil
	}})
	ctx := ctxTimeout(t)
	var res []Result
	for _, id := range []string{"old-1", "old-2", "young"} {
		w, err := s.Start(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		r, err := w.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	flush(t, s)
	if _, err := s.opts.DB.Exec(ctx, `UPDATE recordings SET created_at = now() - interval '31 days' WHERE call_id LIKE 'old-%'`); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Retention(ctx, 0); n != 0 || err != nil {
		t.Fatalf("0 days: %d, %v", n, err)
	}
	n, err := s.Retention(ctx, 30)
	if err != nil || n != 2 {
		t.Fatalf("retention: %d, %v", n, err)
	}
	slices.Sort(hooked)
	want := []string{res[0].ID, res[1].ID}
	slices.Sort(want)
	if !slices.Equal(hooked, want) || !hookAt.Equal(clk.Now()) {
		t.Errorf("hook got %v at %v, want %v", hooked, hookAt, want)
	}
	for i, r := range res {
		rec, err := s.Recording(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(r.Path)
		if i < 2 && (rec.State != StateDeleted || rec.DeletedBy != nil || !errors.Is(statErr, os.ErrNotExist)) {
			t.Errorf("%s: %+v, file %v", r.CallID, rec, statErr)
		}
		if i == 2 && (rec.State != StateReady || statErr != nil) {
			t.Errorf("young recording: %+v, file %v", rec, statErr)
		}
	}
	if n, err := s.Retention(ctx, 30); n != 0 || err != nil {
		t.Errorf("second pass: %d, %v", n, err)
	}
}

// RunRetention applies retention at once and stops with its context.
func TestRunRetentionStopsWithContext(t *testing.T) {
	s := newService(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunRetention(ctx, 30, time.Hour, func(err error) { t.Error(err) })
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("RunRetention did not return")
	}
}
