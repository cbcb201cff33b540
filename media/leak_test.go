package media

import (
	"os"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Rule: after 200 bridged endpoints (100 calls) carrying RTP are closed, no goroutine is left
// and every port is back in the allocator.
func TestNoGoroutineLeakAfter200Endpoints(t *testing.T) {
	defer goleak.VerifyNone(t)
	alloc := testAllocator(t, 256)
	p := newPeer(t)
	for i := range 100 {
		a, err := NewEndpoint(EndpointOptions{Allocator: alloc, RTCPInterval: 10 * time.Millisecond, MediaTimeout: time.Second, SignalSource: loopback})
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewEndpoint(EndpointOptions{Allocator: alloc, RTCPInterval: 10 * time.Millisecond, MediaTimeout: time.Second, SignalSource: loopback})
		if err != nil {
			t.Fatal(err)
		}
		a.SetCodec(0, PCMU)
		b.SetCodec(0, PCMU)
		b.SetRemote(p.addr())
		if _, err := Bridge(a, b); err != nil {
			t.Fatal(err)
		}
		tap := newTapper(a)
		p.send(a.LocalAddr(), audio(0, uint16(i), 160, 1, 0xFF))
		tap.until(t, uint16(i))
		if i%2 == 0 { // close in both orders
			a.Close()
			b.Close()
		} else {
			b.Close()
			a.Close()
		}
	}
	if n := alloc.InUse(); n != 0 {
		t.Errorf("%d port pairs still allocated", n)
	}
}

// Rule (issue 18): a live endpoint costs no goroutine of its own (its sockets are read by the
// allocator's few readers, recv_linux.go; its timers are time.AfterFunc; its buffers pooled)
// and two file descriptors, and closing calls gives both back: over rounds of setting up and
// tearing down bridged calls carrying RTP, the goroutine and descriptor counts stay within the
// readers' few and return to where they started (the readers end with their last socket).
func TestCallsReturnGoroutinesAndFDsToBaseline(t *testing.T) {
	const calls, rounds = 20, 5
	// Room for a round's ports whose cancelled receives a ring still holds (a loop's round).
	alloc := testAllocator(t, 4*calls)
	p := newPeer(t)
	fds := func() int {
		es, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(es)
	}
	settled := func(want int) int { // goroutines, once transient ones (timer callbacks) are gone
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(wait); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(5 * time.Millisecond)
		}
		return n
	}
	baseG, baseFD := runtime.NumGoroutine(), fds()
	for round := range rounds {
		var eps []*Endpoint
		for i := range calls {
			var pair [2]*Endpoint
			for j := range pair {
				e, err := NewEndpoint(EndpointOptions{Allocator: alloc, RTCPInterval: 10 * time.Millisecond,
					MediaTimeout: time.Second, SignalSource: loopback})
				if err != nil {
					t.Fatal(err)
				}
				e.SetCodec(0, PCMU)
				pair[j] = e
				eps = append(eps, e)
			}
			pair[1].SetRemote(p.addr())
			if _, err := Bridge(pair[0], pair[1]); err != nil {
				t.Fatal(err)
			}
			tap := newTapper(pair[0])
			p.send(pair[0].LocalAddr(), audio(0, uint16(i), 160, 1, 0xFF))
			tap.until(t, uint16(i))
		}
		loops := alloc.rx.maxReaders(2 * len(eps))
		if g := settled(baseG + loops); g-baseG > loops {
			t.Errorf("round %d: %d goroutines for %d live endpoints, want at most %d (the readers)", round, g-baseG, len(eps), loops)
		}
		// A reader holds an epoll descriptor and, where the kernel allows it, an io_uring to
		// send through — or a receive ring, its eventfd, its park set (epoll) and the send ring.
		if fd := fds(); fd-baseFD < 2*len(eps) || fd-baseFD > 2*len(eps)+4*loops {
			t.Errorf("round %d: %d file descriptors for %d live endpoints, want 2 each and at most %d for the readers", round, fd-baseFD, len(eps), 4*loops)
		}
		for _, e := range eps {
			e.Close()
		}
		if g := settled(baseG); g > baseG {
			t.Errorf("round %d: %d goroutines after closing every call, want at most %d", round, g, baseG)
		}
		if fd := fds(); fd != baseFD {
			t.Errorf("round %d: %d file descriptors after closing every call, want %d", round, fd, baseFD)
		}
	}
}

