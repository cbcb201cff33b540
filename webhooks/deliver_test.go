package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/webhooks"
)

// Every request carries Zendesk's headers and a signature that verifies with the webhook's
// secret (and not with another); the call events arrive one by one in the order they were
// stored, in Zendesk's event schema.
func TestWebhookDeliveriesAreSignedAndInOrder(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, nil)
	hookID, secret := e.createHook(r.url, "zen:event-type:call.*")
	e.run(fast(e))
	var want []string
	for i := 1; i <= 6; i++ { // two calls, interleaved
		want = append(want, e.emit("call-a", i, 1)...)
		want = append(want, e.emit("call-b", i, 1)...)
	}
	got := r.wait(t, len(want))
	if !slices.Equal(ids(got), want) {
		t.Fatalf("order:\n got %v\nwant %v", ids(got), want)
	}
	for i, d := range got {
		ts := d.header.Get(webhooks.HeaderTimestamp)
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Fatalf("delivery %d: timestamp %q: %v", i, ts, err)
		}
		if !webhooks.Verify(secret, ts, d.body, d.header.Get(webhooks.HeaderSignature)) {
			t.Fatalf("delivery %d: signature does not verify", i)
		}
		if webhooks.Verify("another secret of some length", ts, d.body, d.header.Get(webhooks.HeaderSignature)) {
			t.Fatal("signature verifies with another secret")
		}
		if d.header.Get(webhooks.HeaderWebhookID) != hookID || d.header.Get(webhooks.HeaderInvocationID) == "" ||
			d.header.Get(webhooks.HeaderEventID) != d.id {
			t.Fatalf("delivery %d: headers %v", i, d.header)
		}
		var body map[string]any
		if err := json.Unmarshal(d.body, &body); err != nil {
			t.Fatal(err)
		}
		detail, _ := body["detail"].(map[string]any)
		if body["zendesk_event_version"] == nil || body["subject"] == nil || detail["call_id"] == nil ||
			body["type"] != "zen:event-type:"+detail["type"].(string) {
			t.Fatalf("delivery %d: body %s", i, d.body)
		}
	}
	if got[0].typ != "zen:event-type:call.started" || got[0].body == nil {
		t.Fatalf("first event %q", got[0].typ)
	}
}

// A receiver answering 500 twice then 200 gets the same event three times, then the next ones
// in order: the retries hold the events behind them. The invocations API shows the three
// attempts, the metric counts them.
func TestWebhookRetriesFailedEventThenKeepsOrder(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(n int, _ delivery) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	hookID, _ := e.createHook(r.url, "zen:event-type:call.*")
	e.run(fast(e))
	want := e.emit("call-r", 1, 3)
	got := r.wait(t, 5)
	if g := ids(got); !slices.Equal(g, []string{want[0], want[0], want[0], want[1], want[2]}) {
		t.Fatalf("deliveries %v, want the first three times then the others (%v)", g, want)
	}
	if a, b := got[0].header.Get(webhooks.HeaderInvocationID), got[2].header.Get(webhooks.HeaderInvocationID); a != b {
		t.Fatalf("retries of one event have invocation ids %s and %s", a, b)
	}
	var inv map[string]any
	eventually(t, "the invocations show every delivery", func() bool {
		_, m, _ := e.do("GET", "/webhooks/"+hookID+"/invocations", e.admin, "")
		list, _ := m["invocations"].([]any)
		if len(list) != 3 {
			return false
		}
		inv = list[2].(map[string]any) // newest first: the first event is last
		return inv["status"] == "success"
	})
	if inv["event_id"] != want[0] || inv["attempts"] != 3.0 || inv["status_code"] != 200.0 {
		t.Fatalf("invocation %v", inv)
	}
	code, m, _ := e.do("GET", "/webhooks/"+hookID+"/invocations/"+inv["id"].(string)+"/attempts", e.admin, "")
	atts, _ := m["attempts"].([]any)
	if code != 200 || len(atts) != 3 {
		t.Fatalf("attempts: %d %v", code, m)
	}
	for i, wantCode := range []float64{500, 500, 200} {
		a := atts[i].(map[string]any)
		if a["status_code"] != wantCode || a["duration_ms"] == nil {
			t.Fatalf("attempt %d: %v", i, a)
		}
	}
	if atts[0].(map[string]any)["status"] != "failed" || atts[2].(map[string]any)["status"] != "success" {
		t.Fatalf("attempt statuses: %v", atts)
	}
	eventually(t, "the metric counts the attempts", func() bool { return e.counter("success") == 3 && e.counter("failed") == 2 })
}

