package recordings

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-voice/switchboard/media"
)

// feed taps frames [from, to) of a freq Hz tone as if received at base + 20 ms per frame.
func feed(tap media.Tap, base time.Time, c media.Codec, freq float64, ssrc uint32, from, to int) {
	for k := from; k < to; k++ {
		at := base.Add(time.Duration(k) * 20 * time.Millisecond)
		tap(packet(media.Received, c.PayloadType(), uint16(k), uint32(k*media.FrameSize), ssrc, toneFrame(c, freq, k), at))
	}
}

// Rule (issue 8, pause): an agent pauses the recording while a card number is read: the paused
// time is silence in the file (the audio never reaches the file, even packets already queued),
// the file keeps its length, and the interval — who, when, where in the file — is in the
// metadata as the audit of the pause.
func TestPauseIsSilenceAndAudited(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, Buffer: 1024})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-pause")
	if err != nil {
		t.Fatal(err)
	}
	tap := w.CallerTap()
	// Frames 50-59 are queued before the pause but belong to the paused time.
	feed(tap, base, media.PCMU, 440, 7, 0, 60)
	clk.Set(base.Add(time.Second))
	if err := w.Pause(ctx, 42); err != nil {
		t.Fatal(err)
	}
	if err := w.Pause(ctx, 42); err != nil { // pausing twice is one pause
		t.Fatal(err)
	}
	feed(tap, base, media.PCMU, 440, 7, 60, 100) // the card number: dropped at the tap
	clk.Set(base.Add(2 * time.Second))
	if err := w.Resume(ctx, 43); err != nil {
		t.Fatal(err)
	}
	feed(tap, base, media.PCMU, 440, 7, 100, 150)
	clk.Set(base.Add(3 * time.Second))
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(w.Pause(ctx, 42), ErrFinished) {
		t.Error("Pause after Finish: want ErrFinished")
	}
	d := readWAV(t, res.Path)
	if d.duration() != 3*time.Second {
		t.Errorf("file lasts %v, want 3s", d.duration())
	}
	if seg := d.segment(0, 0, time.Second); goertzel(seg, 440) < 1000*goertzel(seg, 880) {
		t.Error("no tone before the pause")
	}
	if e := energy(d.segment(0, time.Second, 2*time.Second)); e != 0 {
		t.Errorf("paused second has energy %.0f, want silence", e)
	}
	if seg := d.segment(0, 2*time.Second, 3*time.Second); goertzel(seg, 440) < 1000*goertzel(seg, 880) {
		t.Error("no tone after resuming")
	}
	flush(t, s)
	rec, err := s.Recording(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Pauses) != 1 {
		t.Fatalf("pauses %+v", rec.Pauses)
	}
	p := rec.Pauses[0]
	if p.FromMS != 1000 || p.ToMS == nil || *p.ToMS != 2000 || p.PausedBy != 42 || p.ResumedBy != 43 ||
		!p.PausedAt.Equal(base.Add(time.Second)) || p.ResumedAt == nil {
		b, _ := json.Marshal(p)
		t.Errorf("pause %s", b)
	}
}

// Rule (issue 8): a recording paused when the call ends closes its pause at the end.
func TestPauseOpenAtFinishIsClosed(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-pause-open")
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(base.Add(500 * time.Millisecond))
	if err := w.Pause(ctx, 0); err != nil {
		t.Fatal(err)
	}
	clk.Set(base.Add(time.Second))
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pauses) != 1 || res.Pauses[0].ToMS == nil || *res.Pauses[0].ToMS != 1000 {
		t.Errorf("pauses %+v", res.Pauses)
	}
}

// fullFS is a filesystem whose recording files fail with ENOSPC once limit bytes are written.
type fullFS struct {
	OSFS
	limit   int64
	written atomic.Int64
}

func (f *fullFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil || flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return file, err
	}
	return &fullFile{File: file, fs: f}, nil
}

type fullFile struct {
	File
	fs *fullFS
}

