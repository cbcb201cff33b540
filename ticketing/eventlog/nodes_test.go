package eventlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/calljournal"
	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// lostAfter is short so the tests wait little for a node to count as lost.
const lostAfter = time.Second

func nodeLog(t *testing.T, pool *pgxpool.Pool, node string) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(context.Background(), eventlog.Options{
		Pool: pool, SpoolPath: filepath.Join(t.TempDir(), node+".jsonl"), Node: node,
		WriteTimeout: 300 * time.Millisecond, RetryInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := eventlog.RecordNode(context.Background(), pool, node, "test"); err != nil {
		t.Fatal(err)
	}
	return l
}

// nodeWatch starts a node's watch: it beats (and sweeps) every 50 ms on its own; tests add
// ticks of their own to race it.
func nodeWatch(t *testing.T, l *eventlog.Log, reg prometheus.Registerer, onLost ...func(context.Context, string) error) *eventlog.NodeWatch {
	t.Helper()
	return nodeWatchWith(t, eventlog.NodeWatchOptions{Log: l, Registerer: reg}, onLost...)
}

// nodeWatchWith is nodeWatch with more options (o's Interval and LostAfter are the tests').
func nodeWatchWith(t *testing.T, o eventlog.NodeWatchOptions, onLost ...func(context.Context, string) error) *eventlog.NodeWatch {
	t.Helper()
	o.Interval, o.LostAfter = 50*time.Millisecond, lostAfter
	if len(onLost) > 0 {
		o.OnLost = onLost[0]
	}
	w, err := eventlog.StartNodeWatch(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// emit sends the events of one call through sink, seq from 1.
func emit(t *testing.T, sink callevent.Sink, call string, types ...string) {
	t.Helper()
	for i, typ := range types {
		e := ev(call, int64(i+1))
		e.Type = typ
		switch typ {
		case callevent.EventAnswered:
			e.AgentID = 7
		case callevent.EventEnded:
			e.Outcome, e.Cause = callevent.OutcomeAnswered, callevent.CauseBye
		}
		if err := sink.Emit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

type ended struct {
	seq     int64
	outcome string
	cause   string
}

// endedOf lists the call.ended events stored for call.
func endedOf(t *testing.T, pool *pgxpool.Pool, call string) []ended {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT seq, body->>'outcome', coalesce(body->>'cause', '')
		FROM call_events WHERE call_id = $1 AND type = 'call.ended' ORDER BY seq`, call)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []ended
	for rows.Next() {
		var e ended
		if err := rows.Scan(&e.seq, &e.outcome, &e.cause); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestLostNodeCallsClosedExactlyOnceByRacingSurvivors: node B runs calls and stops beating;
// two surviving nodes beat and tick at the same time, again and again (their own goroutines
// and extra ticks). Every call B left open gets
// exactly one call.ended (failed, node_lost, past the seq gap), counted once across the two
// survivors; B's ended call, a live node's call and an outside system's call are left alone.
// Without the row lock both survivors would count (and log) the same calls. The dialog states
// B's DialogStore saved for its answered legs reach exactly one survivor (OnLostDialogs), in
// the order saved, those of its open calls only; once the calls have ended, the nodes' watch
// deletes the stored legs of ended calls and keeps the live call's.
func TestLostNodeCallsClosedExactlyOnceByRacingSurvivors(t *testing.T) {
	pool := pgtest.Pool(t)
	regA, regC := prometheus.NewRegistry(), prometheus.NewRegistry()
	a, c := nodeLog(t, pool, "a"), nodeLog(t, pool, "c")
	var toldMu sync.Mutex
	told := map[string]int{}             // lost node → times OnLost was told, by either survivor
	toldDialogs := map[string][]string{} // lost node → the dialogs OnLostDialogs was given, by either survivor
	onLost := func(_ context.Context, node string) error {
		toldMu.Lock()
		told[node]++
		toldMu.Unlock()
		return nil
	}
	onDialogs := func(node string, dialogs []json.RawMessage) {
		toldMu.Lock()
		defer toldMu.Unlock()
		for _, d := range dialogs {
			var v struct {
				Leg string `json:"leg"`
			}
			if err := json.Unmarshal(d, &v); err != nil {
				t.Errorf("a dialog as stored does not parse: %s: %v", d, err)
			}
			toldDialogs[node] = append(toldDialogs[node], v.Leg)
		}
	}
	wa := nodeWatchWith(t, eventlog.NodeWatchOptions{Log: a, Registerer: regA, OnLostDialogs: onDialogs}, onLost)
	wc := nodeWatchWith(t, eventlog.NodeWatchOptions{Log: c, Registerer: regC, OnLostDialogs: onDialogs}, onLost)
	storeA, err := eventlog.StartDialogStore(eventlog.DialogStoreOptions{Pool: pool, Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer storeA.Close()
	_ = storeA.Leg("a-live", json.RawMessage(`{"leg":"a-live carrier"}`))
	dialogRows := func(where string, args ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM call_dialogs WHERE `+where, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	closedBy := func(reg *prometheus.Registry, lost string) float64 {
		return metricValue(t, reg, "switchboard_calls_closed_node_lost_total", lost)
	}
	emit(t, a.NodeSink(), "a-live", callevent.EventStarted)
	emit(t, a, "outside", callevent.EventStarted) // no node: an outside phone system's call
	for round := range 5 {
		bNode := fmt.Sprintf("b%d", round)
		b := nodeLog(t, pool, bNode)
		open := []string{fmt.Sprintf("b%d-ringing", round), fmt.Sprintf("b%d-talking", round), fmt.Sprintf("b%d-queued", round)}
		done := fmt.Sprintf("b%d-done", round)
		// B's answered legs, stored before its calls' events so that no sweep comes first:
		// the talking call's carrier leg, its first agent's, then (a transfer) its second
		// agent's; and the leg of the call that ended.
		store, err := eventlog.StartDialogStore(eventlog.DialogStoreOptions{Pool: pool, Node: bNode})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range [][2]string{{open[1], "carrier"}, {open[1], "agent1"}, {open[1], "agent2"}, {done, "carrier"}} {
			_ = store.Leg(l[0], json.RawMessage(fmt.Sprintf(`{"leg":%q}`, l[0]+" "+l[1])))
		}
		store.Close() // writes what is queued
		if n := dialogRows("node = $1", bNode); n != 4 {
			t.Fatalf("round %d: %d of B's 4 legs stored after its store closed", round, n)
		}
		emit(t, b.NodeSink(), open[0], callevent.EventStarted)
		emit(t, b.NodeSink(), open[1], callevent.EventStarted, callevent.EventQueued, callevent.EventAnswered)
		emit(t, b.NodeSink(), open[2], callevent.EventStarted, callevent.EventQueued)
		emit(t, b.NodeSink(), done, callevent.EventStarted, callevent.EventEnded)
		// B stops beating: a and c beat on and race to sweep it.
		deadline := time.Now().Add(10 * time.Second)
		for closedBy(regA, bNode)+closedBy(regC, bNode) < 3 && time.Now().Before(deadline) {
			var wg sync.WaitGroup
			for _, w := range []*eventlog.NodeWatch{wa, wc, wa, wc} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := w.Tick(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			time.Sleep(20 * time.Millisecond) // the beat's age is the database's clock
		}
		// A few more racing ticks: nobody closes anything again.
		for range 3 {
			for _, w := range []*eventlog.NodeWatch{wa, wc} {
				if err := w.Tick(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := closedBy(regA, bNode) + closedBy(regC, bNode); got != 3 {
			t.Fatalf("round %d: survivors counted %v calls of %s closed, want 3", round, got, bNode)
		}
		// Each open call: one call.ended past the gap; the two no agent took are first
		// abandoned (where they were), so that the ticketing rules give them a ticket (TC-5).
		for i, w := range []struct {
			last  int64
			where string
		}{{1, "ivr"}, {3, ""}, {2, "queue"}} {
			want := []ended{{seq: w.last + eventlog.NodeLostSeqGap, outcome: "failed", cause: "node_lost"}}
			if got := endedOf(t, pool, open[i]); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("round %d: %s ended %v, want %v", round, open[i], got, want)
			}
			var where string
			if err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg((seq - $2)::text || ':' || (body->>'where'), ','), '')
				FROM call_events WHERE call_id = $1 AND type = 'call.abandoned'`, open[i], w.last+eventlog.NodeLostSeqGap).Scan(&where); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]string{true: "-1:" + w.where, false: ""}[w.where != ""]; where != want {
				t.Errorf("round %d: %s's call.abandoned (seq relative to its call.ended:where) %q, want %q", round, open[i], where, want)
			}
		}
		if got := endedOf(t, pool, done); len(got) != 1 || got[0].cause != "bye" {
			t.Errorf("round %d: the ended call got %v, want its own call.ended only", round, got)
		}
		// The sweeper may be a watch's own goroutine, still between its count and its hooks:
		// await them (bounded), then check that each came once.
		var n int
		waitUntil := time.Now().Add(10 * time.Second)
		for {
			toldMu.Lock()
			n = told[bNode]
			nd := len(toldDialogs[bNode])
			toldMu.Unlock()
			if (n >= 1 && nd >= 3) || time.Now().After(waitUntil) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // a second (wrong) telling would come now
		toldMu.Lock()
		n = told[bNode]
		toldMu.Unlock()
		if n != 1 {
			t.Errorf("round %d: OnLost told of %s %d times, want once (by the one survivor that swept it)", round, bNode, n)
		}
		toldMu.Lock()
		got := fmt.Sprint(toldDialogs[bNode])
		toldMu.Unlock()
		if want := fmt.Sprint([]string{open[1] + " carrier", open[1] + " agent1", open[1] + " agent2"}); got != want {
			t.Errorf("round %d: OnLostDialogs was given %s for %s, want %s once (the open calls' legs, in order, by the one survivor)", round, got, bNode, want)
		}
	}
	storeA.Close() // its one leg is stored
	// An hour later (saved_at moved back): the prune (the watch's, twice a minute) deletes the
	// legs of the ended calls — the lost nodes' too, closed now — and keeps the live call's.
	if _, err := pool.Exec(context.Background(), `UPDATE call_dialogs SET saved_at = saved_at - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if err := wa.PruneDialogs(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, live := dialogRows("true"), dialogRows("call_id = 'a-live'"); n != 1 || live != 1 {
		t.Errorf("after the prune: %d stored legs (%d of the live call), want only the live call's", n, live)
	}
	for _, call := range []string{"a-live", "outside"} {
		if got := endedOf(t, pool, call); len(got) != 0 {
			t.Errorf("%s was closed (%v): its node is alive / it belongs to no node", call, got)
		}
	}
	if live := gauge(t, regA, "switchboard_cluster_nodes_live"); live != 2 {
		t.Errorf("live nodes %v, want 2 (a and c)", live)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// TestLostNodeComesBackNoDoubleEndNothingLost: node B is cut off from the database while it
// still takes events (they spool), and counted lost; node A closes its call. When B comes
// back, its spooled event reaches the table (the node_lost call.ended left its seq free),
// and its own crash recovery does not close the call a second time.
func TestLostNodeComesBackNoDoubleEndNothingLost(t *testing.T) {
	proxy, bpool, direct := pgtest.ProxiedPool(t)
	pool, err := pgxpool.New(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	a := nodeLog(t, pool, "a")
	wa := nodeWatch(t, a, nil)
	b := nodeLog(t, bpool, "b")
	call := "b-call-" + uuid.NewString()
	emit(t, b.NodeSink(), call, callevent.EventStarted, callevent.EventQueued)

	proxy.Down()
	held := ev(call, 3)
	held.Type = callevent.EventHeld
	if err := b.NodeSink().Emit(context.Background(), held); err != nil {
		t.Fatal(err) // acknowledged: in B's spool
	}
	if b.Spooled() != 1 {
		t.Fatalf("B's spool holds %d events, want 1", b.Spooled())
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(endedOf(t, pool, call)) == 0 && time.Now().Before(deadline) {
		if err := wa.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := endedOf(t, pool, call); len(got) != 1 || got[0].cause != callevent.CauseNodeLost {
		t.Fatalf("after B was lost: %v, want one node_lost call.ended", got)
	}

	// B comes back: its spool replays, its restart recovery looks before it closes.
	proxy.Up()
	select {
	case <-b.Drained():
	case <-time.After(10 * time.Second):
		t.Fatal("B's spool did not drain")
	}
	var heldStored int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM call_events WHERE id = $1 AND seq = 3`, held.ID).Scan(&heldStored); err != nil {
		t.Fatal(err)
	}
	if heldStored != 1 {
		t.Error("B's spooled call.held was lost")
	}
	j, _, err := calljournal.Open(calljournal.Options{Path: filepath.Join(t.TempDir(), "calls.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	stillOpen := calljournal.SkipEnded(context.Background(), []calljournal.OpenCall{{CallID: call, LastSeq: 3}}, b.CallState, j, nil)
	if len(stillOpen) != 0 {
		t.Errorf("B's restart would close %v again", stillOpen)
	}
	calljournal.CloseCrashed(context.Background(), stillOpen, b, nil, nil)
	if got := endedOf(t, pool, call); len(got) != 1 {
		t.Errorf("call.ended events after B came back: %v, want exactly one", got)
	}
}

// TestCleanStopIsNotALostNode: a node whose watch closed (a clean shutdown) is not swept; once
// it runs again and then stops beating, it is.
func TestCleanStopIsNotALostNode(t *testing.T) {
	pool := pgtest.Pool(t)
	a := nodeLog(t, pool, "a")
	wa := nodeWatch(t, a, nil)
	b := nodeLog(t, pool, "b")
	wb, err := eventlog.StartNodeWatch(eventlog.NodeWatchOptions{Log: b, Interval: 50 * time.Millisecond, LostAfter: lostAfter})
	if err != nil {
		t.Fatal(err)
	}
	emit(t, b.NodeSink(), "b-open", callevent.EventStarted) // left open on purpose
	wb.Close()
	time.Sleep(lostAfter + 100*time.Millisecond)
	if n, err := wa.Sweep(context.Background(), "b"); err != nil || n != 0 {
		t.Fatalf("sweep of a cleanly stopped node: %d calls, %v; want 0", n, err)
	}
	if got := endedOf(t, pool, "b-open"); len(got) != 0 {
		t.Fatalf("the cleanly stopped node's call was closed: %v", got)
	}
	// B starts again, beats, and then dies: now it is lost, and its call is closed.
	wb2, err := eventlog.NewNodeWatch(eventlog.NodeWatchOptions{Log: b, Interval: 50 * time.Millisecond, LostAfter: lostAfter})
	if err != nil {
		t.Fatal(err)
	}
	if err := wb2.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // a's own ticks sweep it
	for len(endedOf(t, pool, "b-open")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := endedOf(t, pool, "b-open"); len(got) != 1 || got[0].cause != callevent.CauseNodeLost {
		t.Fatalf("the restarted node stopped beating: its call ended %v, want once, node_lost", got)
	}
}

// A poison leg — a NUL a far end put in a tag (jsonb refuses it), an oversized state, no JSON —
// is refused by the DialogStore itself and counted dropped: the good legs queued with it in one
// batch are stored. Without the checks the one INSERT of the batch fails and takes them along.
func TestDialogStore_PoisonLegDoesNotDropTheBatch(t *testing.T) {
	pool := pgtest.Pool(t)
	reg := prometheus.NewRegistry()
	s, err := eventlog.StartDialogStore(eventlog.DialogStoreOptions{Pool: pool, Node: "a", Registerer: reg, Gather: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Leg("good-1", json.RawMessage(`{"call_id":"x1","local_tag":"a"}`))
	_ = s.Leg("nul", json.RawMessage(`{"call_id":"x2","remote_tag":"a\u0000b"}`))
	_ = s.Leg("big", json.RawMessage(`{"pad":"`+strings.Repeat("x", 20000)+`"}`))
	_ = s.Leg("notjson", json.RawMessage(`{"call_id":`))
	_ = s.Leg("good-2", json.RawMessage(`{"call_id":"x3","local_tag":"b"}`))
	s.Close()
	var ids string
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(call_id, ',' ORDER BY id), '') FROM call_dialogs`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	if ids != "good-1,good-2" {
		t.Errorf("stored legs of %q, want good-1,good-2", ids)
	}
	if v := metricValue(t, reg, "switchboard_cluster_dialogs_dropped_total"); v != 3 {
		t.Errorf("switchboard_cluster_dialogs_dropped_total = %v, want 3", v)
	}
}

// TestNodeSinkBatchStampsTheNode: the node sink takes a call's events as one batch (the SIP
// emitter's), stores them in order with call.started stamped with the node, as Emit does, and
// leaves the caller's slice as it was.
func TestNodeSinkBatchStampsTheNode(t *testing.T) {
	pool := pgtest.Pool(t)
	l := nodeLog(t, pool, "nb")
	sink, ok := l.NodeSink().(interface {
		EmitBatch(context.Context, []callevent.Event) error
	})
	if !ok {
		t.Fatal("the node sink takes no batch")
	}
	call := uuid.NewString()
	evs := []callevent.Event{ev(call, 1), ev(call, 2)}
	evs[1].Type, evs[1].AgentID = callevent.EventAnswered, 7
	if err := sink.EmitBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if evs[0].Node != "" {
		t.Errorf("the caller's call.started was changed: node %q", evs[0].Node)
	}
	rows, err := pool.Query(context.Background(), `SELECT seq, type, coalesce(body->>'node', '') FROM call_events WHERE call_id = $1 ORDER BY seq`, call)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var seq int64
		var typ, node string
		if err := rows.Scan(&seq, &typ, &node); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %s", seq, typ, node))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"1 call.started nb", "2 call.answered "}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// A node seen lost, back and lost again while the survivor's own call.ended of its call is not
// in the table yet (spooled: the database was slow, which is when beats come late) is closed
// once: the second sweep skips the call this node closed, so that the call counts once in
// switchboard_calls_closed_node_lost_total and its far ends get one BYE. Before, CI saw 3
// closes for 2 calls.
func TestSurvivorDoesNotCloseItsSpooledCloseAgain(t *testing.T) {
	pool := pgtest.Pool(t)
	reg := prometheus.NewRegistry()
	a, b := nodeLog(t, pool, "a"), nodeLog(t, pool, "b")
	wa, err := eventlog.NewNodeWatch(eventlog.NodeWatchOptions{Log: a, Registerer: reg, Interval: 50 * time.Millisecond, LostAfter: lostAfter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wa.Close)
	call := "b-call-" + uuid.NewString()
	emit(t, b.NodeSink(), call, callevent.EventStarted, callevent.EventQueued)
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	// The call began while B beat; B's last beat is 5 s old.
	exec(`UPDATE call_events SET at = at - interval '10 seconds' WHERE call_id = $1`, call)
	exec(`UPDATE nodes SET heartbeat_at = now() - interval '5 seconds' WHERE name = 'b'`)
	if n, err := wa.Sweep(ctx, "b"); err != nil || n != 1 {
		t.Fatalf("first sweep: %d calls, %v; want 1", n, err)
	}
	// As if A's events were still in its spool, and B beat once more and stopped again.
	exec(`DELETE FROM call_events WHERE call_id = $1 AND type IN ('call.ended', 'call.abandoned')`, call)
	exec(`UPDATE nodes SET swept_at = now() - interval '10 seconds', heartbeat_at = now() - interval '5 seconds' WHERE name = 'b'`)
	if n, err := wa.Sweep(ctx, "b"); err != nil || n != 0 {
		t.Errorf("second sweep: %d calls, %v; want 0 (closed by the first)", n, err)
	}
	if v := metricValue(t, reg, "switchboard_calls_closed_node_lost_total", "b"); v != 1 {
		t.Errorf("switchboard_calls_closed_node_lost_total{lost_node=b} = %v, want 1", v)
	}
}
