package recordings

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// Rule (issue 8, crash): Repair at start-up completes recordings left in state recording whose
// header was left stale (as a crash between two header rewrites leaves it), fixes stray files
// whose header disagrees with their size (a torn last sample frame included), marks a
// recording whose file is gone as failed, leaves other nodes' live recordings alone, and a
// second run finds nothing to do.
func TestRepairFixesStaleHeaders(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, Buffer: 1024})
	ctx := ctxTimeout(t)
	base := clk.Now()
	record := func(callID string) Result {
		t.Helper()
		clk.Set(base)
		w, err := s.Start(ctx, callID)
		if err != nil {
			t.Fatal(err)
		}
		feed(w.CallerTap(), base, media.PCMU, 440, 1, 0, 50)
		clk.Set(base.Add(time.Second))
		res, err := w.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	stale := record("call-stale")
	gone := record("call-gone")
	stray := record("call-stray")
	other := record("call-other-node")
	flush(t, s) // the rows are in the database before the test rewinds them
	want := readWAV(t, stale.Path)

	// The process "died" before its last header rewrite and before the metadata said ready.
	staleHeader := func(path string, dataSize uint32) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(appendHeader(nil, 2, dataSize), 0); err != nil {
			t.Fatal(err)
		}
	}
	staleHeader(stale.Path, 0)
	staleHeader(other.Path, 0)
	if err := os.Remove(gone.Path); err != nil {
		t.Fatal(err)
	}
	// A file no row knows, with a torn last sample frame and a header claiming too much.
	strayPath := filepath.Join(filepath.Dir(stray.Path), "lost+found.wav")
	b, err := os.ReadFile(stray.Path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, 1, 2, 3)
	copy(b, appendHeader(nil, 2, 1<<20))
	if err := os.WriteFile(strayPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := s.opts.DB
	if _, err := pool.Exec(ctx, `UPDATE recordings SET state = 'recording', ready_at = NULL, duration_ms = 0 WHERE id = ANY($1)`,
		[]string{stale.ID, gone.ID, other.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE recordings SET node = 'elsewhere' WHERE id = $1`, other.ID); err != nil {
		t.Fatal(err)
	}

	reps, err := s.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Repaired{}
	for _, r := range reps {
		byPath[r.Path] = r
	}
	if len(reps) != 3 {
		t.Fatalf("repaired %d, want 3: %+v", len(reps), reps)
	}
	if r := byPath[stale.Path]; r.ID != stale.ID || !r.WasRecording || !r.HeaderFixed || r.State != StateReady ||
		r.Seconds != 1 || r.Duration != time.Second {
		t.Errorf("stale: %+v", r)
	}
	if r := byPath[gone.Path]; r.ID != gone.ID || !r.WasRecording || r.State != StateFailed || r.Err == nil {
		t.Errorf("gone: %+v", r)
	}
	if r := byPath[strayPath]; r.ID != "" || !r.HeaderFixed || r.Duration != time.Second {
		t.Errorf("stray: %+v", r)
	}
	got := readWAV(t, stale.Path)
	if !got.h.Consistent(got.size) || len(got.ch[0]) != len(want.ch[0]) {
		t.Fatalf("repaired header %+v, %d bytes", got.h, got.size)
	}
	for i := range want.ch[0] {
		if got.ch[0][i] != want.ch[0][i] {
			t.Fatalf("sample %d changed by repair", i)
		}
	}
	if d := readWAV(t, strayPath); !d.h.Consistent(d.size) || d.size != stray.Bytes {
		t.Errorf("stray after repair %+v, %d bytes, want %d", d.h, d.size, stray.Bytes)
	}
	for id, st := range map[string]State{stale.ID: StateReady, gone.ID: StateFailed, other.ID: StateRecording} {
		rec, err := s.Recording(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != st {
			t.Errorf("%s: state %s, want %s", rec.CallID, rec.State, st)
		}
	}
	if d := readWAV(t, other.Path); d.h.DataSize != 0 {
		t.Error("another node's live recording was touched")
	}
	if again, err := s.Repair(ctx); err != nil || len(again) != 0 {
		t.Errorf("second repair: %+v, %v", again, err)
	}
}

// Repair never touches a recording this process is writing.
func TestRepairSkipsActiveRecordings(t *testing.T) {
	s := newService(t, Options{})
	ctx := ctxTimeout(t)
	w, err := s.Start(ctx, "call-live")
	if err != nil {
		t.Fatal(err)
	}
	reps, err := s.Repair(ctx)
	if err != nil || len(reps) != 0 {
		t.Errorf("repair during a live recording: %+v, %v", reps, err)
	}
	if _, err := w.Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// Repair on a recordings directory that does not exist yet (a first start) finds nothing.
func TestRepairWithoutDirectory(t *testing.T) {
	s := newService(t, Options{Dir: filepath.Join(t.TempDir(), "not-yet")})
	if reps, err := s.Repair(ctxTimeout(t)); err != nil || len(reps) != 0 {
		t.Errorf("repair: %+v, %v", reps, err)
	}
}
