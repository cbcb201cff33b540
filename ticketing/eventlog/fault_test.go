package eventlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// Fault tests of the event log: poison events (issue 13 item 2), a full disk under the spool
// and a large spool drained at runtime (item 3).

// testWriteTimeout bounds a commit in these tests. A database that is down refuses at once
// (the proxy closes its listener), so the bound only matters for a slow commit: on a loaded
// machine a commit past 300 ms sent events that tests expect in the table to the spool
// (TestCallStateSeesStoredAndSpooledEvents saw "5 events spooled, want 3").
const testWriteTimeout = 10 * time.Second

func openWith(t *testing.T, opts eventlog.Options) *eventlog.Log {
	t.Helper()
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = testWriteTimeout
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = 50 * time.Millisecond
	}
	l, err := eventlog.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// poison is an event PostgreSQL refuses: a NUL in caller_name, which encoding/json writes as
// \u0000 and jsonb refuses (SQLSTATE 22P05).
func poison(call string, seq int64) callevent.Event {
	e := ev(call, seq)
	e.CallerName = "Eve\x00Mallory"
	return e
}

type deadRow struct {
	eventID, callID, sqlstate, node, stage, raw string
	seq                                         int64
}

func deadRows(t *testing.T, pool *pgxpool.Pool) []deadRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id, call_id, seq, sqlstate, node, stage, convert_from(raw, 'UTF8')
		FROM call_events_dead ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []deadRow
	for rows.Next() {
		var d deadRow
		if err := rows.Scan(&d.eventID, &d.callID, &d.seq, &d.sqlstate, &d.node, &d.stage, &d.raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// metricValue is the value of the counter or gauge name in reg: its first series, or with
// label the series whose first label has that value (0 when there is none yet).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(label) > 0 && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label[0]) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	if len(label) > 0 {
		return 0 // a labelled series appears with its first use
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// awaitDrained waits for the spool to be empty (Drained), failing t after within.
func awaitDrained(t *testing.T, l *eventlog.Log, within time.Duration) {
	t.Helper()
	select {
	case <-l.Drained():
	case <-time.After(within):
		t.Fatalf("spool not drained within %v: %d events left", within, l.Spooled())
	}
	if n := l.Spooled(); n != 0 {
		t.Fatalf("Drained fired with %d events in the spool", n)
	}
}

func wantSeqs(t *testing.T, got map[string][]int64, call string, want ...int64) {
	t.Helper()
	if fmt.Sprint(got[call]) != fmt.Sprint(want) {
		t.Errorf("call %s: stored seqs %v, want %v", call, got[call], want)
	}
}

// A poison event emitted among good ones in one batch is set aside in call_events_dead with
// its SQLSTATE; the good ones are stored, in order; later events still go straight to the
// table. Before, the whole batch went to the spool and every later event of the node behind it.
func TestPoisonEventInBatchIsSetAsideAndTheRestStored(t *testing.T) {
	pool := pgtest.Pool(t)
	reg := prometheus.NewRegistry()
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: filepath.Join(t.TempDir(), "spool"), Node: "node-a", Registerer: reg})
	defer l.Close()
	ctx := context.Background()
	badCall := ev("Q", 2)
	badCall.CallID = "Q\x00" // text refuses a NUL too (22021)
	batch := []callevent.Event{ev("P", 1), ev("P", 2), poison("P", 3), ev("P", 4), ev("Q", 1), badCall, ev("Q", 3)}
	if err := l.EmitBatch(ctx, batch); err != nil {
		t.Fatalf("EmitBatch with a poison event: %v", err)
	}
	got := storedSeqs(t, pool)
	wantSeqs(t, got, "P", 1, 2, 4)
	wantSeqs(t, got, "Q", 1, 3)
	if l.Spooled() != 0 {
		t.Errorf("%d events spooled, want 0", l.Spooled())
	}
	dead := deadRows(t, pool)
	if len(dead) != 2 {
		t.Fatalf("dead letters %+v, want 2", dead)
	}
	if d := dead[0]; d.eventID != batch[2].ID || d.callID != "P" || d.seq != 3 || d.sqlstate != "22P05" || d.node != "node-a" ||
		d.stage != "flush" || !strings.Contains(d.raw, `Eve\u0000Mallory`) {
		t.Errorf("dead letter %+v", d)
	}
	if d := dead[1]; d.eventID != badCall.ID || d.callID != "Q\uFFFD" || !strings.HasPrefix(d.sqlstate, "22") {
		t.Errorf("dead letter %+v", d)
	}
	if v := metricValue(t, reg, "switchboard_ticketing_events_dead_total"); v != 2 {
		t.Errorf("switchboard_ticketing_events_dead_total = %v, want 2", v)
	}
	// Later events flow straight into the table, a poison alone included.
	if err := l.Emit(ctx, poison("P", 6)); err != nil {
		t.Fatal(err)
	}
	if err := l.Emit(ctx, ev("P", 5)); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, storedSeqs(t, pool), "P", 1, 2, 4, 5)
	if n := len(deadRows(t, pool)); n != 3 || l.Spooled() != 0 {
		t.Errorf("%d dead letters, %d spooled; want 3 and 0", n, l.Spooled())
	}
	// The rules engine applies the stored events; the call is not stuck behind the missing seq.
	applyAll(t, pool)
}

