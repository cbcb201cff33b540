package sip

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// TestNoLeaksAfter200Calls runs 200 bridged calls (SIPp -m 200 -r 50) and checks that
// goroutines and open file descriptors return to their baseline, during the run's aftermath
// and after Close (goleak).
func TestNoLeaksAfter200Calls(t *testing.T) {
	requireSipp(t)
	ignore := goleak.IgnoreCurrent()
	baseFDs := openFDs(t)
	baseG := runtime.NumGoroutine()
	func() {
		b := newBridgeSetup(t, "uas_echo.xml", []string{"-m", "200"}, nil)
		gwG := runtime.NumGoroutine()
		gwFDs := openFDs(t)
		// 20 calls/s: a leak check, not a load test. At 50/s a race-built gateway on a busy
		// 2-core machine answered late, SIPp retransmitted INVITEs and failed the run on them.
		b.carrier(t, "uac_basic.xml", "-m", "200", "-r", "20", "-d", "100", "-l", "100").wait(t)
		b.desk.wait(t)
		ended := 0
		waitFor(30*time.Second, func() bool {
			for {
				select {
				case e := <-b.g.sink.ch:
					if e.Type == callevent.EventEnded {
						ended++
					}
				default:
					return ended == 200
				}
			}
		})
		if ended != 200 {
			t.Fatalf("%d calls ended, want 200", ended)
		}
		if v := b.g.counter("switchboard_calls_total", "outcome", "answered"); v != 200 {
			t.Errorf("answered calls = %v", v)
		}
		// With the server still running, the calls' goroutines and sockets are gone. sipgo
		// keeps finished server transactions for their timers (no goroutine), so a small margin.
		if !waitFor(40*time.Second, func() bool { return runtime.NumGoroutine() <= gwG+5 }) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Errorf("goroutines %d, baseline with gateway %d\n%s", runtime.NumGoroutine(), gwG, tail(string(buf[:n]), 8000))
		}
		if !waitFor(10*time.Second, func() bool { return openFDs(t) <= gwFDs+2 }) {
			t.Errorf("open fds %d, baseline with gateway %d", openFDs(t), gwFDs)
		}
		b.g.s.Close()
	}()
	if !waitFor(20*time.Second, func() bool { return runtime.NumGoroutine() <= baseG+2 }) {
		t.Errorf("goroutines after Close %d, baseline %d", runtime.NumGoroutine(), baseG)
	}
	if !waitFor(10*time.Second, func() bool { return openFDs(t) <= baseFDs+2 }) {
		t.Errorf("open fds after Close %d, baseline %d", openFDs(t), baseFDs)
	}
	goleak.VerifyNone(t, ignore)
}

// TestByeBetweenAnswerAndBridgeEndsCallAnswered: the caller hangs up right after the answer,
// before the gateway bridged the media (seen under load in TestNoLeaksAfter200Calls). The BYE
// closed the carrier's endpoint, so the bridge cannot be made: the call must still end as
// answered (someone did answer), with no error, and the far end's leg must get its BYE.
func TestByeBetweenAnswerAndBridgeEndsCallAnswered(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", nil, func(o *Options) {
		bt := o.Lines[0].Target.(*BridgeTarget)
		bt.beforeBridge = func(c *Call) {
			// Hold the bridge until the caller's BYE has ended the carrier leg.
			waitFor(10*time.Second, c.carrier.isEnded)
		}
	})
	p := newUDPPeer(t, b.g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	ok := p.recvUntil(15*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200 for the INVITE")
	}
	p.send(ackFor(b.g.port(), ok, 1))
	p.send(byeFor(b.g.port(), ok, 2))
	if e := lastOf(b.g.sink.waitEnded(t, 20*time.Second), callevent.EventEnded); e.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s, want %s", e.Outcome, callevent.OutcomeAnswered)
	}
	if v := b.g.counter("switchboard_calls_total", "outcome", "answered"); v != 1 {
		t.Errorf("answered calls = %v", v)
	}
	b.desk.wait(t) // the desk got its BYE and SIPp ended cleanly
}

