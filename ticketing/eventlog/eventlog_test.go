package eventlog_test

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

func TestMain(m *testing.M) {
	if os.Getenv("EVENTLOG_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m,
		// pgxpool keeps a background health checker until the pool is closed by t.Cleanup,
		// which runs after the per-test leak check would.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).triggerHealthCheck.func1"),
	)
}

func ev(call string, seq int64) callevent.Event {
	return callevent.Event{ID: uuid.NewString(), CallID: call, Seq: seq, Type: callevent.EventStarted,
		At: time.Now().UTC().Truncate(time.Microsecond), Direction: "inbound", From: "+15551230000", To: "+15550100"}
}

func open(t *testing.T, pool *pgxpool.Pool, spool string) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(context.Background(), eventlog.Options{
		Pool: pool, SpoolPath: spool, WriteTimeout: testWriteTimeout, RetryInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// storedIDs returns the ids in call_events in pos (insertion) order, per call.
func storedSeqs(t *testing.T, pool *pgxpool.Pool) map[string][]int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT call_id, seq FROM call_events ORDER BY pos`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var c string
		var s int64
		if err := rows.Scan(&c, &s); err != nil {
			t.Fatal(err)
		}
		out[c] = append(out[c], s)
	}
	return out
}

func count(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM call_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Emitted events are in the table when Emit returns; a duplicate id is a no-op.
func TestEmitIsDurableAndIdempotent(t *testing.T) {
	pool := pgtest.Pool(t)
	l := open(t, pool, filepath.Join(t.TempDir(), "spool"))
	defer l.Close()
	ctx := context.Background()
	e := ev("call-1", 1)
	if err := l.Emit(ctx, e); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool); n != 1 {
		t.Fatalf("%d rows after one Emit, want 1", n)
	}
	if err := l.Emit(ctx, e); err != nil {
		t.Fatal(err)
	}
	dup := ev("call-1", 1) // new id, same call and seq
	if err := l.Emit(ctx, dup); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool); n != 1 {
		t.Fatalf("%d rows after duplicates, want 1", n)
	}
}

// Many concurrent emitters are committed in groups, all of them durable.
func TestConcurrentEmitGroupCommit(t *testing.T) {
	pool := pgtest.Pool(t)
	l := open(t, pool, filepath.Join(t.TempDir(), "spool"))
	defer l.Close()
	var wg sync.WaitGroup
	const calls, per = 50, 6
	errs := make(chan error, calls*per)
	for c := 0; c < calls; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for s := 1; s <= per; s++ {
				if err := l.Emit(context.Background(), ev(fmt.Sprintf("c%d", c), int64(s))); err != nil {
					errs <- err
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := count(t, pool); n != calls*per {
		t.Fatalf("%d rows, want %d", n, calls*per)
	}
}

// Outage: with the database gone, Emit still returns (events spooled and fsync'd); when it
// comes back, every event is stored, in order, with no duplicates.
func TestOutageSpoolsThenReplaysInOrder(t *testing.T) {
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	direct, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	l := open(t, pool, filepath.Join(t.TempDir(), "spool"))
	defer l.Close()
	ctx := context.Background()

	for s := int64(1); s <= 3; s++ {
		if err := l.Emit(ctx, ev("A", s)); err != nil {
			t.Fatal(err)
		}
	}
	p.Down()
	for s := int64(4); s <= 10; s++ {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := l.Emit(ectx, ev("A", s))
		cancel()
		if err != nil {
			t.Fatalf("Emit during the outage: %v", err)
		}
	}
	if l.Spooled() == 0 {
		t.Fatal("nothing spooled during the outage")
	}
	if n := count(t, direct); n != 3 {
		t.Fatalf("%d rows during the outage, want 3", n)
	}
	p.Up()
	// After the database returns, new events still queue behind the spool.
	if err := l.Emit(ctx, ev("A", 11)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for l.Spooled() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if l.Spooled() != 0 {
		t.Fatalf("spool not drained after the database returned: %d left", l.Spooled())
	}
	got := storedSeqs(t, direct)["A"]
	if len(got) != 11 {
		t.Fatalf("stored seqs %v, want 1..11", got)
	}
	for i, s := range got {
		if s != int64(i+1) {
			t.Fatalf("stored out of order: %v", got)
		}
	}
	// Applied, all of them, once.
	applyAll(t, direct)
	var applied, lastSeq int
	if err := direct.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM call_events e WHERE error IS NULL AND NOT EXISTS (SELECT 1 FROM call_events_pending p WHERE p.pos = e.pos)),
		(SELECT last_seq FROM calls WHERE id = 'A')`).Scan(&applied, &lastSeq); err != nil {
		t.Fatal(err)
	}
	if applied != 11 || lastSeq != 11 {
		t.Errorf("applied %d events, call at seq %d; want 11 and 11", applied, lastSeq)
	}
}