// A poison event that went to the spool during an outage is set aside when the spool is
// replayed; the events before and after it are stored in order and the spool drains. Before,
// the replay failed on it every second and the spool never drained.
func TestPoisonEventInSpoolIsSetAsideAtReplay(t *testing.T) {
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	direct, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	reg := prometheus.NewRegistry()
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: filepath.Join(t.TempDir(), "spool"), Registerer: reg})
	defer l.Close()
	ctx := context.Background()
	p.Down()
	evs := []callevent.Event{ev("R", 1), poison("R", 2), ev("R", 3), ev("S", 1), poison("S", 2), ev("S", 3)}
	for _, e := range evs {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := l.Emit(ectx, e)
		cancel()
		if err != nil {
			t.Fatalf("Emit during the outage: %v", err)
		}
	}
	if l.Spooled() != len(evs) {
		t.Fatalf("%d spooled, want %d", l.Spooled(), len(evs))
	}
	if v := metricValue(t, reg, "switchboard_ticketing_spool_events"); v != float64(len(evs)) {
		t.Errorf("switchboard_ticketing_spool_events = %v, want %d", v, len(evs))
	}
	if v := metricValue(t, reg, "switchboard_ticketing_spool_bytes"); v <= 0 {
		t.Errorf("switchboard_ticketing_spool_bytes = %v, want > 0", v)
	}
	p.Up()
	awaitDrained(t, l, 30*time.Second)
	got := storedSeqs(t, direct)
	wantSeqs(t, got, "R", 1, 3)
	wantSeqs(t, got, "S", 1, 3)
	dead := deadRows(t, direct)
	if len(dead) != 2 || dead[0].stage != "replay" || dead[0].sqlstate != "22P05" || dead[0].eventID != evs[1].ID || dead[1].eventID != evs[4].ID {
		t.Errorf("dead letters %+v, want R/2 and S/2 from the replay", dead)
	}
	if v := metricValue(t, reg, "switchboard_ticketing_spool_bytes"); v != 0 {
		t.Errorf("switchboard_ticketing_spool_bytes = %v after the drain, want 0", v)
	}
	// Later events go straight to the table again.
	if err := l.Emit(ctx, ev("R", 4)); err != nil {
		t.Fatal(err)
	}
	if l.Spooled() != 0 {
		t.Errorf("%d spooled after the drain, want 0", l.Spooled())
	}
	wantSeqs(t, storedSeqs(t, direct), "R", 1, 3, 4)
}