// TestTalkingCallHoldsOneGoroutine: 20 bridged calls held up (SIPp -d) hold one goroutine each
// in sip — the call's own, running its target (the bridge) — and none for the call's events or
// its legs' session timers: the event queue delivers on a goroutine started on demand, the
// session timer is a time.AfterFunc (issue 18, session 7). Before, each call also held an
// emitter goroutine and a session-timer goroutine per timed leg: 3 a call here.
func TestTalkingCallHoldsOneGoroutine(t *testing.T) {
	requireSipp(t)
	const calls = 20
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-m", strconv.Itoa(calls)}, nil)
	_, gwG := goroutinesByFunc()
	car := b.carrier(t, "uac_basic.xml", "-m", strconv.Itoa(calls), "-r", "20", "-d", "8000", "-l", strconv.Itoa(calls))
	answered, ended := 0, 0
	deadline := time.After(30 * time.Second)
	for answered < calls {
		select {
		case e := <-b.g.sink.ch:
			switch e.Type {
			case callevent.EventAnswered:
				answered++
			case callevent.EventEnded:
				ended++
			}
		case <-deadline:
			t.Fatalf("%d of %d calls answered", answered, calls)
		}
	}
	if ended > 0 {
		t.Fatalf("%d calls ended before all were up: raise SIPp's -d", ended)
	}
	// The answers' events are delivered by goroutines that end once the sink took them, and
	// sipgo's INVITE transactions finish on their own: wait for the count to settle.
	// A few goroutines are the process's, started with the first call (the media plane's
	// shared RTP readers, one per CPU): 5 allowed for them.
	var perCall float64
	var summary string
	settled := waitFor(5*time.Second, func() bool {
		var n int
		summary, n = goroutinesByFunc()
		perCall = float64(n-gwG) / calls
		return n-gwG <= calls+5
	})
	if !settled {
		t.Errorf("%.2f goroutines per talking call, want 1 (the call's own); goroutines by function:\n%s", perCall, summary)
	}
	t.Logf("%.2f goroutines per talking call", perCall)
	car.wait(t)
	b.desk.wait(t)
}

// goroutinesByFunc counts the process's goroutines by the function each was started with
// (arguments left out), and reports how many of them are not the test's own SIPp processes'
// helpers (os/exec and startSipp's), which come and go with the peers.
func goroutinesByFunc() (summary string, gateway int) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	count := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(strings.TrimSpace(g), "\n")
		fn, creator := "?", "?"
		for i := len(lines) - 1; i > 0; i-- {
			if strings.HasPrefix(lines[i], "created by ") {
				creator = strings.Fields(strings.TrimPrefix(lines[i], "created by "))[0]
				fn = creator
				if i >= 2 {
					fn, _, _ = strings.Cut(strings.TrimSpace(lines[i-2]), "(0x")
					fn += " <- " + creator
				}
				break
			}
		}
		count[fn]++
		if !strings.HasPrefix(creator, "os/exec.") && !strings.Contains(creator, "sip.startSipp") {
			gateway++
		}
	}
	var out strings.Builder
	for fn, n := range count {
		fmt.Fprintf(&out, "%5d %s\n", n, fn)
	}
	return out.String(), gateway
}

// TestTalkingCallParksShallowEnoughForItsStackToShrink: the goroutine a talking bridged call
// holds (sipgo's INVITE handler, on which the call runs) must park shallow enough for the
// garbage collector to halve the 16 KiB stack its setup grew to. The runtime halves a stack
// only when what is in use plus its no-split margin (800 bytes; twice that under the race
// detector) is under a quarter of it (runtime.shrinkstack): under 3,296 bytes of 16 KiB. At
// 1,000 calls that is 8 MiB of resident memory (issue 18). Before, the call parked 5,232
// bytes deep (1,624 now) — sipgo's frames, the request dispatcher, handleInvite (now
// admitInvite), runCall and BridgeTarget.Serve, each holding the locals of its whole setup or
// teardown for the whole call — and every talking call kept 16 KiB of stack.
//
// The depth is read exactly, from a heap dump (runtime/debug.WriteHeapDump: each goroutine's
// parked sp and each frame's extent), and the stack memory per call after collections is
// logged beside it.
func TestTalkingCallParksShallowEnoughForItsStackToShrink(t *testing.T) {
	requireSipp(t)
	const calls = 10
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-m", strconv.Itoa(calls)}, nil)
	base := stacksAfterGC()
	car := b.carrier(t, "uac_basic.xml", "-m", strconv.Itoa(calls), "-r", "20", "-d", "10000", "-l", strconv.Itoa(calls))
	answered := 0
	deadline := time.After(30 * time.Second)
	for answered < calls {
		select {
		case e := <-b.g.sink.ch:
			if e.Type == callevent.EventEnded {
				t.Fatalf("a call ended before all %d were up: raise SIPp's -d", calls)
			}
			if e.Type == callevent.EventAnswered {
				answered++
			}
		case <-deadline:
			t.Fatalf("%d of %d calls answered", answered, calls)
		}
	}
	// call.answered is emitted just before the bridge parks: await every call's goroutine
	// parked in the bridge.
	const limit = 16<<10/4 - 800
	var depths map[string]int
	if !waitFor(10*time.Second, func() bool {
		depths = parkedDepths(t, "sip.(*BridgeTarget).Serve")
		return len(depths) == calls
	}) {
		t.Fatalf("%d call goroutines in the bridge, want %d", len(depths), calls)
	}
	for frames, d := range depths {
		if d >= limit {
			t.Errorf("a talking call's goroutine parks %d bytes deep, want < %d (a quarter of 16 KiB less the no-split margin); its frames:\n%s", d, limit, frames)
			break
		}
	}
	perCall := float64(int64(stacksAfterGC())-int64(base)) / calls / 1024
	t.Logf("talking calls park %v bytes deep (limit %d); %.1f KiB of goroutine stacks a call after collections (SIPp's and the test's goroutines included)", slices.Collect(maps.Values(depths)), limit, perCall)
	car.wait(t)
	b.desk.wait(t)
}

