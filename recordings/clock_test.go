package recordings

import (
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// countFS counts what the recordings' files are asked to do: audio appends (Write), header
// rewrites (WriteAt) and fsyncs (Sync, each signalled on synced). With hold set, every Sync
// waits until hold is closed: a disk slow to flush. (A file is not fsynced at its creation
// since session 12: the journal's group commit fsyncs its directory.)
type countFS struct {
	OSFS
	writes, headers, syncs atomic.Int64
	synced                 chan struct{}
	hold                   chan struct{}
	holding                chan struct{} // closed when a Sync waits on hold
	once                   sync.Once
}

func newCountFS(hold bool) *countFS {
	f := &countFS{synced: make(chan struct{}, 64), holding: make(chan struct{})}
	if hold {
		f.hold = make(chan struct{})
	}
	return f
}

func (f *countFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil || flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return file, err
	}
	return &countFile{File: file, fs: f}, nil
}

type countFile struct {
	File
	fs    *countFS
	syncs atomic.Int64
}

func (f *countFile) Write(b []byte) (int, error) {
	f.fs.writes.Add(1)
	return f.File.Write(b)
}

func (f *countFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.headers.Add(1)
	return f.File.WriteAt(b, off)
}

func (f *countFile) Sync() error {
	if f.fs.hold != nil {
		f.fs.once.Do(func() { close(f.fs.holding) })
		<-f.fs.hold
	}
	err := f.File.Sync()
	f.fs.syncs.Add(1)
	select {
	case f.fs.synced <- struct{}{}:
	default:
	}
	return err
}

// recordRealTime feeds a stereo call's taps from..to seconds of audio, 100 ms at a time, moving
// the clock along and visiting the recordings as the Service's clock does every 100 ms — but
// for every seventh visit, which comes late (with the next), as on a busy core.
func recordRealTime(s *Service, clk *clock, w *Writer, base time.Time, from, to int) {
	left, right := w.CallerTap(), w.AgentTap()
	for k := from * 50; k < to*50; k += 5 {
		feed(left, base, media.PCMU, 440, 1, k, k+5)
		feed(right, base, media.PCMA, 880, 2, k, k+5)
		clk.Set(base.Add(time.Duration(k+5) * 20 * time.Millisecond))
		if (k/5)%7 != 6 || k+5 == to*50 {
			s.onClock()
		}
	}
}

// Rule (issue 18, session 7): a recording's disk work is batched — its audio is written twice a
// second (not at every 100 ms visit: 20 writes for 10 s instead of 100), once per write even
// after a late visit (a write split at half a second made it 23), and it is fsynced once per
// Options.SyncInterval (5 s by default: 1 or 2 for 10 s instead of 10), plus once at the close
// (not at its creation since session 12); its header is rewritten just before each periodic
// fsync (session 12: not after every write). Before session 7 every recording wrote every
// 100 ms and fsynced every second.
func TestRecordingWritesTwiceASecondAndSyncsPerSyncInterval(t *testing.T) {
	clk := newClock()
	cfs := newCountFS(false)
	s := newService(t, Options{Now: clk.Now, FS: cfs, Buffer: 1024})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-batched")
	if err != nil {
		t.Fatal(err)
	}
	w0, h0 := cfs.writes.Load(), cfs.headers.Load() // the header written at creation
	recordRealTime(s, clk, w, base, 0, 10)
	writes, headers := cfs.writes.Load()-w0, cfs.headers.Load()-h0
	// The first periodic fsync (at 5 s) at least; the second is due at 10 s, or just after
	// when a visit was late.
	select {
	case <-cfs.synced:
	case <-time.After(wait):
		t.Fatalf("%d fsyncs after 10 s recorded, want at least 1 (at 5 s)", cfs.syncs.Load())
	}
	syncs := cfs.syncs.Load()
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes, %d header rewrites, %d fsyncs for 10 s", writes, headers, syncs)
	if writes < 18 || writes > 21 {
		t.Errorf("%d writes of audio for 10 s recorded, want about 20 (one every %v)", writes, writeInterval)
	}
	if headers < 1 || headers > 2 {
		t.Errorf("%d header rewrites for 10 s recorded, want 1 or 2 (one with each periodic fsync)", headers)
	}
	if syncs < 1 || syncs > 2 {
		t.Errorf("%d fsyncs for 10 s recorded, want 1 or 2 (every %v; none at creation)", syncs, DefaultSyncInterval)
	}
	if d := readWAV(t, res.Path); d.duration() != 10*time.Second || !d.h.Consistent(d.size) {
		t.Errorf("file of %v (header %+v, %d bytes), want 10 s", d.duration(), d.h, d.size)
	}
}

// Rule (issue 18, session 7): an fsync that waits on a slow disk never stalls the writing of
// audio: the sync worker waits, the Service's clock goes on placing and writing every
// recording, and the recording is queued for at most one fsync at a time however long the
// disk takes (and its header, rewritten with each fsync since session 12, waits with it). Before session 7 the fsync ran on the recording's tick and
// nothing was written while it waited.
func TestSlowFsyncNeverStallsTheWriting(t *testing.T) {
	clk := newClock()
	cfs := newCountFS(true)
	s := newService(t, Options{Now: clk.Now, FS: cfs, Buffer: 1024, SyncInterval: time.Second})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-slow-sync")
	if err != nil {
		t.Fatal(err)
	}
	recordRealTime(s, clk, w, base, 0, 1)
	select {
	case <-cfs.holding:
	case <-time.After(wait):
		t.Fatal("no fsync after a second recorded")
	}
	w0, h0 := cfs.writes.Load(), cfs.headers.Load()
	recordRealTime(s, clk, w, base, 1, 6) // five more seconds while the fsync waits
	if got := cfs.writes.Load() - w0; got < 9 {
		t.Errorf("%d writes in the 5 s the fsync waited, want about 10", got)
	}
	if got := cfs.headers.Load() - h0; got != 0 {
		t.Errorf("%d header rewrites in the 5 s the fsync waited, want none (the header goes with the fsync)", got)
	}
	if got := cfs.syncs.Load(); got != 0 {
		t.Errorf("%d fsyncs done while the disk held the first periodic one, want 0", got)
	}
	close(cfs.hold)
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := readWAV(t, res.Path); d.duration() != 6*time.Second || !d.h.Consistent(d.size) {
		t.Errorf("file of %v (header %+v, %d bytes), want 6 s", d.duration(), d.h, d.size)
	}
}