func (f *fullFile) Write(b []byte) (int, error) {
	room := f.fs.limit - f.fs.written.Load()
	if int64(len(b)) > room {
		n, _ := f.File.Write(b[:max(room, 0)])
		f.fs.written.Add(int64(n))
		return n, &fs.PathError{Op: "write", Path: "recording", Err: syscall.ENOSPC}
	}
	n, err := f.File.Write(b)
	f.fs.written.Add(int64(n))
	return n, err
}

// Rule (issue 8): a full disk never breaks the call: the recording is marked failed with its
// error, counted in switchboard_recording_errors_total, Finish reports it (wrapping ENOSPC) so
// the gateway can note it, nothing panics and the tap keeps returning at once.
func TestFullDiskFailsRecordingNotCall(t *testing.T) {
	clk := newClock()
	ffs := &fullFS{limit: headerSize + 16000} // the header and half a second of stereo
	s := newService(t, Options{Now: clk.Now, FS: ffs, Buffer: 1024})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-full-disk")
	if err != nil {
		t.Fatal(err)
	}
	left, right := w.CallerTap(), w.AgentTap()
	feed(left, base, media.PCMU, 440, 1, 0, 100)
	feed(right, base, media.PCMA, 880, 2, 0, 100)
	clk.Set(base.Add(2 * time.Second)) // the writer's next commit hits the full disk
	select {
	case <-w.failed:
	case <-time.After(wait):
		t.Fatal("the writer never hit the full disk")
	}
	if got := testutil.ToFloat64(s.metrics().errors); got != 1 {
		t.Errorf("switchboard_recording_errors_total = %v, want 1", got)
	}
	// The tap after the failure: returns at once, every time.
	done := make(chan struct{})
	go func() {
		defer close(done)
		feed(left, base, media.PCMU, 440, 1, 100, 10100)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("the tap blocked after the recording failed")
	}
	res, err := w.Finish(ctx)
	if !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Finish error %v, want ErrWrite wrapping ENOSPC", err)
	}
	if res.State != StateFailed {
		t.Errorf("result state %s", res.State)
	}
	flush(t, s)
	rec, rerr := s.Recording(ctx, res.ID)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if rec.State != StateFailed || rec.Error == "" || rec.ReadyAt != nil {
		t.Errorf("metadata %+v", rec)
	}
	// What reached the disk before it filled is a valid WAV file.
	d := readWAV(t, res.Path)
	if d.h.DataOffset+int64(d.h.DataSize) > d.size || d.duration() > 500*time.Millisecond {
		t.Errorf("partial file header %+v, %d bytes", d.h, d.size)
	}
	if again, err2 := w.Finish(ctx); again.ID != res.ID || !errors.Is(err2, syscall.ENOSPC) {
		t.Errorf("second Finish: %+v, %v", again, err2)
	}
	if got := testutil.ToFloat64(s.metrics().active); got != 0 {
		t.Errorf("switchboard_recordings_active = %v after Finish", got)
	}
}

// Rule (issue 8): no directory can be created → Start fails (the call goes on unrecorded) and
// the failure is counted.
func TestStartFailureIsCounted(t *testing.T) {
	dir := t.TempDir()
	blocker := dir + "/file"
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newService(t, Options{Dir: blocker})
	if _, err := s.Start(ctxTimeout(t), "call-x"); !errors.Is(err, ErrWrite) {
		t.Fatalf("Start: %v, want ErrWrite", err)
	}
	if got := testutil.ToFloat64(s.metrics().errors); got != 1 {
		t.Errorf("switchboard_recording_errors_total = %v", got)
	}
}

// stuckFS is a filesystem whose recording files block on Write until released: a stalled disk.
type stuckFS struct {
	OSFS
	release chan struct{}
	once    sync.Once
	stuck   chan struct{} // closed when a write is blocked
}

func (f *stuckFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil || flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return file, err
	}
	return &stuckFile{File: file, fs: f}, nil
}