// Race (run under -race): an endpoint's timers are time.AfterFunc callbacks sharing a mutex
// with the configuration changes that re-check the media timeout and with Close, which sends
// the RTCP BYE. Re-INVITEs (SetRemote, SetDirection), 1 ms RTCP reports, 5 ms media timeouts
// and Close all at once: nothing races, nothing deadlocks, Close returns, and no timer callback
// outlives the endpoint (goleak in TestMain).
func TestEndpointTimersRaceConfigurationAndClose(t *testing.T) {
	alloc := testAllocator(t, 16)
	p := newPeer(t)
	for range 20 {
		e, err := NewEndpoint(EndpointOptions{Allocator: alloc, RTCPInterval: time.Millisecond,
			MediaTimeout: 5 * time.Millisecond, HoldTimeout: 3 * time.Millisecond, SignalSource: loopback})
		if err != nil {
			t.Fatal(err)
		}
		e.SetRemote(p.addr())
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e.SetDirection(Direction(i % 4))
				e.SetRemote(p.addr())
			}
		}()
		time.Sleep(3 * time.Millisecond)
		closed := make(chan struct{})
		go func() { e.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(wait):
			t.Fatal("Close did not return while configuration changes and timers ran")
		}
		close(stop)
		<-done
	}
}

// Rule (issue 18): calls come and go without leaving anything behind. Over 20 rounds of 20
// bridged calls, each carrying RTP both ways with RTCP and a tap, then closed, the goroutines
// return to the baseline after every round and the live heap after the last round is within
// 256 KiB of the heap after the second (a leak of one receive batch, watch, timer or tap per
// call, 1 KiB or more, adds at least 360 KiB over the 18 rounds that follow; the first round
// fills what is filled once, and two collections empty the pools' victim caches).
func TestManyCallsLeaveGoroutinesAndHeapFlat(t *testing.T) {
	const calls, rounds = 20, 20
	// Room for a round's ports whose cancelled receives the ring still holds (a loop's round).
	alloc := testAllocator(t, 4*calls)
	p := newPeer(t)
	settled := func(want int) int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(wait); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(5 * time.Millisecond)
		}
		return n
	}
	live := func() uint64 {
		runtime.GC() // twice: what a sync.Pool held survives one collection (its victim cache)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	baseG := runtime.NumGoroutine()
	var first uint64
	for round := range rounds {
		var eps []*Endpoint
		for i := range calls {
			var pair [2]*Endpoint
			for j := range pair {
				e, err := NewEndpoint(EndpointOptions{Allocator: alloc, RTCPInterval: 5 * time.Millisecond,
					MediaTimeout: time.Second, SignalSource: loopback})
				if err != nil {
					t.Fatal(err)
				}
				e.SetCodec(0, PCMU)
				e.SetRemote(p.addr())
				e.OnMediaTimeout(func(error) {})
				pair[j] = e
				eps = append(eps, e)
			}
			if _, err := Bridge(pair[0], pair[1]); err != nil {
				t.Fatal(err)
			}
			tap := newTapper(pair[1])
			for k := range 3 {
				p.send(pair[0].LocalAddr(), audio(0, uint16(k), uint32(k)*160, uint32(i+1), 0xFF))
			}
			tap.next(t, Sent) // forwarded through the bridge
		}
		for _, e := range eps {
			e.Close()
		}
		if g := settled(baseG); g > baseG {
			t.Fatalf("round %d: %d goroutines after closing every call, want at most %d", round, g, baseG)
		}
		if n := alloc.InUse(); n != 0 {
			t.Fatalf("round %d: %d port pairs still allocated", round, n)
		}
		if round == 1 { // after the first round filled what is filled once (pools, tables)
			first = live()
		}
	}
	last := live()
	t.Logf("live heap %d KiB after round 2, %d KiB after round %d", first>>10, last>>10, rounds)
	if last > first+256<<10 {
		t.Errorf("live heap %d KiB after %d rounds, %d KiB after the second: calls leave memory behind",
			last>>10, rounds, first>>10)
	}
}
