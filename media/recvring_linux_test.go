//go:build linux

package media

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ringOnly skips a test about the receive ring where the loops receive with epoll.
func ringOnly(t *testing.T) {
	t.Helper()
	if os.Getenv(ReceiveEnv) == "epoll" {
		t.Skipf("%s=epoll", ReceiveEnv)
	}
	if path, err := ReceivePath(); path != "io_uring" {
		t.Skipf("no multishot receive ring here: %v", err)
	}
}

// Rule: a ring loop that runs out of receive buffers loses nothing. With 8 buffers (a batch of
// one socket an Enter) and 40 sockets holding 12 datagrams each before they are watched — more
// than the buffers — the receives that found no buffer end (ENOBUFS) and are armed again, and
// every datagram is handled, each socket's in order.
func TestRingLoopOutOfBuffersArmsAgainAndLosesNothing(t *testing.T) {
	ringOnly(t)
	defer func(n uint16) { ringBufs = n }(ringBufs)
	ringBufs = 8
	const sockets, each = 40, 12
	alloc := testAllocator(t, sockets)
	alloc.rx.loops = make([]*pollLoop, 1)
	p := newPeer(t)
	var pps []PortPair
	for range sockets {
		pp, err := alloc.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer alloc.Release(pp)
		pps = append(pps, pp)
		for k := range each {
			p.conn.WriteToUDPAddrPort([]byte{byte(k)}, netip.AddrPortFrom(loopback, uint16(pp.Port)))
		}
	}
	before := receiveRearms.Load()
	var got atomic.Int64
	var disorder atomic.Bool
	progress := make(chan struct{}, 1)
	for _, pp := range pps {
		next := 0 // the handler's own: called on the loop goroutine only
		w, err := alloc.rx.watch(alloc.slot(pp.Port), pp.RTP, func(b []byte, _ netip.AddrPort, _ time.Time, _ *txBatch) {
			if len(b) != 1 || int(b[0]) != next {
				disorder.Store(true)
			}
			next++
			got.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer alloc.rx.unwatch(w)
	}
	deadline := time.After(wait)
	for got.Load() < sockets*each {
		select {
		case <-progress:
		case <-deadline:
			t.Fatalf("handled %d of %d datagrams", got.Load(), sockets*each)
		}
	}
	if disorder.Load() {
		t.Error("a socket's datagrams were handled out of order or garbled")
	}
	if receiveRearms.Load() == before {
		t.Error("no receive ran out of buffers: the test did not test that")
	}
}

// Rule: unwatching races the loop's rounds safely. A sprayer keeps 16 sockets of one loop busy
// while 300 times one of them is unwatched, its port released and another watched: no handler
// runs after its unwatch returned, and no datagram reaches the handler of another socket (each
// names the port it was sent to). Under -race; with the cancellation's wait removed from
// unwatch it fails.
func TestUnwatchRacingRoundsIsSafe(t *testing.T) {
	const live, swaps = 16, 300
	alloc := testAllocator(t, live+4)
	alloc.rx.loops = make([]*pollLoop, 1)
	p := newPeer(t)
	type slotState struct {
		port      int
		w         *watch
		pp        PortPair
		unwatched *atomic.Bool
	}
	var bad, late, handled atomic.Int64
	watchOne := func() slotState {
		pp, err := alloc.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		var done atomic.Bool
		port := pp.Port
		w, err := alloc.rx.watch(alloc.slot(port), pp.RTP, func(b []byte, _ netip.AddrPort, _ time.Time, _ *txBatch) {
			if done.Load() {
				late.Add(1)
			}
			if len(b) != 2 || int(binary.BigEndian.Uint16(b)) != port {
				bad.Add(1)
			}
			handled.Add(1)
		})
		if err != nil {
			t.Fatal(err)
		}
		return slotState{port: port, w: w, pp: pp, unwatched: &done}
	}
	var mu sync.Mutex // the slots and their ports, for the sprayer
	slots := make([]slotState, live)
	for i := range slots {
		slots[i] = watchOne()
	}
	stop := make(chan struct{})
	sprayed := make(chan struct{})
	go func() {
		defer close(sprayed)
		var ports [live]int
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			for i := range slots {
				ports[i] = slots[i].port
			}
			mu.Unlock()
			for _, port := range ports {
				var b [2]byte
				binary.BigEndian.PutUint16(b[:], uint16(port))
				p.conn.WriteToUDPAddrPort(b[:], netip.AddrPortFrom(loopback, uint16(port)))
			}
			if n%8 == 7 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	for range swaps {
		i := rand.IntN(live)
		mu.Lock()
		old := slots[i]
		mu.Unlock()
		alloc.rx.unwatch(old.w)
		old.unwatched.Store(true)
		alloc.Release(old.pp)
		nw := watchOne()
		mu.Lock()
		slots[i] = nw
		mu.Unlock()
	}
	close(stop)
	<-sprayed
	for _, s := range slots {
		alloc.rx.unwatch(s.w)
		alloc.Release(s.pp)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d datagrams handled after their socket's unwatch returned", n)
	}
	if n := bad.Load(); n != 0 {
		t.Errorf("%d datagrams reached the handler of another socket", n)
	}
	if handled.Load() == 0 {
		t.Error("nothing was handled: the test did not test that")
	}
}
