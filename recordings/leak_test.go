package recordings

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/media"
)

// Rule (issue 8): every writer's ticks end with Finish — also with taps still installed and
// packets still queued — and nothing is left running.
func TestWritersGoroutinesEndWithFinish(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now})
	ctx := ctxTimeout(t)
	if _, err := s.ByCall(ctx, "warm-up"); err != nil { // the pool's own goroutines start here
		t.Fatal(err)
	}
	flush(t, s) // and the Service's metadata writer, which lives until Close
	ignore := goleak.IgnoreCurrent()
	base := clk.Now()
	var taps []media.Tap
	var ws []*Writer
	for i := range 10 {
		w, err := s.Start(ctx, "call-leak")
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		taps = append(taps, w.Tap(Left, Right))
		feed(taps[i], base, media.PCMU, 440, 1, 0, 20)
	}
	clk.Set(base.Add(time.Second))
	for _, w := range ws {
		if _, err := w.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, tap := range taps { // a tap called after Finish is harmless
		feed(tap, base, media.PCMU, 440, 1, 20, 30)
	}
	goleak.VerifyNone(t, ignore)
}

// Rule (issue 8): one endpoint's tap can record both flows: Tap(Left, Right) puts what the
// endpoint receives (the caller) left and what it sends (what the caller hears: the agent,
// prompts, music) right.
func TestTapRoutesFlows(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, Buffer: 1024})
	ctx := ctxTimeout(t)
	base := clk.Now()
	w, err := s.Start(ctx, "call-flows")
	if err != nil {
		t.Fatal(err)
	}
	tap := w.Tap(Left, Right)
	for k := range 50 {
		at := base.Add(time.Duration(k) * 20 * time.Millisecond)
		tap(packet(media.Received, 0, uint16(k), uint32(k*160), 1, toneFrame(media.PCMU, 440, k), at))
		tap(packet(media.Sent, 8, uint16(k), uint32(k*160), 2, toneFrame(media.PCMA, 880, k), at))
	}
	clk.Set(base.Add(time.Second))
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := readWAV(t, res.Path)
	if seg := d.segment(0, 0, time.Second); goertzel(seg, 440) < 1000*goertzel(seg, 880) {
		t.Error("left is not the received 440 Hz")
	}
	if seg := d.segment(1, 0, time.Second); goertzel(seg, 880) < 1000*goertzel(seg, 440) {
		t.Error("right is not the sent 880 Hz")
	}
}

// BenchmarkTap measures the RTP path's share of recording: one tapped 20 ms packet (copy and
// queue). The writer's ticks (decoding and writing) run concurrently and are included in the
// wall time. It must not allocate.
func BenchmarkTap(b *testing.B) {
	s := newService(b, Options{Buffer: 4096})
	ctx := ctxTimeout(b)
	w, err := s.Start(ctx, "call-bench")
	if err != nil {
		b.Fatal(err)
	}
	tap := w.CallerTap()
	payload := toneFrame(media.PCMU, 440, 0)
	start := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tap(packet(media.Received, 0, uint16(i), uint32(i*160), 1, payload, start.Add(time.Duration(i)*20*time.Millisecond)))
	}
	b.StopTimer()
	res, err := w.Finish(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// Faster than real time the writer falls behind: the share dropped says how often the
	// cheaper drop path was measured.
	b.ReportMetric(float64(res.Dropped)/float64(b.N), "dropped/op")
}

// Race (run under -race): taps filling chunks faster than real time (each full chunk re-arms
// the writer's tick at once) on two goroutines while Finish ends the recording: nothing races,
// Finish returns, and no tick runs on after it (goleak in TestMain).
func TestTapsKickingTheTickRaceFinish(t *testing.T) {
	clk := newClock()
	s := newService(t, Options{Now: clk.Now, Buffer: 64})
	ctx := ctxTimeout(t)
	base := clk.Now()
	for range 10 {
		w, err := s.Start(ctx, "call-race")
		if err != nil {
			t.Fatal(err)
		}
		tap := w.Tap(Left, Right)
		var wg sync.WaitGroup
		for flow := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 400 {
					tap(packet(media.Flow(flow), 0, uint16(k), uint32(k*160), uint32(flow+1),
						toneFrame(media.PCMU, 440, k), base.Add(time.Duration(k)*20*time.Millisecond)))
				}
			}()
		}
		if _, err := w.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

// BenchmarkCommitASecond measures what a recording costs per second of stereo audio besides
// the system calls: decoding the ring into 16-bit samples and clearing it (the file is left
// out: a failed writer keeps time moving and writes nothing).
func BenchmarkCommitASecond(b *testing.B) {
	s := newService(b, Options{})
	w := newWriter(s, "id", "call", "call", "x.wav", 2, time.Now(), nil)
	var ranges [][2]int64
	b.ReportAllocs()
	for b.Loop() {
		w.commit(w.committed+SampleRate, &ranges)
	}
}

// BenchmarkPlaceASecond measures placing a second of a stereo call's frames in the ring (what
// the clock's visits do with the queue: 50 μ-law frames a second each way) and writing them
// out, without the file. It must not allocate.
func BenchmarkPlaceASecond(b *testing.B) {
	s := newService(b, Options{})
	w := newWriter(s, "id", "call", "call", "x.wav", 2, time.Now(), nil)
	var ranges [][2]int64
	payload := toneFrame(media.PCMU, 440, 0)
	var sec int64
	b.ReportAllocs()
	for b.Loop() {
		for k := range int64(50) {
			for c := range 2 {
				n := sec*50 + k
				f := frame{ch: Channel(c + 1), pt: ptPCMU, seq: uint16(n), ts: uint32(n * 160), ssrc: uint32(c + 1),
					end: uint16(len(payload)), at: time.Duration(n) * 20 * time.Millisecond}
				w.place(&f, payload, &ranges)
			}
		}
		sec++
		w.commit(w.s.samples(time.Duration(sec)*time.Second-s.opts.Delay), &ranges)
	}
}