// Crash: a child process emits events and prints each acknowledged id; it is killed with
// SIGKILL mid-stream, with the database away so that part sits in the spool. A new Log on the
// same spool stores every acknowledged event exactly once.
func TestCrashAfterAckLosesNothing(t *testing.T) {
	dbURL := pgtest.URL(t)
	p, _ := pgtest.ProxiedPoolTo(t, dbURL)
	spool := filepath.Join(t.TempDir(), "spool")
	u, _ := url.Parse(dbURL)
	u.Host = p.Addr()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EVENTLOG_CRASH_CHILD=1", "CHILD_DB="+u.String(), "CHILD_SPOOL="+spool)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		acked[strings.TrimSpace(sc.Text())] = true
		if len(acked) == 200 {
			p.Down() // the rest goes to the spool
		}
		if len(acked) == 400 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("child acknowledged only %d events", len(acked))
	}
	p.Up()

	direct, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	l := open(t, direct, spool)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rows, err := direct.Query(context.Background(), `SELECT id::text FROM call_events`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id]++
	}
	rows.Close()
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times", id, stored[id])
		}
	}
	// The rules engine applies every stored event exactly once, in seq order per call.
	applyAll(t, direct)
	var unapplied int
	if err := direct.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM call_events_pending) + (SELECT count(*) FROM call_events WHERE error IS NOT NULL)`).Scan(&unapplied); err != nil {
		t.Fatal(err)
	}
	if unapplied != 0 {
		t.Errorf("%d events not applied after restart", unapplied)
	}
	var badCalls int
	if err := direct.QueryRow(context.Background(), `SELECT count(*) FROM calls c WHERE c.last_seq <> (SELECT max(seq) FROM call_events e WHERE e.call_id = c.id)`).Scan(&badCalls); err != nil {
		t.Fatal(err)
	}
	if badCalls != 0 {
		t.Errorf("%d calls did not reach their last event", badCalls)
	}
}

// applyAll runs the rules engine over everything pending, as a restarted gateway does.
func applyAll(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	store := ticketing.NewStore(pool, ticketing.StoreOptions{})
	eng, err := store.NewEngine(ticketing.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// crashChild emits events one at a time forever, printing each id once Emit returned.
func crashChild() {
	pool, err := pgxpool.New(context.Background(), os.Getenv("CHILD_DB"))
	if err != nil {
		panic(err)
	}
	l, err := eventlog.Open(context.Background(), eventlog.Options{
		Pool: pool, SpoolPath: os.Getenv("CHILD_SPOOL"), WriteTimeout: 300 * time.Millisecond, RetryInterval: time.Hour,
	})
	if err != nil {
		panic(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < 100000; i++ {
		e := ev("crash-"+strconv.Itoa(i%7), int64(i/7+1))
		if err := l.Emit(context.Background(), e); err != nil {
			fmt.Fprintln(os.Stderr, "emit:", err)
			os.Exit(1)
		}
		fmt.Fprintln(w, e.ID)
		w.Flush()
	}
}
