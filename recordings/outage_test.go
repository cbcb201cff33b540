package recordings

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/media"
)

// quick bounds what must not wait on the database: starting, pausing and finishing a
// recording are local disk work (a few fsyncs), far below the pool's connect timeout.
const quick = 3 * time.Second

// within runs f and fails the test when it takes longer than quick.
func within[T any](t *testing.T, what string, f func() (T, error)) T {
	t.Helper()
	type out struct {
		v   T
		err error
	}
	ch := make(chan out, 1)
	go func() {
		v, err := f()
		ch <- out{v, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatalf("%s during the outage: %v", what, o.err)
		}
		return o.v
	case <-time.After(quick):
		t.Fatalf("%s waited on the unreachable database (more than %v)", what, quick)
	}
	panic("unreachable")
}

// rowCount counts the rows of ids through the direct pool (never the proxy).
func rowCount(t *testing.T, db *pgxpool.Pool, ids ...string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(ctxTimeout(t), `SELECT count(*) FROM recordings WHERE id = ANY($1)`, ids).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func directPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// Rule (issue 13, item 4): recordings do not need PostgreSQL. With the database unreachable a
// call's recording starts, pauses, resumes and finishes at once, its id known at once (for
// call.recording_ready), and the file is a valid WAV holding the call's audio; the rows wait
// in the journal (switchboard_recording_rows_pending), more of them than the in-memory queue
// holds; when the database answers again every row appears complete, once.
func TestRecordingDuringDatabaseOutageRowAppearsAfter(t *testing.T) {
	proxy, pool, url := pgtest.ProxiedPool(t)
	db := directPool(t, url)
	clk := newClock()
	s := newService(t, Options{DB: pool, Now: clk.Now, Buffer: 1024, MetadataQueue: 2, MetadataRetry: 200 * time.Millisecond})
	ctx := ctxTimeout(t)
	flush(t, s) // the metadata writer is up and has scanned the (empty) journal
	proxy.Down()

	base := clk.Now()
	const calls = 5 // more than MetadataQueue: the journal, not memory, holds the rest
	var results []Result
	for i := range calls {
		clk.Set(base)
		w := within(t, "Start", func() (*Writer, error) { return s.Start(ctx, "call-outage-"+string(rune('a'+i))) })
		if w.ID() == "" {
			t.Fatal("no recording id")
		}
		feed(w.CallerTap(), base, media.PCMU, 440, 1, 0, 50)
		feed(w.AgentTap(), base, media.PCMA, 880, 2, 0, 100)
		clk.Set(base.Add(time.Second))
		within(t, "Pause", func() (struct{}, error) { return struct{}{}, w.Pause(ctx, 7) })
		clk.Set(base.Add(1500 * time.Millisecond))
		within(t, "Resume", func() (struct{}, error) { return struct{}{}, w.Resume(ctx, 7) })
		clk.Set(base.Add(2 * time.Second))
		res := within(t, "Finish", func() (Result, error) { return w.Finish(ctx) })
		if res.ID != w.ID() || res.State != StateReady || res.Seconds != 2 {
			t.Fatalf("result during the outage: %+v", res)
		}
		results = append(results, res)
	}
	// The files are complete now, database or not.
	for _, res := range results {
		d := readWAV(t, res.Path)
		if !d.h.Consistent(d.size) || d.h.Channels != 2 || d.duration() != 2*time.Second || d.size != res.Bytes {
			t.Fatalf("file during the outage: header %+v, %d bytes, result %+v", d.h, d.size, res)
		}
		if seg := d.segment(0, 100*time.Millisecond, 900*time.Millisecond); goertzel(seg, 440) < 100*goertzel(seg, 880) {
			t.Error("left channel is not the caller's 440 Hz tone")
		}
		if seg := d.segment(1, 100*time.Millisecond, 900*time.Millisecond); goertzel(seg, 880) < 100*goertzel(seg, 440) {
			t.Error("right channel is not the agent's 880 Hz tone")
		}
	}
	ids := make([]string, len(results))
	for i, r := range results {
		ids[i] = r.ID
	}
	if n := rowCount(t, db, ids...); n != 0 {
		t.Fatalf("%d rows reached the database through a cut proxy", n)
	}
	if got := s.Pending(); got != calls {
		t.Errorf("Pending() = %d during the outage, want %d", got, calls)
	}
	if got := testutil.ToFloat64(s.metrics().pending); got != calls {
		t.Errorf("switchboard_recording_rows_pending = %v, want %d", got, calls)
	}
	if got := testutil.ToFloat64(s.metrics().errors); got != 0 {
		t.Errorf("switchboard_recording_errors_total = %v: an outage is not a failed recording", got)
	}

	proxy.Up()
	flush(t, s)
	if n := rowCount(t, db, ids...); n != calls {
		t.Fatalf("%d rows after the database came back, want %d", n, calls)
	}
	for _, res := range results {
		rec, err := s.Recording(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != StateReady || rec.DurationMS != 2000 || rec.SizeBytes != res.Bytes || rec.ReadyAt == nil ||
			rec.Channels != 2 || rec.Node != "test-node" || rec.CallID != res.CallID ||
			rec.Path != filepath.ToSlash(mustRel(t, s.opts.Dir, res.Path)) || rec.StartedAt.Sub(base).Abs() > time.Microsecond {
			t.Errorf("row after the outage %+v, result %+v", rec, res)
		}
		if len(rec.Pauses) != 1 || rec.Pauses[0].FromMS != 1000 || rec.Pauses[0].ToMS == nil || *rec.Pauses[0].ToMS != 1500 ||
			rec.Pauses[0].PausedBy != 7 {
			t.Errorf("pauses after the outage %+v", rec.Pauses)
		}
	}
	if got := s.Pending(); got != 0 {
		t.Errorf("Pending() = %d after the flush", got)
	}
	if ents, _ := os.ReadDir(s.journalDir()); len(ents) != 0 {
		t.Errorf("journal not empty after the flush: %d entries", len(ents))
	}
}

func mustRel(t *testing.T, base, path string) string {
	t.Helper()
	rel, err := filepath.Rel(base, path)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// Rule (issue 13, item 4): a restart finds the journal a process left with the database
// unreachable — a finished recording never inserted, one inserted at start whose end never
// reached the database, one the process died writing, a discarded voicemail message — and a
// new Service on the same directory writes each row once, complete: Repair announces only the
// one the process died writing (for call.recording_ready), a second Repair and another restart
// find nothing, and no row is ever duplicated.
func TestRestartWritesJournaledRowsOnce(t *testing.T) {
	proxy, pool, url := pgtest.ProxiedPool(t)
	db := directPool(t, url)
	dir := t.TempDir()
	clk := newClock()
	base := clk.Now()
	a := newService(t, Options{DB: pool, Dir: dir, Now: clk.Now, Buffer: 1024, MetadataRetry: 200 * time.Millisecond})
	ctx := ctxTimeout(t)
	record := func(w *Writer) Result {
		t.Helper()
		clk.Set(base)
		feed(w.CallerTap(), base, media.PCMU, 440, 1, 0, 50)
		clk.Set(base.Add(time.Second))
		res, err := w.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Inserted in state recording while the database answered; it ends during the outage.
	clk.Set(base)
	early, err := a.Start(ctx, "call-early")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	proxy.Down()
	earlyRes := record(early)
	// Started and finished during the outage.
	clk.Set(base)
	w, err := a.Start(ctx, "call-outage")
	if err != nil {
		t.Fatal(err)
	}
	outageRes := record(w)
	// A voicemail message too short to keep, thrown away during the outage.
	vm, err := a.StartVoicemail(ctx, "call-vm")
	if err != nil {
		t.Fatal(err)
	}
	vmRes, err := vm.Discard()
	if err != nil || vmRes.State != StateDeleted {
		t.Fatalf("discard: %+v, %v", vmRes, err)
	}
	if _, err := os.Stat(vmRes.Path); !os.IsNotExist(err) {
		t.Errorf("discarded message's file: %v", err)
	}
	// The process "dies" writing this one: its journal still says recording (its last line is
	// the start's, as it was before Finish) and its header is stale.
	clk.Set(base)
	crashed, err := a.Start(ctx, "call-crashed")
	if err != nil {
		t.Fatal(err)
	}
	crashedRes := record(crashed)
	// The tampering below comes after the service stopped (its metadata writer, still trying
	// the unreachable database, reads the log).
	a.Close()
	rewriteLog(t, a.journalDir(), func(r Recording) bool { return r.ID != crashedRes.ID || r.State == StateRecording })
	f, err := os.OpenFile(crashedRes.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(appendHeader(nil, 2, 0), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	proxy.Up()

	ids := []string{earlyRes.ID, outageRes.ID, vmRes.ID, crashedRes.ID}
	if n := rowCount(t, db, ids...); n != 1 {
		t.Fatalf("%d rows before the restart, want 1 (the early one)", n)
	}
	b := newService(t, Options{DB: db, Dir: dir, Now: clk.Now})
	reps, err := b.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].ID != crashedRes.ID || !reps[0].WasRecording || reps[0].State != StateReady ||
		reps[0].Duration != time.Second || !reps[0].HeaderFixed {
		t.Fatalf("repair returned %+v, want only the recording the process died writing", reps)
	}
	if n := rowCount(t, db, ids...); n != len(ids) {
		t.Fatalf("%d rows after the restart, want %d", n, len(ids))
	}
	for id, want := range map[string]State{earlyRes.ID: StateReady, outageRes.ID: StateReady, vmRes.ID: StateDeleted,
		crashedRes.ID: StateReady} {
		rec, err := b.Recording(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != want || want == StateReady && (rec.DurationMS != 1000 || rec.SizeBytes != earlyRes.Bytes) ||
			want == StateDeleted && rec.DeletedAt == nil {
			t.Errorf("%s: row %+v, want %s, 1 s, %d bytes", rec.CallID, rec, want, earlyRes.Bytes)
		}
	}
	if again, err := b.Repair(ctx); err != nil || len(again) != 0 {
		t.Errorf("second repair: %+v, %v", again, err)
	}
	flush(t, b)
	c := newService(t, Options{DB: db, Dir: dir, Now: clk.Now})
	if again, err := c.Repair(ctx); err != nil || len(again) != 0 {
		t.Errorf("repair after another restart: %+v, %v", again, err)
	}
	flush(t, c)
	var total int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM recordings`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != len(ids) {
		t.Errorf("%d rows in all, want %d", total, len(ids))
	}
}

// Rule (issue 13, item 4): Repair may run while recordings start and finish (a gateway that
// repairs again once the database is back): it never takes a live or finishing recording for
// one a dead process left — nothing is returned, no file is touched — and every row ends
// ready and complete. Loops the racing operations under -race.
func TestRepairDuringLiveRecordingsTouchesNone(t *testing.T) {
	s := newService(t, Options{Buffer: 64})
	ctx := ctxTimeout(t)
	const workers, rounds = 3, 15
	done := make(chan struct{})
	errs := make(chan error, workers+1)
	results := make(chan Result, workers*rounds)
	go func() {
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			reps, err := s.Repair(ctx)
			if err != nil {
				errs <- err
				return
			}
			if len(reps) != 0 {
				errs <- fmt.Errorf("repair during live recordings returned %+v", reps)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range rounds {
				w, err := s.Start(ctx, fmt.Sprintf("call-race-%d-%d", i, k))
				if err != nil {
					errs <- err
					return
				}
				feed(w.CallerTap(), time.Now(), media.PCMU, 440, 1, 0, 3)
				res, err := w.Finish(ctx)
				if err != nil {
					errs <- err
					return
				}
				results <- res
			}
		}()
	}
	wg.Wait()
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	close(results)
	flush(t, s)
	n := 0
	for res := range results {
		n++
		rec, err := s.Recording(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != StateReady || rec.SizeBytes != res.Bytes || rec.DurationMS != res.Duration.Milliseconds() {
			t.Errorf("row %+v, result %+v", rec, res)
		}
	}
	if n != workers*rounds {
		t.Fatalf("%d recordings, want %d", n, workers*rounds)
	}
}

// Rule (issue 13, item 4, poison): a journaled row the database refuses for good (here its
// file's path is claimed by another row) is set aside as <id>.json.refused, counted in
// switchboard_recording_rows_refused_total and switchboard_recording_errors_total, and never
// retried in a loop; the other recordings' rows are written all the same.
func TestRefusedRowIsSetAsideOthersWritten(t *testing.T) {
	proxy, pool, url := pgtest.ProxiedPool(t)
	db := directPool(t, url)
	clk := newClock()
	s := newService(t, Options{DB: pool, Now: clk.Now, MetadataRetry: 200 * time.Millisecond})
	ctx := ctxTimeout(t)
	flush(t, s)
	proxy.Down()
	var res []Result
	for _, call := range []string{"call-poison", "call-fine"} {
		w, err := s.Start(ctx, call)
		if err != nil {
			t.Fatal(err)
		}
		r, err := w.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	// Meanwhile a stale row (another id) claims the poison recording's path.
	rel := filepath.ToSlash(mustRel(t, s.opts.Dir, res[0].Path))
	if _, err := db.Exec(ctx, `INSERT INTO recordings (id, call_id, node, path, state, channels, started_at)
		VALUES ('stale', 'call-poison', 'test-node', $1, 'ready', 2, now())`, rel); err != nil {
		t.Fatal(err)
	}
	proxy.Up()
	flush(t, s)
	if n := rowCount(t, db, res[1].ID); n != 1 {
		t.Errorf("the fine recording's row: %d rows, want 1", n)
	}
	if n := rowCount(t, db, res[0].ID); n != 0 {
		t.Errorf("the refused row was written: %d rows", n)
	}
	if _, err := os.Stat(s.journalPath(res[0].ID) + refusedExt); err != nil {
		t.Errorf("refused journal entry not set aside: %v", err)
	}
	if got := testutil.ToFloat64(s.metrics().refused); got != 1 {
		t.Errorf("switchboard_recording_rows_refused_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.metrics().errors); got != 1 {
		t.Errorf("switchboard_recording_errors_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.metrics().pending); got != 0 {
		t.Errorf("switchboard_recording_rows_pending = %v, want 0", got)
	}
}

// A recording finished a moment ago is served as ready although its ready row has not reached
// the database yet: call.recording_ready puts the recording's link on the ticket at once, and
// a supervisor who follows it must get the audio, not a 404 saying it is still recording (CI
// met that 404 under load, the metadata writer seconds behind). The writer is held here by a
// lock on the row; Recording answers from this process's journal meanwhile, and from the
// database once it is written.
func TestJustFinishedRecordingIsReadyBeforeItsRowIsWritten(t *testing.T) {
	_, pool, url := pgtest.ProxiedPool(t)
	db := directPool(t, url)
	clk := newClock()
	s := newService(t, Options{DB: pool, Now: clk.Now, MetadataRetry: 100 * time.Millisecond})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-just-finished")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, s) // the row says recording in the database
	if rec, err := s.Recording(ctx, w.ID()); err != nil || rec.State != StateRecording {
		t.Fatalf("while recording: %+v, %v", rec, err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM recordings WHERE id = $1 FOR UPDATE`, w.ID()); err != nil {
		t.Fatal(err)
	}
	feed(w.CallerTap(), base, media.PCMU, 440, 1, 0, 50)
	clk.Set(base.Add(time.Second))
	res, err := w.Finish(ctx)
	if err != nil || res.State != StateReady {
		t.Fatalf("Finish: %+v, %v", res, err)
	}
	var inDB State
	if err := db.QueryRow(ctx, `SELECT state FROM recordings WHERE id = $1`, w.ID()).Scan(&inDB); err != nil || inDB != StateRecording {
		t.Fatalf("the database holds %q (%v): the writer was not held", inDB, err)
	}
	rec, err := s.Recording(ctx, w.ID())
	if err != nil || rec.State != StateReady || rec.ReadyAt == nil || rec.SizeBytes != res.Bytes ||
		rec.Path != filepath.ToSlash(mustRel(t, s.opts.Dir, res.Path)) {
		t.Fatalf("just finished, row not written: %+v, %v; want ready, as the journal says", rec, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	if err := db.QueryRow(ctx, `SELECT state FROM recordings WHERE id = $1`, w.ID()).Scan(&inDB); err != nil || inDB != StateReady {
		t.Fatalf("after the flush the database holds %q (%v)", inDB, err)
	}
	if _, ok := s.unwrittenRow(w.ID()); ok {
		t.Error("the journal's row is still kept after it was written")
	}
	if rec, err := s.Recording(ctx, w.ID()); err != nil || rec.State != StateReady {
		t.Fatalf("after the flush: %+v, %v", rec, err)
	}
}
