//go:build linux

package recordings

import (
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// envClockBenchCalls overrides BenchmarkClockVisits' number of live recordings (1,000).
const envClockBenchCalls = "SWITCHBOARD_CLOCK_BENCH_CALLS"

// threadCPU is the calling thread's user + system time (RUSAGE_THREAD).
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the process's user + system time (every thread: the sync workers and the GC too).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClockVisits measures the recordings' clock (issue 18, session 12) at 1,000 live
// stereo recordings (SWITCHBOARD_CLOCK_BENCH_CALLS), each tapped like a call: 50 packets a
// second each way. One op is 100 ms of the node's recording: every recording's taps get their
// 5 packets each way, then the clock visits every recording once (Service.onClock, on the
// benchmark's goroutine, which every fifth op writes each recording's half second out and
// every 50th queues its fsync for the sync worker). The Service's own timer is stopped after
// each visit: the benchmark is the clock, faster than real time on a settable time.
//
// Reported, per recorded packet: clock-ns/pkt, the benchmark thread's CPU (RUSAGE_THREAD) in
// the visits — placing, decoding, the write(2)s and header rewrites; tap-ns/pkt, its CPU in
// the taps (the packet path's share); proc-ns/pkt, the whole process's CPU over the ops (the
// sync workers' fsyncs and the GC included). Allocations are per op (10,000 packets at 1,000
// calls). System calls: run the test binary under strace -f -c with two -benchtime counts and
// take the difference (the setup — 1,000 files created, journaled and finished — cancels).
func BenchmarkClockVisits(b *testing.B) {
	for _, c := range []media.Codec{media.PCMU, media.PCMA} {
		b.Run(c.String(), func(b *testing.B) { benchClockVisits(b, c) })
	}
}

func benchClockVisits(b *testing.B, codec media.Codec) {
	calls := 1000
	if n, err := strconv.Atoi(os.Getenv(envClockBenchCalls)); err == nil && n > 0 {
		calls = n
	}
	clk := newClock()
	s := newService(b, Options{Now: clk.Now})
	ctx := ctxTimeout(b)
	base := clk.Now()
	type call struct {
		w           *Writer
		left, right media.Tap
	}
	cs := make([]call, calls)
	for i := range cs {
		w, err := s.Start(ctx, "call-clock-bench-"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = call{w: w, left: w.CallerTap(), right: w.AgentTap()}
	}
	s.clock.timer.Stop() // the benchmark is the clock
	var frames [50][2][]byte
	for k := range frames {
		frames[k][0], frames[k][1] = toneFrame(codec, 440, k), toneFrame(codec, 880, k)
	}
	pt := codec.PayloadType()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var k int // frames fed each way so far
	var tapCPU, clockCPU time.Duration
	proc0 := processCPU(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := threadCPU(b)
		for range 5 {
			at := base.Add(time.Duration(k) * 20 * time.Millisecond)
			f := &frames[k%50]
			for i := range cs {
				ssrc := uint32(2*i + 1)
				cs[i].left(packet(media.Received, pt, uint16(k), uint32(k*media.FrameSize), ssrc, f[0], at))
				cs[i].right(packet(media.Received, pt, uint16(k), uint32(k*media.FrameSize), ssrc+1, f[1], at))
			}
			k++
		}
		clk.Set(base.Add(time.Duration(k) * 20 * time.Millisecond))
		t1 := threadCPU(b)
		s.onClock()
		s.clock.timer.Stop()
		t2 := threadCPU(b)
		tapCPU += t1 - t0
		clockCPU += t2 - t1
	}
	b.StopTimer()
	proc := processCPU(b) - proc0
	pkts := float64(b.N) * 10 * float64(calls)
	b.ReportMetric(float64(clockCPU.Nanoseconds())/pkts, "clock-ns/pkt")
	b.ReportMetric(float64(tapCPU.Nanoseconds())/pkts, "tap-ns/pkt")
	b.ReportMetric(float64(proc.Nanoseconds())/pkts, "proc-ns/pkt")
	for i := range cs {
		res, err := cs[i].w.Finish(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 && (res.Dropped != 0 || res.Late != 0) {
			b.Fatalf("the benchmark's recording dropped %d and lost %d late packets", res.Dropped, res.Late)
		}
	}
	s.onClock() // drops the finished recordings and disarms
}