type stuckFile struct {
	File
	fs *stuckFS
	n  int
}

func (f *stuckFile) Write(b []byte) (int, error) {
	f.n++
	if f.n > 1 { // the header at creation goes through
		f.fs.once.Do(func() { close(f.fs.stuck) })
		<-f.fs.release
	}
	return f.File.Write(b)
}

// Rule (issue 8, never block RTP): with the writer stuck on a stalled disk, the taps keep
// returning at once; packets beyond the buffer are dropped and counted
// (switchboard_recording_packets_dropped_total{reason="buffer_full"}).
func TestTapNeverBlocksWhenWriterIsStuck(t *testing.T) {
	clk := newClock()
	sfs := &stuckFS{release: make(chan struct{}), stuck: make(chan struct{})}
	s := newService(t, Options{Now: clk.Now, FS: sfs, Buffer: 64})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-stuck")
	if err != nil {
		t.Fatal(err)
	}
	tap := w.CallerTap()
	clk.Set(base.Add(time.Minute))
	feed(tap, base, media.PCMU, 440, 1, 0, 10) // the writer commits these and blocks writing
	select {
	case <-sfs.stuck:
	case <-time.After(wait):
		t.Fatal("the writer never wrote")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		feed(tap, base, media.PCMU, 440, 1, 10, 2010)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("the tap blocked behind a stuck writer")
	}
	close(sfs.release)
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped < 2000-64 {
		t.Errorf("dropped %d packets, want at least %d", res.Dropped, 2000-64)
	}
	if got := testutil.ToFloat64(s.metrics().droppedFull); got != float64(res.Dropped) {
		t.Errorf("dropped counter %v, result %d", got, res.Dropped)
	}
}