// When call_events_dead cannot be written, a refused event is kept in the dead-letter file
// next to the spool (fsync'd, the log goes on), and moved into the table once it can be.
func TestDeadLetterFileWhenTableUnavailableMovesIntoTable(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE call_events_dead RENAME TO call_events_dead_away`); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(t.TempDir(), "spool")
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: spool})
	defer l.Close()
	bad := poison("T", 2)
	if err := l.EmitBatch(ctx, []callevent.Event{ev("T", 1), bad, ev("T", 3)}); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, storedSeqs(t, pool), "T", 1, 3)
	b, err := os.ReadFile(spool + ".dead")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 1 || !strings.Contains(string(b), bad.ID) {
		t.Fatalf("dead-letter file %q, want one line for %s", b, bad.ID)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE call_events_dead_away RENAME TO call_events_dead`); err != nil {
		t.Fatal(err)
	}
	if err := l.Emit(ctx, ev("T", 4)); err != nil {
		t.Fatal(err)
	}
	dead := deadRows(t, pool)
	if len(dead) != 1 || dead[0].eventID != bad.ID || dead[0].stage != "file" || dead[0].sqlstate != "22P05" || !strings.Contains(dead[0].raw, `\u0000`) {
		t.Errorf("dead letters %+v, want %s moved from the file", dead, bad.ID)
	}
	if st, err := os.Stat(spool + ".dead"); err != nil || st.Size() != 0 {
		t.Errorf("dead-letter file not emptied after the move: %v %v", st, err)
	}
}

// A restart resumes the replay where the last one stopped (the offset file next to the
// spool), instead of inserting the whole spool again.
func TestReplayResumesFromPersistedOffset(t *testing.T) {
	pool := pgtest.Pool(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	var lines []string
	for s := int64(1); s <= 10; s++ {
		b, err := json.Marshal(ev("O", s))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b)+"\n")
	}
	if err := os.WriteFile(spool, []byte(strings.Join(lines, "")), 0o640); err != nil {
		t.Fatal(err)
	}
	off := len(strings.Join(lines[:5], ""))
	if err := os.WriteFile(spool+".offset", fmt.Appendf(nil, "%020d\n", off), 0o640); err != nil {
		t.Fatal(err)
	}
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: spool})
	defer l.Close()
	awaitDrained(t, l, 30*time.Second)
	wantSeqs(t, storedSeqs(t, pool), "O", 6, 7, 8, 9, 10)
	if st, err := os.Stat(spool); err != nil || st.Size() != 0 {
		t.Errorf("spool not emptied after the replay: %v %v", st, err)
	}
}

// A torn last line (a write a crash interrupted, never acknowledged) is cut off at start, and
// the events appended after it are replayed, none glued to it.
func TestTornSpoolTailIsCutAtOpen(t *testing.T) {
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	direct, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	spool := filepath.Join(t.TempDir(), "spool")
	b, _ := json.Marshal(ev("U", 1))
	torn, _ := json.Marshal(ev("U", 2))
	if err := os.WriteFile(spool, append(append(b, '\n'), torn[:len(torn)/2]...), 0o640); err != nil {
		t.Fatal(err)
	}
	p.Down()
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: spool})
	defer l.Close()
	e3 := ev("U", 3)
	if err := l.Emit(context.Background(), e3); err != nil {
		t.Fatal(err)
	}
	p.Up()
	awaitDrained(t, l, 30*time.Second)
	wantSeqs(t, storedSeqs(t, direct), "U", 1, 3)
	if d := deadRows(t, direct); len(d) != 0 {
		t.Errorf("dead letters %+v, want none", d)
	}
}

// requireRoot skips a test that needs root (mount), or fails it under SWITCHBOARD_REQUIRE_PEERS.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
		t.Fatalf("%s needs root (to mount a tmpfs) and SWITCHBOARD_REQUIRE_PEERS is set: run make test as root", why)
	}
	t.Skipf("%s needs root to mount a tmpfs", why)
}

