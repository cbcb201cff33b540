package recordings

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// readLogFiles returns the journal log's segments in dir by name.
func readLogFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), logExt) {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		}
	}
	return out
}

// logRows returns every row of the journal log in dir, in the log's order.
func logRows(t testing.TB, dir string) []Recording {
	t.Helper()
	files := readLogFiles(t, dir)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Recording
	for _, n := range names {
		for _, line := range bytes.Split(files[n], []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			_, js, ok := bytes.Cut(line, []byte(" "))
			var r Recording
			if !ok || json.Unmarshal(js, &r) != nil {
				t.Fatalf("%s: unreadable line %q", n, line)
			}
			out = append(out, r)
		}
	}
	return out
}

// rewriteLog keeps only the lines of the log in dir whose row keep accepts (a process that
// died before it appended the others).
func rewriteLog(t testing.TB, dir string, keep func(Recording) bool) {
	t.Helper()
	for n, b := range readLogFiles(t, dir) {
		var out []byte
		for _, line := range bytes.SplitAfter(b, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			_, js, _ := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte(" "))
			var r Recording
			if err := json.Unmarshal(js, &r); err != nil {
				t.Fatal(err)
			}
			if keep(r) {
				out = append(out, line...)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, n), out, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// Rule (issue 17, session 12): the journal is a log with group commit — recordings starting
// at the same moment share one write(2) and one fsync — and the metadata writer takes the
// rows from memory: every row reaches the database once, and the log's file is gone once
// they are all written.
func TestJournalGroupCommitsAppendsWaitingTogether(t *testing.T) {
	s := newService(t, Options{})
	ctx := ctxTimeout(t)
	flush(t, s)
	const n = 20
	// A write in progress (held here) makes the next appends gather in one batch.
	release := make(chan struct{})
	held := make(chan struct{})
	go s.logExclusive(func() {
		close(held)
		<-release
	})
	<-held
	var wg sync.WaitGroup
	ws := make([]*Writer, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Start(ctx, fmt.Sprintf("call-group-%d", i))
			ws[i] = w
			errs <- err
		}()
	}
	deadline := time.Now().Add(wait)
	for {
		s.jl.mu.Lock()
		waiting := 0
		if s.jl.cur != nil {
			waiting = len(s.jl.cur.entries)
		}
		before := s.jl.writes
		s.jl.mu.Unlock()
		if waiting == n {
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			s.jl.mu.Lock()
			got := s.jl.writes - before
			s.jl.mu.Unlock()
			if got != 1 {
				t.Errorf("%d starts waiting together: %d writes of the log, want 1", n, got)
			}
			break
		}
		if time.Now().After(deadline) {
			close(release)
			wg.Wait()
			t.Fatalf("%d of %d starts reached the log", waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
	for _, w := range ws {
		if _, err := w.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, s)
	ids := make([]string, n)
	for i, w := range ws {
		ids[i] = w.ID()
	}
	states := rowStates(t, s.opts.DB, ids)
	for _, id := range ids {
		if states[id] != StateReady {
			t.Errorf("recording %s: row %q, want ready", id, states[id])
		}
	}
	if left := readLogFiles(t, s.journalDir()); len(left) != 0 {
		t.Errorf("log segments left after every row was written: %d", len(left))
	}
}

// The journal test's child: recordings started, paused and finished while the database is
// unreachable (every row only in the journal), then killed.
const (
	envJournalChild = "RECORDINGS_JOURNAL_CHILD"
	journalCalls    = 6 // 0–2 finished, 3 paused, 3–5 live at the kill
)

func journalChild() int {
	ctx := context.Background()
	// A database that refuses connections: the rows stay in the journal.
	pool, err := pgxpool.New(ctx, "postgres://switchboard@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := New(Options{Dir: os.Getenv(envCrashDir), DB: pool, Node: crashNode, MetadataRetry: 100 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for i := range journalCalls {
		w, err := s.Start(ctx, fmt.Sprintf("call-journal-%d", i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		switch {
		case i < 3:
			if _, err := w.Finish(ctx); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		case i == 3:
			if err := w.Pause(ctx, 7); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
		fmt.Printf("rec %d %s %s\n", i, w.ID(), w.Path())
	}
	fmt.Println("ready")
	time.Sleep(30 * time.Second) // killed long before
	return 3
}

type childRec struct{ id, path string }

// runJournalChild runs the child until it says ready, kills it (SIGKILL) and returns its
// recordings by number.
func runJournalChild(t *testing.T, dir string) []childRec {
	t.Helper()
	recs := make([]childRec, journalCalls)
	sigkillChild(t, []string{envJournalChild + "=1", envCrashDir + "=" + dir}, func(f []string) bool {
		if len(f) == 4 && f[0] == "rec" {
			i, _ := strconv.Atoi(f[1])
			recs[i] = childRec{f[2], f[3]}
		}
		return len(f) == 1 && f[0] == "ready"
	})
	return recs
}

// checkRowsOnce checks that every recording of the child has exactly one row, in the states
// want, and that nothing else was written.
func checkRowsOnce(t *testing.T, s *Service, recs []childRec, want map[int]State) {
	t.Helper()
	ctx := ctxTimeout(t)
	var total int
	if err := s.opts.DB.QueryRow(ctx, `SELECT count(*) FROM recordings`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != len(recs) {
		t.Errorf("%d rows, want %d (one per recording)", total, len(recs))
	}
	for i, r := range recs {
		rec, err := s.Recording(ctx, r.id)
		if err != nil {
			t.Fatalf("recording %d: %v", i, err)
		}
		if rec.State != want[i] {
			t.Errorf("recording %d: state %s, want %s", i, rec.State, want[i])
		}
		if rec.State == StateReady {
			d := readWAV(t, r.path)
			if !d.h.Consistent(d.size) || rec.SizeBytes != d.size || rec.DurationMS != d.duration().Milliseconds() {
				t.Errorf("recording %d: row %+v, file header %+v, %d bytes", i, rec, d.h, d.size)
			}
		}
		if i == 3 && (len(rec.Pauses) != 1 || rec.Pauses[0].PausedBy != 7 || rec.Pauses[0].ToMS == nil) {
			t.Errorf("recording 3: pauses %+v, want the one paused until the kill", rec.Pauses)
		}
	}
}

// Rule (issue 17, session 12; issue 13, item 4): after SIGKILL nothing journaled is lost. A
// process that started, paused and finished recordings while the database was unreachable is
// killed; the next one's Repair writes every recording's row exactly once — the finished ones
// ready as they ended, the three it died writing repaired from their files and returned once
// (for call.recording_ready) — and removes the dead process's log.
func TestSIGKILLLeavesEveryJournaledRowForTheNextProcess(t *testing.T) {
	dir := t.TempDir()
	recs := runJournalChild(t, dir)
	s := newService(t, Options{Dir: dir, Node: crashNode})
	ctx := ctxTimeout(t)
	reps, err := s.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range reps {
		if !r.WasRecording || r.State != StateReady || r.Err != nil {
			t.Errorf("repair returned %+v", r)
		}
		got[r.ID] = true
	}
	if len(reps) != 3 || !got[recs[3].id] || !got[recs[4].id] || !got[recs[5].id] {
		t.Errorf("repair returned %d recordings, want the three live at the kill", len(reps))
	}
	checkRowsOnce(t, s, recs, map[int]State{0: StateReady, 1: StateReady, 2: StateReady, 3: StateReady, 4: StateReady, 5: StateReady})
	if left := readLogFiles(t, s.journalDir()); len(left) != 0 {
		t.Errorf("the dead process's log is still there: %d segments", len(left))
	}
	if again, err := s.Repair(ctx); err != nil || len(again) != 0 {
		t.Errorf("second repair: %+v, %v", again, err)
	}
	flush(t, s)
	checkRowsOnce(t, s, recs, map[int]State{0: StateReady, 1: StateReady, 2: StateReady, 3: StateReady, 4: StateReady, 5: StateReady})
}

// Rule (issue 17, session 12): what a power loss can leave now that a new file is not fsynced
// at its creation — a live recording's file empty, another's cut inside its header (their
// directory entries durable: the journal's group commit fsynced the directory before the
// start's line), and the log's last line torn (an append that never returned) — still loses no
// recording's metadata: Repair gives the files their header back and marks them ready with
// what they hold, writes every journaled row once, and ignores the torn line.
func TestPowerLossBeforeTheFirstFsyncLosesNoRow(t *testing.T) {
	dir := t.TempDir()
	recs := runJournalChild(t, dir)
	// The power loss: what the last fsync did not cover is gone.
	if err := os.Truncate(recs[4].path, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(recs[5].path, 20); err != nil {
		t.Fatal(err)
	}
	jdir := filepath.Join(dir, journalDirName, crashNode)
	segs := readLogFiles(t, jdir)
	if len(segs) != 1 {
		t.Fatalf("%d log segments, want 1", len(segs))
	}
	for name := range segs {
		f, err := os.OpenFile(filepath.Join(jdir, name), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(`99 {"id":"torn-by-the-power-loss","call_id":"call-tor`); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	s := newService(t, Options{Dir: dir, Node: crashNode})
	ctx := ctxTimeout(t)
	reps, err := s.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Repaired{}
	for _, r := range reps {
		byID[r.ID] = r
	}
	if len(reps) != 3 {
		t.Errorf("repair returned %d recordings, want 3: %+v", len(reps), reps)
	}
	for _, i := range []int{4, 5} {
		r, ok := byID[recs[i].id]
		if !ok || r.State != StateReady || r.Duration != 0 || !r.HeaderFixed || r.Bytes != headerSize {
			t.Errorf("recording %d (file cut by the power loss): repaired %+v", i, r)
		}
		d := readWAV(t, recs[i].path)
		if !d.h.Consistent(d.size) || d.h.Channels != 2 || d.size != headerSize {
			t.Errorf("recording %d: file after repair: header %+v, %d bytes", i, d.h, d.size)
		}
	}
	checkRowsOnce(t, s, recs, map[int]State{0: StateReady, 1: StateReady, 2: StateReady, 3: StateReady, 4: StateReady, 5: StateReady})
	if n := rowCount(t, s.opts.DB.(*pgxpool.Pool), "torn-by-the-power-loss"); n != 0 {
		t.Errorf("the torn line's recording has %d rows", n)
	}
	if left := readLogFiles(t, s.journalDir()); len(left) != 0 {
		t.Errorf("the dead process's log is still there: %d segments", len(left))
	}
}