// A receiver that is down when the events are stored gets all of them, in order, once it is
// up; the attempts meanwhile are recorded with their connection error.
func TestWebhookReceiverDownAtFirstGetsEverythingOnceUp(t *testing.T) {
	e := newEnv(t)
	// Nothing listens there now (a port of the peers' band, never an ephemeral one another
	// connection could take): connections are refused.
	addr := fmt.Sprintf("127.0.0.1:%d", testport.FreeUDP(t))
	hookID, _ := e.createHook("http://"+addr+"/hook", "zen:event-type:call.*")
	e.run(fast(e))
	want := e.emit("call-d", 1, 4)
	eventually(t, "a failed attempt is recorded", func() bool {
		_, m, _ := e.do("GET", "/webhooks/"+hookID+"/invocations?filter[status]=pending", e.admin, "")
		list, _ := m["invocations"].([]any)
		if len(list) == 0 {
			return false
		}
		inv := list[0].(map[string]any)
		_, am, _ := e.do("GET", "/webhooks/"+hookID+"/invocations/"+inv["id"].(string)+"/attempts", e.admin, "")
		atts, _ := am["attempts"].([]any)
		return len(atts) >= 2 && atts[0].(map[string]any)["error"] != ""
	})
	r := newReceiverOn(t, addr)
	got := r.wait(t, len(want))
	if !slices.Equal(ids(got), want) {
		t.Fatalf("after the receiver came up: %v, want %v", ids(got), want)
	}
}

// Stopping the dispatcher and starting another (a restart, or another node) resumes from the
// cursor: the events delivered before are not sent again, the ones stored meanwhile are.
func TestWebhookRestartResumesFromCursor(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, nil)
	e.createHook(r.url, "zen:event-type:call.*")
	stop := e.run(fast(e))
	first := e.emit("call-s", 1, 3)
	r.wait(t, 3)
	stop()
	second := e.emit("call-s", 4, 3)
	opts := fast(e)
	opts.Node = "another-node"
	opts.Registerer = prometheus.NewRegistry()
	e.run(opts)
	got := r.wait(t, 6)
	if want := append(first, second...); !slices.Equal(ids(got), want) {
		t.Fatalf("after the restart: %v, want %v", ids(got), want)
	}
	// A further event proves the new dispatcher is past them (nothing re-sent in between).
	third := e.emit("call-s", 7, 1)
	got = r.wait(t, 7)
	if len(got) != 7 || got[6].id != third[0] {
		t.Fatalf("%d deliveries, last %s, want 7 ending with %s", len(got), got[len(got)-1].id, third[0])
	}
}

// After DELETE a webhook gets nothing more, while another webhook keeps getting the events.
func TestWebhookDeleteStopsDeliveries(t *testing.T) {
	e := newEnv(t)
	gone, kept := newReceiver(t, nil), newReceiver(t, nil)
	goneID, _ := e.createHook(gone.url, "zen:event-type:call.*")
	e.createHook(kept.url, "zen:event-type:call.*")
	e.run(fast(e))
	e.emit("call-x", 1, 1)
	gone.wait(t, 1)
	kept.wait(t, 1)
	if code, m, _ := e.do("DELETE", "/webhooks/"+goneID, e.admin, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, m)
	}
	if code, _, _ := e.do("GET", "/webhooks/"+goneID, e.admin, ""); code != http.StatusNotFound {
		t.Fatalf("deleted webhook: %d, want 404", code)
	}
	e.emit("call-x", 2, 2)
	kept.wait(t, 3)
	if n := len(gone.all()); n != 1 {
		t.Fatalf("the deleted webhook got %d requests, want 1 (before the delete)", n)
	}
}