// Rule (issue 8, voicemail): a voicemail message is a mono file <call id>-voicemail.wav with the
// same machinery; telephone-events (the caller pressing # to end) and comfort noise are not audio.
func TestVoicemailIsMono(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, Buffer: 1024})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.StartVoicemail(ctx, "call-vm")
	if err != nil {
		t.Fatal(err)
	}
	tap := w.Tap(Mono, None)
	feed(tap, base, media.PCMA, 440, 9, 0, 50)
	tap(packet(media.Received, 101, 50, 8000, 9, []byte{11, 0x80, 0, 160}, base.Add(time.Second))) // telephone-event '#'
	tap(packet(media.Received, 13, 51, 8160, 9, []byte{40}, base.Add(time.Second)))                // comfort noise
	clk.Set(base.Add(1200 * time.Millisecond))
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ignored != 2 {
		t.Errorf("ignored %d packets, want 2", res.Ignored)
	}
	d := readWAV(t, res.Path)
	if d.h.Channels != 1 || d.duration() != 1200*time.Millisecond || !d.h.Consistent(d.size) {
		t.Fatalf("voicemail header %+v, %v", d.h, d.duration())
	}
	if want := "call-vm-voicemail.wav"; !hasSuffix(res.Path, want) {
		t.Errorf("path %s, want …/%s", res.Path, want)
	}
	if seg := d.segment(0, 0, time.Second); goertzel(seg, 440) < 1000*goertzel(seg, 880) {
		t.Error("no tone in the message")
	}
	if e := energy(d.segment(0, time.Second, 1200*time.Millisecond)); e != 0 {
		t.Errorf("events were recorded as audio: energy %.0f", e)
	}
	flush(t, s)
	rec, err := s.Recording(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Kind != "voicemail" || rec.Channels != 1 || rec.State != StateReady {
		t.Errorf("metadata %+v", rec)
	}
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// Rule (issue 8): files go to <dir>/YYYY/MM/DD/<call id>.wav (UTC day); a second recording of
// the same call gets its own file; a call id is never a path.
func TestFileLayout(t *testing.T) {
	clk := newClock()
	clk.Set(time.Date(2026, 3, 4, 23, 30, 0, 0, time.FixedZone("x", -3600)))
	s := newService(t, Options{Now: clk.Now})
	ctx := ctxTimeout(t)
	var paths []string
	for _, id := range []string{"abc-1", "abc-1", "../../etc/passwd"} {
		w, err := s.Start(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		flush(t, s)
		rec, err := s.Recording(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, rec.Path)
	}
	want := []string{"2026/03/05/abc-1.wav", "2026/03/05/abc-1-2.wav", "2026/03/05/_.._etc_passwd.wav"}
	for i := range want {
		if paths[i] != want[i] {
			t.Errorf("path %d = %q, want %q", i, paths[i], want[i])
		}
	}
}

// Rule (issue 18): a call's recording holds at most a second of audio in memory — the ring
// holds Options.Delay, writeInterval and ringSlack as G.711 codes (18 KB a second of stereo),
// the queue one chunk between two visits of the Service's clock — and no frames are set aside
// per recording: a second of both directions queued at once takes ⌈100 / chunkFrames⌉ chunks,
// returned to the Service's pool when placed.
func TestRecordingHoldsUnderASecondOfAudio(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, Buffer: 1024})
	ctx := ctxTimeout(t)
	w, err := s.Start(ctx, "call-memory")
	if err != nil {
		t.Fatal(err)
	}
	const second = SampleRate * 2 * BitsPerSample / 8 // stereo bytes
	// A second of stereo audio kept as G.711 codes, a byte a sample and a bit for the law:
	// about half of what 16-bit samples take.
	if b := len(w.ring) + 8*len(w.alaw); b > second*9/16+8 {
		t.Errorf("the ring holds %d bytes, want at most %d (a second of stereo G.711 and its law bits)", b, second*9/16+8)
	}
	base := clk.Now()
	tap := w.Tap(Left, Right)
	for k := range 50 {
		at := base.Add(time.Duration(k) * 20 * time.Millisecond)
		tap(packet(media.Received, 0, uint16(k), uint32(k*160), 1, toneFrame(media.PCMU, 440, k), at))
		tap(packet(media.Sent, 0, uint16(k), uint32(k*160), 2, toneFrame(media.PCMU, 880, k), at))
	}
	w.qmu.Lock()
	n := 0
	for c := w.qhead; c != nil; c = c.next {
		n++
	}
	w.qmu.Unlock()
	if want := (100 + chunkFrames - 1) / chunkFrames; n > want {
		t.Errorf("a second of both directions queued in %d chunks, want at most %d", n, want)
	}
	clk.Set(base.Add(time.Second))
	if _, err := w.Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// Rule (issue 21, the agent page's Pause recording): Service.PauseCall finds the live call's
// recording by call id and pauses and resumes it (audited with the agent's id, silence in
// between); a call this node does not record is ErrNotFound.
func TestPauseCallByCallID(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, Buffer: 1024})
	ctx := ctxTimeout(t)
	base := clk.Now()
	if err := s.PauseCall(ctx, "call-none", 5, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pause an unrecorded call: %v, want ErrNotFound", err)
	}
	w, err := s.Start(ctx, "call-pc")
	if err != nil {
		t.Fatal(err)
	}
	tap := w.CallerTap()
	feed(tap, base, media.PCMU, 440, 7, 0, 50)
	clk.Set(base.Add(time.Second))
	if err := s.PauseCall(ctx, "call-pc", 5, true); err != nil {
		t.Fatal(err)
	}
	feed(tap, base, media.PCMU, 440, 7, 50, 100)
	clk.Set(base.Add(2 * time.Second))
	if err := s.PauseCall(ctx, "call-pc", 5, false); err != nil {
		t.Fatal(err)
	}
	feed(tap, base, media.PCMU, 440, 7, 100, 150)
	clk.Set(base.Add(3 * time.Second))
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := readWAV(t, res.Path)
	if e := energy(d.segment(0, time.Second, 2*time.Second)); e != 0 {
		t.Errorf("paused second has energy %.0f, want silence", e)
	}
	flush(t, s)
	rec, err := s.Recording(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Pauses) != 1 || rec.Pauses[0].FromMS != 1000 || rec.Pauses[0].ToMS == nil || *rec.Pauses[0].ToMS != 2000 || rec.Pauses[0].PausedBy != 5 {
		t.Errorf("pauses %+v, want 1000-2000 ms by 5", rec.Pauses)
	}
	if err := s.PauseCall(ctx, "call-pc", 5, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("pause a finished call: %v, want ErrNotFound", err)
	}
}