// stacksAfterGC is the runtime's goroutine stack memory after four collections: enough for a
// stack of 32 KiB to be halved twice, down to 8.
func stacksAfterGC() uint64 {
	for range 4 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.StackInuse
}

// parkedDepths writes a heap dump and returns, for every goroutine with a frame of function fn,
// the bytes of stack it uses (its outermost frame's end less its saved sp), keyed by its frames'
// names with the goroutine's id (runtime/heapdump.go's format: varints, strings as a length
// and bytes; every record up to the goroutines' is skipped by its layout).
func parkedDepths(t *testing.T, fn string) map[string]int {
	t.Helper()
	f, err := os.Create(t.TempDir() + "/heap.dump")
	if err != nil {
		t.Fatal(err)
	}
	debug.WriteHeapDump(f.Fd())
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(f)
	defer f.Close()
	hdr := make([]byte, len("go1.7 heap dump\n"))
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr) != "go1.7 heap dump\n" {
		t.Fatalf("heap dump header %q: %v", hdr, err)
	}
	uv := func() uint64 {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			t.Fatalf("heap dump: %v", err)
		}
		return v
	}
	str := func() string {
		b := make([]byte, uv())
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatalf("heap dump: %v", err)
		}
		return string(b)
	}
	skip := func(n int) {
		for range n {
			uv()
		}
	}
	fields := func() {
		for uv() != 0 { // (kind, offset) pairs up to kind 0
			uv()
		}
	}
	out := map[string]int{}
	var (
		id       uint64
		sp, end  uint64
		names    []string
		inGorout bool
	)
	done := func() {
		if !inGorout {
			return
		}
		inGorout = false
		for _, n := range names {
			if strings.Contains(n, fn) && end > sp {
				out[fmt.Sprintf("goroutine %d: %s", id, strings.Join(names, " <- "))] = int(end - sp)
				break
			}
		}
	}
	for {
		switch tag := uv(); tag {
		case 0, 9: // EOF; the OS threads, which follow the goroutines
			done()
			return out
		case 1: // object: address, contents, pointer fields
			skip(1)
			str()
			fields()
		case 3: // type: address, size, name, indirect
			skip(2)
			str()
			skip(1)
		case 4: // goroutine: g, sp, id, gopc, status, system, background, waitsince, reason, ctxt, m, defer, panic
			done()
			uv()
			sp = uv()
			id = uv()
			skip(5)
			str()
			skip(4)
			end, names, inGorout = 0, nil, true
		case 5: // stack frame: sp, depth, child sp, contents, entry, pc, continpc, name, fields
			fsp := uv()
			skip(2)
			end = max(end, fsp+uint64(len(str())))
			skip(3)
			names = append(names, str())
			fields()
		case 6: // params: big-endian, pointer size, arena start and end, arch, version, CPUs
			skip(4)
			str()
			str()
			skip(1)
		case 8: // itab: address, type
			skip(2)
		case 14: // defer: d, g, sp, pc, fn, fn's code, link
			skip(7)
		case 15: // panic: p, g, type, data, 0, link
			skip(6)
		default:
			t.Fatalf("heap dump: unknown record %d", tag)
		}
	}
}