// Disk full under the spool, with the database away: appends fail with ENOSPC (some of them
// short, on a page boundary) and their emitters get the error; once space is freed, events
// are acknowledged again; when the database returns, every acknowledged event is in the table
// exactly once, nothing torn set aside. Before, the torn bytes of the failed write stayed, the
// next acknowledged event was appended to the torn line and skipped at replay: lost.
func TestSpoolDiskFullLosesNoAcknowledgedEvent(t *testing.T) {
	requireRoot(t, "the full-disk test")
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	direct, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	spool := filepath.Join(dir, "spool")
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: spool})
	defer l.Close()

	// Fill the disk, then free three pages.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for i := 0; i < 1024; i++ {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	st, _ := f.Stat()
	if err := f.Truncate(st.Size() - 3*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	p.Down()
	ctx := context.Background()
	acked := map[string]bool{}
	emitted := 0
	batchOf := func(i int) []callevent.Event {
		var b []callevent.Event
		for c := 0; c < 5; c++ {
			b = append(b, ev(fmt.Sprintf("full-%d", c), int64(i+1)))
		}
		return b
	}
	emit := func(i int) error {
		b := batchOf(i)
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := l.EmitBatch(ectx, b)
		emitted += len(b)
		if err == nil {
			for _, e := range b {
				acked[e.ID] = true
			}
		}
		return err
	}
	i, failures := 0, 0
	for ; i < 200 && failures < 3; i++ {
		if err := emit(i); err != nil {
			if !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("emit %d: %v, want ENOSPC", i, err)
			}
			failures++
		}
	}
	if failures < 3 || len(acked) == 0 {
		t.Fatalf("after %d batches: %d acknowledged, %d failures; want the disk to fill", i, len(acked), failures)
	}
	before := len(acked)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 10; j++ {
		if err := emit(i + j); err != nil {
			t.Fatalf("emit after freeing space: %v", err)
		}
	}
	if len(acked) != before+50 {
		t.Fatalf("%d acknowledged after freeing space, want %d", len(acked), before+50)
	}
	p.Up()
	awaitDrained(t, l, 30*time.Second)

	rows, err := direct.Query(ctx, `SELECT id::text, count(*) FROM call_events GROUP BY id`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	rows.Close()
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times, want once", id, stored[id])
		}
	}
	for id := range stored {
		if !acked[id] {
			t.Errorf("event %s stored but never acknowledged (a failed write that stayed)", id)
		}
	}
	if d := deadRows(t, direct); len(d) != 0 {
		t.Errorf("%d dead letters (torn lines?), want none: %+v", len(d), d)
	}
	t.Logf("%d events emitted, %d acknowledged and stored, %d failed batches", emitted, len(acked), failures)
}

// A large spool is drained while the gateway runs, in batches, while new events are accepted
// and acknowledged meanwhile (appended behind the spool), and every call's events are stored
// in seq order. The spool is the one an outage left: the log starts with the database away,
// and drains it when the database returns. Before, the replay loaded the whole spool and ran
// on the writer goroutine, so no emitter was answered until it ended.
//
// make test drains 30,000 events; make bench (scripts/bench.sh) sets
// SWITCHBOARD_SPOOL_TEST_EVENTS=300000, too slow under the race detector for make test.
func TestSpoolDrainsAtRuntimeWhileAcceptingEvents(t *testing.T) {
	const calls = 1000
	total := 30_000
	if v := os.Getenv("SWITCHBOARD_SPOOL_TEST_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < calls || n%calls != 0 {
			t.Fatalf("SWITCHBOARD_SPOOL_TEST_EVENTS=%q: want a multiple of %d", v, calls)
		}
		total = n
	}
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	direct, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	ctx := context.Background()
	// The spool lines, written the way the log writes them (one event's JSON a line), without
	// paying for 300,000 json.Marshal calls under the race detector.
	spool := filepath.Join(t.TempDir(), "spool")
	at := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	buf := make([]byte, 0, total*130)
	for i := 0; i < total; i++ {
		buf = fmt.Appendf(buf, `{"id":%q,"call_id":"big-%d","seq":%d,"type":"call.held","at":%q}`+"\n", uuidFor(i), i%calls, i/calls+1, at)
	}
	if err := os.WriteFile(spool, buf, 0o640); err != nil {
		t.Fatal(err)
	}
	p.Down()
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: spool, WriteTimeout: time.Second})
	defer l.Close()
	if l.Spooled() != total {
		t.Fatalf("%d spooled, want %d", l.Spooled(), total)
	}
	// While the database is away and then while the spool drains, calls big-0..big-9 go on
	// emitting one event at a time.
	var ackedDuringDrain, live, lowest atomic.Int64
	lowest.Store(int64(total))
	var restored atomic.Bool
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := 0; c < 10; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for s := int64(total/calls + 1); s <= int64(total/calls+1000); s++ {
				select {
				case <-stop:
					return
				default:
				}
				e := callevent.Event{ID: uuidFor(total + c*10000 + int(s)), CallID: fmt.Sprintf("big-%d", c), Seq: s,
					Type: callevent.EventHeld, At: time.Now().UTC().Truncate(time.Microsecond)}
				ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := l.Emit(ectx, e)
				cancel()
				if err != nil {
					t.Errorf("live emit: %v", err)
					return
				}
				live.Add(1)
				if n := l.Spooled(); restored.Load() && n > 0 {
					ackedDuringDrain.Add(1)
					for {
						m := lowest.Load()
						if int64(n) >= m || lowest.CompareAndSwap(m, int64(n)) {
							break
						}
					}
				}
			}
		}(c)
	}
	time.Sleep(100 * time.Millisecond) // a few live events into the spool while the database is away
	start := time.Now()
	restored.Store(true)
	p.Up()
	awaitDrained(t, l, 3*time.Minute)
	close(stop)
	wg.Wait()
	t.Logf("%d events drained in %v; %d live events acknowledged, %d of them while the spool was draining (down to %d events)",
		total, time.Since(start), live.Load(), ackedDuringDrain.Load(), lowest.Load())
	if ackedDuringDrain.Load() == 0 {
		t.Error("no event was acknowledged while the spool drained")
	}
	// The spool shrinks batch by batch as the replay moves its offset on, rather than all at
	// once at the end of one pass over the whole file.
	if lowest.Load() > int64(total-2*calls) {
		t.Errorf("while draining, the spool never held fewer than %d of its %d events: not drained batch by batch", lowest.Load(), total)
	}
	if n := count(t, direct); n != total+int(live.Load()) {
		t.Errorf("%d rows, want %d", n, total+int(live.Load()))
	}
	for call, seqs := range storedSeqs(t, direct) {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("call %s stored out of order at %d: %v", call, i, seqs[max(0, i-3):min(len(seqs), i+3)])
			}
		}
	}
}