// A receiver that holds every request does not slow the storing of call events: the event
// log keeps storing them while the first delivery hangs, and they all arrive once it answers.
func TestWebhookSlowReceiverDoesNotDelayEventStorage(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	var held atomic.Int32
	r := newReceiver(t, func(n int, _ delivery) int {
		if n == 0 {
			held.Store(1)
			<-release
		}
		return http.StatusOK
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	e.createHook(r.url, "zen:event-type:call.*")
	opts := fast(e)
	opts.Timeout = time.Minute
	e.run(opts)
	want := e.emit("call-slow", 1, 1)
	eventually(t, "the receiver holds the first request", func() bool { return held.Load() == 1 })
	start := time.Now()
	want = append(want, e.emit("call-slow", 2, 50)...) // each returns once stored in call_events
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM call_events WHERE call_id = 'call-slow'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 51 {
		t.Fatalf("%d events stored while the receiver hung, want 51", n)
	}
	if len(r.all()) != 1 {
		t.Fatalf("%d requests while the first hangs, want 1 (one at a time)", len(r.all()))
	}
	t.Logf("50 events stored in %v while the receiver held its request", time.Since(start))
	close(release)
	got := r.wait(t, 51)
	if !slices.Equal(ids(got), want) {
		t.Fatal("events out of order after the slow answer")
	}
}

// Subscriptions filter: a webhook subscribed to user events gets the audit trail's user
// entries (in Zendesk's schema), not the call events; one subscribed to one call type gets
// only that type.
func TestWebhookSubscriptionsFilterEventTypes(t *testing.T) {
	e := newEnv(t)
	users, started := newReceiver(t, nil), newReceiver(t, nil)
	e.createHook(users.url, "zen:event-type:user.*")
	e.createHook(started.url, "zen:event-type:call.started")
	e.run(fast(e))
	calls := e.emit("call-f", 1, 3) // started, held, resumed
	var auditID int64
	if err := e.pool.QueryRow(context.Background(), `INSERT INTO audits (kind, user_id, details)
		VALUES ('user_merged', 1, '{"target_id": 2, "tickets": 3}') RETURNING id`).Scan(&auditID); err != nil {
		t.Fatal(err)
	}
	calls = append(calls, e.emit("call-g", 1, 1)...)
	got := started.wait(t, 2)
	if !slices.Equal(ids(got), []string{calls[0], calls[3]}) {
		t.Fatalf("call.started webhook got %v, want %v", ids(got), []string{calls[0], calls[3]})
	}
	u := users.wait(t, 1)
	var body struct {
		Type    string         `json:"type"`
		Subject string         `json:"subject"`
		Detail  map[string]any `json:"detail"`
		Event   map[string]any `json:"event"`
	}
	if err := json.Unmarshal(u[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Type != "zen:event-type:user.user_merged" || body.Subject != "zen:user:1" ||
		body.Detail["audit_log_id"] != float64(auditID) || body.Event["target_id"] != 2.0 {
		t.Fatalf("user event: %s", u[0].body)
	}
	// The next call event went to the call webhook after the audit entry: the user webhook
	// had its chance at everything stored before it, and got only its one.
	if n := len(users.all()); n != 1 {
		t.Fatalf("user webhook got %d requests, want 1", n)
	}
}

// A transaction still writing a lower position holds delivery (no event is skipped because
// it committed late); a rolled-back one leaves a gap that is passed once it ended.
func TestWebhookGapWaitsForLateCommitThenPassesRollback(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, nil)
	e.createHook(r.url, "zen:event-type:call.*")
	e.run(fast(e))
	ctx := context.Background()
	ins := `INSERT INTO call_events (id, call_id, seq, type, at, body) VALUES ($1::text::uuid, $2::text, 1, 'call.held', now(),
		jsonb_build_object('id', $1::text, 'call_id', $2::text, 'seq', 1, 'type', 'call.held'))`
	late, later, rolled, after := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, ins, late, "gap-1"); err != nil { // takes the lower pos, not committed
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, ins, later, "gap-2"); err != nil {
		t.Fatal(err)
	}
	// Let the dispatcher see the gap several times (a sleep here only makes the test stricter).
	time.Sleep(300 * time.Millisecond)
	if n := len(r.all()); n != 0 {
		t.Fatalf("%d deliveries while a lower position was uncommitted", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.wait(t, 2); !slices.Equal(ids(got), []string{late, later}) {
		t.Fatalf("after the late commit: %v, want %v", ids(got), []string{late, later})
	}
	tx, err = e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, ins, rolled, "gap-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, ins, after, "gap-4"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.wait(t, 3); got[2].id != after {
		t.Fatalf("after the rollback: %v, want %s last", ids(got), after)
	}
	if n := len(r.all()); n != 3 {
		t.Fatalf("%d deliveries, want 3", n)
	}
}

// A webhook's events are given up after MaxAttempts: the invocation is failed and the next
// event goes, counted as dropped.
func TestWebhookGivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, func(n int, _ delivery) int {
		if n < 3 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	hookID, _ := e.createHook(r.url, "zen:event-type:call.*")
	opts := fast(e)
	opts.MaxAttempts = 3
	e.run(opts)
	want := e.emit("call-m", 1, 2)
	got := r.wait(t, 4)
	if g := ids(got); !slices.Equal(g, []string{want[0], want[0], want[0], want[1]}) {
		t.Fatalf("deliveries %v", g)
	}
	eventually(t, "dropped counted", func() bool { return e.counter("dropped") == 1 })
	_, m, _ := e.do("GET", "/webhooks/"+hookID+"/invocations?filter[status]=failed", e.admin, "")
	if list, _ := m["invocations"].([]any); len(list) != 1 || list[0].(map[string]any)["attempts"] != 3.0 {
		t.Fatalf("failed invocations: %v", m)
	}
}

// Webhooks created, switched off and on, and deleted in a loop while events are stored and
// the dispatcher is woken from several goroutines: no data race, no hang (the dispatcher
// stops within the bound), and a webhook left alone meanwhile gets every event, in order.
func TestWebhookChurnWhileDeliveringKeepsOrderAndStops(t *testing.T) {
	e := newEnv(t)
	steady := newReceiver(t, nil)
	churned := newReceiver(t, nil)
	e.createHook(steady.url, "zen:event-type:call.*")
	stop := e.run(fast(e))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			e.wake()
		}
	}()
	var want []string
	for i := 0; i < 10; i++ {
		id, _ := e.createHook(churned.url, "zen:event-type:call.*")
		want = append(want, e.emit("call-churn", 2*i+1, 1)...)
		if code, _, _ := e.do("PATCH", "/webhooks/"+id, e.admin, `{"webhook":{"status":"inactive"}}`); code != http.StatusNoContent {
			t.Fatalf("patch inactive: %d", code)
		}
		if code, _, _ := e.do("PATCH", "/webhooks/"+id, e.admin, `{"webhook":{"status":"active"}}`); code != http.StatusNoContent {
			t.Fatalf("patch active: %d", code)
		}
		want = append(want, e.emit("call-churn", 2*i+2, 1)...)
		if code, _, _ := e.do("DELETE", "/webhooks/"+id, e.admin, ""); code != http.StatusNoContent {
			t.Fatalf("delete: %d", code)
		}
	}
	<-done
	got := steady.wait(t, len(want))
	if !slices.Equal(ids(got), want) {
		t.Fatalf("the steady webhook got %v, want %v", ids(got), want)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(await):
		t.Fatal("the dispatcher did not stop")
	}
}

// Two nodes on one database: one delivers a given webhook at a time, so the receiver gets
// each event once and in order; when that node stops, the other takes over from the cursor.
func TestWebhookTwoNodesDeliverOnceInOrder(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, nil)
	e.createHook(r.url, "zen:event-type:call.*")
	a := fast(e)
	a.Node = "node-a"
	stopA := e.run(a)
	b := fast(e)
	b.Node, b.Registerer = "node-b", prometheus.NewRegistry()
	e.run(b)
	var want []string
	for i := 1; i <= 20; i++ {
		want = append(want, e.emit("call-two", i, 1)...)
	}
	if got := r.wait(t, 20); !slices.Equal(ids(got), want) {
		t.Fatalf("two nodes delivered %v, want each once in order %v", ids(got), want)
	}
	stopA() // releases its lease if it held it: the other node goes on
	want = append(want, e.emit("call-two", 21, 3)...)
	if got := r.wait(t, 23); !slices.Equal(ids(got), want) {
		t.Fatalf("after one node stopped: %v, want %v", ids(got), want)
	}
}
