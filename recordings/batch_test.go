package recordings

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// countingDB passes every statement to the real database and counts those that write the
// recordings table.
type countingDB struct {
	DB
	writes atomic.Int64
}

func (c *countingDB) note(sql string) {
	if strings.Contains(sql, "INSERT INTO recordings") || strings.Contains(sql, "UPDATE recordings") {
		c.writes.Add(1)
	}
}

func (c *countingDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.note(sql)
	return c.DB.Exec(ctx, sql, args...)
}

func (c *countingDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.note(sql)
	return c.DB.Query(ctx, sql, args...)
}

func (c *countingDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.note(sql)
	return c.DB.QueryRow(ctx, sql, args...)
}

// flushLong waits for every row with a bound generous enough for a loaded machine.
func flushLong(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func rowStates(t *testing.T, db DB, ids []string) map[string]State {
	t.Helper()
	rows, err := db.Query(ctxTimeout(t), `SELECT id, state FROM recordings WHERE id = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]State{}
	for rows.Next() {
		var id string
		var st State
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Recordings that start together, and then finish together, have their metadata rows written
// in one statement each time (one transaction, one commit), not one per recording: the
// metadata writer gathers what changes within its window, up to MetadataBatch. The code
// before wrote 20 + 20 single-row upserts (each its own commit); with MetadataBatch 1 this
// test fails the same way.
func TestRecordingsFinishingTogetherWriteTheirRowsInOneStatement(t *testing.T) {
	const n = 20
	db := &countingDB{DB: pgtest.Pool(t)}
	// The window is far longer than the test: the batch closes on its count, never on time.
	s := newService(t, Options{DB: db, MetadataBatch: n, MetadataWindow: 30 * time.Second})
	flushLong(t, s) // the writer's first scan of the (empty) journal
	ctx := ctxTimeout(t)
	var ws []*Writer
	var ids []string
	for i := range n {
		w, err := s.Start(ctx, fmt.Sprintf("call-batch-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		ids = append(ids, w.ID())
	}
	flushLong(t, s)
	if got := db.writes.Swap(0); got != 1 {
		t.Errorf("%d recordings started: %d write statements, want 1", n, got)
	}
	for _, w := range ws {
		if _, err := w.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	flushLong(t, s)
	if got := db.writes.Swap(0); got != 1 {
		t.Errorf("%d recordings finished: %d write statements, want 1", n, got)
	}
	states := rowStates(t, db.DB, ids)
	for _, id := range ids {
		if states[id] != StateReady {
			t.Errorf("recording %s: row state %q, want ready", id, states[id])
		}
	}
}

// A crash loses no row: the journal entry exists before the row, and a metadata row the
// database never got — recordings finished while it was away, then the process gone — is
// written by the next process's scan of the journal, in batches of MetadataBatch. A crash
// after that commit but before the journal entries were removed writes nothing twice: the
// next scan finds the rows final and only removes the entries.
func TestJournaledRowsLostToACrashAreWrittenInBatchesAtStart(t *testing.T) {
	const n, batch = 30, 16
	proxy, pool, url := pgtest.ProxiedPool(t)
	direct := directPool(t, url)
	dir := t.TempDir()
	a := newService(t, Options{DB: pool, Dir: dir, MetadataRetry: 200 * time.Millisecond})
	flushLong(t, a)
	proxy.Down()
	ctx := ctxTimeout(t)
	var ids []string
	for i := range n {
		w, err := a.Start(ctx, fmt.Sprintf("call-crash-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, w.ID())
	}
	a.Close() // the process is gone; its rows are only in the journal
	entries := readLogFiles(t, a.journalDir())
	if len(logRows(t, a.journalDir())) != 2*n {
		t.Fatalf("journal lines of %d recordings started and finished: %d, want %d", n, len(logRows(t, a.journalDir())), 2*n)
	}
	proxy.Up()
	if n := rowCount(t, direct, ids...); n != 0 {
		t.Fatalf("%d rows before the restart, want 0", n)
	}

	db := &countingDB{DB: direct}
	b := newService(t, Options{DB: db, Dir: dir, MetadataBatch: batch})
	flushLong(t, b)
	if got, want := db.writes.Load(), int64((n+batch-1)/batch); got != want {
		t.Errorf("%d journaled rows: %d write statements, want %d", n, got, want)
	}
	states := rowStates(t, direct, ids)
	for _, id := range ids {
		if states[id] != StateReady {
			t.Errorf("recording %s: row state %q after the restart, want ready", id, states[id])
		}
	}
	b.Close()

	if left := readLogFiles(t, b.journalDir()); len(left) != 0 {
		t.Fatalf("journal segments left after every row was written: %d", len(left))
	}
	// The entries come back as if the process had died between the commit and their removal.
	for name, e := range entries {
		if err := os.WriteFile(filepath.Join(b.journalDir(), name), e, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	c := newService(t, Options{DB: direct, Dir: dir, MetadataBatch: batch})
	flushLong(t, c)
	var total int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM recordings`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != n {
		t.Errorf("%d rows after the second restart, want %d", total, n)
	}
	if p := c.Pending(); p != 0 {
		t.Errorf("%d journal entries left, want 0", p)
	}
	if left := readLogFiles(t, c.journalDir()); len(left) != 0 {
		t.Errorf("journal segments left: %d", len(left))
	}
}

// BenchmarkMetadataRowsAtRate measures what recordings' metadata rows cost the database at a
// steady call rate, as in make bench's CPS steps (zero-length calls: a recording starts at the
// answer and finishes at once): RECBENCH_CPS recordings a second (default 200) for
// RECBENCH_SECONDS (default 5), then every row written. Reported per recording: statements that
// write recordings, and commits of the benchmark's database. RECBENCH_BATCH sets
// MetadataBatch (1 is the code before: a statement and a commit per row).
func BenchmarkMetadataRowsAtRate(b *testing.B) {
	cps, secs, batch := envInt("RECBENCH_CPS", 200), envInt("RECBENCH_SECONDS", 5), envInt("RECBENCH_BATCH", 0)
	pool := pgtest.Pool(b)
	db := &countingDB{DB: pool}
	s := newService(b, Options{DB: db, MetadataBatch: batch})
	ctx := context.Background()
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	commits := func() int64 {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT pg_stat_clear_snapshot() IS NULL, xact_commit FROM pg_stat_database
			WHERE datname = current_database()`).Scan(new(bool), &n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	before := commits()
	n := cps * secs
	start := time.Now()
	// Each recording on its own goroutine, as calls are: the journal's fsyncs of one do not
	// hold back the next one's start.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(cps))); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Start(ctx, fmt.Sprintf("call-rate-%d", i))
			if err == nil {
				_, err = w.Finish(ctx)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	offered := float64(n) / time.Since(start).Seconds()
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		b.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // pg_stat_database is flushed by the backends about every second
	b.ReportMetric(offered, "recordings/s")
	b.ReportMetric(float64(db.writes.Load())/float64(n), "write_statements/recording")
	b.ReportMetric(float64(commits()-before-1)/float64(n), "commits/recording")
}

func envInt(name string, def int) int {
	v, err := strconv.Atoi(os.Getenv(name))
	if err != nil || v <= 0 {
		return def
	}
	return v
}