// uuidFor is a deterministic UUID for the i-th event of a test (cheaper than random ones).
func uuidFor(i int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
}

// The writer and the replayer race while the database comes and goes every few tens of
// milliseconds under steady emitters: every acknowledged event is stored exactly once and each
// call's events in seq order, and Close returns (no deadlock between the two goroutines).
func TestFlappingDatabaseLosesNothingAndKeepsOrder(t *testing.T) {
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	direct, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	reg := prometheus.NewRegistry()
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: filepath.Join(t.TempDir(), "spool"), Registerer: reg,
		WriteTimeout: 200 * time.Millisecond, RetryInterval: 10 * time.Millisecond, MaxBatch: 50})
	const calls, perCall = 8, 150
	var wg sync.WaitGroup
	for c := 0; c < calls; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for s := int64(1); s <= perCall; s++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := l.Emit(ctx, ev(fmt.Sprintf("flap-%d", c), s))
				cancel()
				if err != nil {
					t.Errorf("call %d seq %d: %v", c, s, err)
					return
				}
			}
		}(c)
	}
	flapping := make(chan struct{})
	go func() {
		defer close(flapping)
		for i := 0; i < 25; i++ {
			time.Sleep(60 * time.Millisecond)
			p.Down()
			time.Sleep(15 * time.Millisecond)
			p.Up()
		}
	}()
	wg.Wait()
	<-flapping
	awaitDrained(t, l, time.Minute)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	spooled := metricValue(t, reg, "switchboard_ticketing_events_spooled_total")
	if spooled == 0 {
		t.Error("nothing went through the spool: the database never looked away")
	}
	t.Logf("%v of %d events went through the spool", spooled, calls*perCall)
	got := storedSeqs(t, direct)
	for c := 0; c < calls; c++ {
		seqs := got[fmt.Sprintf("flap-%d", c)]
		if len(seqs) != perCall {
			t.Errorf("call %d: %d events stored, want %d", c, len(seqs), perCall)
			continue
		}
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Errorf("call %d stored out of order: %v", c, seqs)
				break
			}
		}
	}
}
