package eventlog_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// CallState answers what the log holds of one call — its last seq and whether it ended —
// from the table and from the spool together: a call whose call.ended still waits in the
// spool (the database came back, the replay has not run yet) counts as ended, with the
// spooled seq; another call's events, and a call id that JSON escapes, are told apart; once
// the spool drained the table alone gives the same answer.
func TestCallStateSeesStoredAndSpooledEvents(t *testing.T) {
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	// A long retry interval keeps the spooled events in the spool after the database returns.
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: filepath.Join(t.TempDir(), "spool"), RetryInterval: time.Minute})
	ctx := context.Background()
	const call = `<a&b>"x"@host` // JSON writes it \u003ca\u0026b\u003e\"x\"@host
	emit := func(e callevent.Event) {
		t.Helper()
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := l.Emit(ectx, e); err != nil {
			t.Fatal(err)
		}
	}
	state := func(id string) (int64, bool) {
		t.Helper()
		seq, ended, err := l.CallState(ctx, id)
		if err != nil {
			t.Fatalf("CallState(%q): %v", id, err)
		}
		return seq, ended
	}

	for s := int64(1); s <= 2; s++ {
		emit(ev(call, s))
	}
	if seq, ended := state(call); seq != 2 || ended {
		t.Fatalf("stored only: CallState = %d, %v; want 2, false", seq, ended)
	}
	if seq, ended := state("nobody"); seq != 0 || ended {
		t.Fatalf("unknown call: CallState = %d, %v; want 0, false", seq, ended)
	}

	p.Down()
	emit(ev(call, 3))
	end := ev(call, 4)
	end.Type, end.Outcome = callevent.EventEnded, callevent.OutcomeAnswered
	emit(end)
	emit(ev("other", 9))
	p.Up()
	if l.Spooled() != 3 {
		t.Fatalf("%d events spooled, want 3", l.Spooled())
	}
	if seq, ended := state(call); seq != 4 || !ended {
		t.Errorf("ended in the spool: CallState = %d, %v; want 4, true", seq, ended)
	}
	if seq, ended := state("other"); seq != 9 || ended {
		t.Errorf("other call in the spool: CallState = %d, %v; want 9, false", seq, ended)
	}

	// Close replays the spool; a new log on the same table answers the same from it alone.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	direct, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if n := count(t, direct); n != 5 {
		t.Fatalf("%d events stored after the replay, want 5", n)
	}
	l2 := open(t, direct, filepath.Join(t.TempDir(), "spool2"))
	defer l2.Close()
	if seq, ended, err := l2.CallState(ctx, call); err != nil || seq != 4 || !ended {
		t.Errorf("from the table: CallState = %d, %v, %v; want 4, true", seq, ended, err)
	}
}

// With the database away CallState says so rather than answer from the spool alone, which
// would miss what is stored (a crash repair would then reuse a stored seq).
func TestCallStateFailsWhileTheDatabaseIsAway(t *testing.T) {
	p, pool := pgtest.ProxiedPoolTo(t, pgtest.URL(t))
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: filepath.Join(t.TempDir(), "spool")})
	defer l.Close()
	p.Down()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := l.CallState(ctx, "A"); err == nil {
		t.Fatal("CallState with the database away: no error")
	}
	p.Up()
}

// RecordNode records a node and, at its next start, its new version, once per name.
func TestRecordNodeUpsertsTheNode(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		if err := eventlog.RecordNode(ctx, pool, "node-a", v); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var version string
	if err := pool.QueryRow(ctx, `SELECT count(*), max(version) FROM nodes WHERE name = 'node-a'`).Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	if n != 1 || version != "v2" {
		t.Errorf("nodes: %d rows, version %q; want 1 row at v2", n, version)
	}
}