// TestPlaceMatchesSampleBySample proves the strided placing (two runs at most, the law bits a
// word at a time) leaves the ring and its law bits exactly as placing sample by sample does:
// stereo and mono, frames of both laws over the same slots, across the ring's wrap, late
// and early frames, and payloads of other lengths than 20 ms.
func TestPlaceMatchesSampleBySample(t *testing.T) {
	s := newService(t, Options{})
	for _, channels := range []int{1, 2} {
		w := newWriter(s, "id", "call", "call", "x.wav", channels, time.Now(), nil)
		ring := make([]byte, len(w.ring))
		alaw := make([]uint64, len(w.alaw))
		var ranges [][2]int64
		rnd := uint32(7)
		next := func(n uint32) uint32 { rnd = rnd*1664525 + 1013904223; return (rnd >> 8) % n }
		for k := range 1200 {
			ch := Channel(1 + next(uint32(channels)))
			if channels == 1 {
				ch = Mono
			}
			pt := uint8(ptPCMU)
			if next(4) == 0 {
				pt = ptPCMA
			}
			n := 80 + next(240)
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(next(256))
			}
			// Arrival around k × 10 ms, a frame sometimes late or early by up to 60 ms; a
			// new SSRC each time places every frame by its arrival.
			at := time.Duration(k)*10*time.Millisecond + time.Duration(int(next(120))-60)*time.Millisecond
			f := frame{ch: ch, pt: pt, seq: uint16(k), ts: uint32(k * 80), ssrc: uint32(k + 1), end: uint16(n), at: max(at, 0)}
			// The reference: the same position, sample by sample, on copies.
			ci := int(ch) - 1
			if ci >= channels {
				ci = channels - 1
			}
			copy(ring, w.ring)
			copy(alaw, w.alaw)
			line := w.lines[ci]
			pos := line.place(f.ssrc, f.seq, f.ts, s.samples(f.at), w.committed)
			end := pos + int64(n)
			if end > w.committed+w.ringSize {
				// place writes out first: the reference cannot follow; let place move the
				// ring and compare from the next frame.
				w.place(&f, payload, &ranges)
				continue
			}
			for p := max(pos, w.committed); p < end; p++ {
				i := (p%w.ringSize)*int64(channels) + int64(ci)
				ring[i] = ^payload[p-pos]
				if pt == ptPCMA {
					alaw[i/64] |= 1 << (i % 64)
				} else {
					alaw[i/64] &^= 1 << (i % 64)
				}
			}
			w.place(&f, payload, &ranges)
			for i := range ring {
				if ring[i] != w.ring[i] {
					t.Fatalf("%d channels, frame %d: ring slot %d = %#x, sample by sample %#x", channels, k, i, w.ring[i], ring[i])
				}
			}
			for i := range alaw {
				if alaw[i] != w.alaw[i] {
					t.Fatalf("%d channels, frame %d: law word %d = %#x, sample by sample %#x", channels, k, i, w.alaw[i], alaw[i])
				}
			}
			if k%20 == 19 { // write out what is older than the delay, as the clock does
				w.commit(s.samples(time.Duration(k)*10*time.Millisecond-s.opts.Delay), &ranges)
			}
		}
		if w.committed < 2*w.ringSize {
			t.Fatalf("%d channels: the test never wrapped the ring (%d of %d)", channels, w.committed, w.ringSize)
		}
	}
}
