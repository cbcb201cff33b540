package media

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counter counts what a watch handed to its handler, and who sent it.
type counter struct {
	got      atomic.Int64
	last     atomic.Int64
	badSrc   atomic.Bool
	from     netip.AddrPort
	progress chan struct{}
}

func newCounter(from netip.AddrPort) *counter {
	return &counter{from: from, progress: make(chan struct{}, 1)}
}

func (c *counter) handle(b []byte, src netip.AddrPort, _ time.Time, _ *txBatch) {
	if src != c.from || len(b) != 1 {
		c.badSrc.Store(true)
	}
	c.last.Store(int64(b[0]))
	c.got.Add(1)
	select {
	case c.progress <- struct{}{}:
	default:
	}
}

// await waits until n datagrams were handled.
func (c *counter) await(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(wait)
	for c.got.Load() < n {
		select {
		case <-c.progress:
		case <-deadline:
			t.Fatalf("handled %d datagrams, want %d", c.got.Load(), n)
		}
	}
}

// Rule: a socket's reader parks after a batch that came back short of full, without the
// EAGAIN read, and reads at most maxDrain batches of one socket per wake-up (a flooded port
// must not starve the others) — and loses nothing by either: a backlog of more than one
// wake-up's worth, queued before the socket is watched and with nothing arriving after it, is
// all handled (a reader that forgot to re-arm the socket it left with data would stop at
// maxDrain batches), and a datagram arriving after the reader parked wakes it.
func TestReceiverDrainsABacklogAndWakesForTheNext(t *testing.T) {
	alloc := testAllocator(t, 2)
	pp, err := alloc.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Release(pp)
	to := netip.AddrPortFrom(loopback, uint16(pp.Port))
	p := newPeer(t)
	const backlog = 100 // more than maxDrain × recvBatch (32) on Linux
	for i := range backlog {
		if _, err := p.conn.WriteToUDPAddrPort([]byte{byte(i)}, to); err != nil {
			t.Fatal(err)
		}
	}
	c := newCounter(p.addr())
	w, err := alloc.rx.watch(alloc.slot(pp.Port), pp.RTP, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.rx.unwatch(w)
	c.await(t, backlog)
	// The reader is parked now (or about to): one more must wake it.
	time.Sleep(20 * time.Millisecond) // not a synchronisation: gives the reader time to park
	if _, err := p.conn.WriteToUDPAddrPort([]byte{200}, to); err != nil {
		t.Fatal(err)
	}
	c.await(t, backlog+1)
	if c.last.Load() != 200 || c.badSrc.Load() {
		t.Errorf("last datagram %d (want 200), a source not the peer's or a wrong length: %v", c.last.Load(), c.badSrc.Load())
	}
}

// Rule (issue 18): the sockets of many legs are read by a few goroutines (one per GOMAXPROCS
// at most), not one goroutine per socket, and every socket's datagrams reach its own handler;
// once the last socket is unwatched the readers end.
func TestManySocketsAreReadByAFewGoroutines(t *testing.T) {
	const pairs = 64
	alloc := testAllocator(t, pairs)
	p := newPeer(t)
	base := runtime.NumGoroutine()
	var pps []PortPair
	var ws []*watch
	var cs []*counter
	for range pairs {
		pp, err := alloc.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		pps = append(pps, pp)
		for j, conn := range []*Socket{pp.RTP, pp.RTCP} {
			c := newCounter(p.addr())
			w, err := alloc.rx.watch(alloc.slot(pp.Port+j), conn, c.handle)
			if err != nil {
				t.Fatal(err)
			}
			ws, cs = append(ws, w), append(cs, c)
		}
	}
	if n, most := settledGoroutines(base+alloc.rx.maxReaders(len(ws)))-base, alloc.rx.maxReaders(len(ws)); n > most {
		t.Errorf("%d sockets are read by %d goroutines, want at most %d", len(ws), n, most)
	}
	for round := range 3 {
		for i, pp := range pps {
			for j, port := range []int{pp.Port, pp.Port + 1} {
				if _, err := p.conn.WriteToUDPAddrPort([]byte{byte(2*i + j)}, netip.AddrPortFrom(loopback, uint16(port))); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i, c := range cs {
			c.await(t, int64(round+1))
			if c.last.Load() != int64(i) || c.badSrc.Load() {
				t.Fatalf("socket %d handled datagram %d (want %d), bad source %v", i, c.last.Load(), i, c.badSrc.Load())
			}
		}
	}
	for _, w := range ws {
		alloc.rx.unwatch(w)
	}
	for _, pp := range pps {
		alloc.Release(pp)
	}
	if n := settledGoroutines(base); n > base {
		t.Errorf("%d goroutines after every socket was unwatched, %d before", n, base)
	}
}

// settledGoroutines is the goroutine count once it is at most want, or after wait: an earlier
// test's timer callback may still be finishing.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(wait); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// Rule: when unwatch returns, the socket's handler is not running and is never called again,
// so the endpoint may close its socket and its channels. The test holds the handler inside a
// datagram while unwatch is called: unwatch must wait for it, and no datagram sent afterwards
// may reach the handler. Looped with traffic on other sockets of the same reader, under -race.
func TestUnwatchWaitsForARunningHandlerAndEndsIt(t *testing.T) {
	alloc := testAllocator(t, 4)
	p := newPeer(t)
	other, err := alloc.Allocate() // keeps the reader busy with another socket meanwhile
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Release(other)
	oc := newCounter(p.addr())
	ow, err := alloc.rx.watch(alloc.slot(other.Port), other.RTP, oc.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.rx.unwatch(ow)
	for round := range 50 {
		pp, err := alloc.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		entered, release := make(chan struct{}), make(chan struct{})
		var calls, after atomic.Int64
		var unwatched atomic.Bool
		var once sync.Once
		w, err := alloc.rx.watch(alloc.slot(pp.Port), pp.RTP, func([]byte, netip.AddrPort, time.Time, *txBatch) {
			if unwatched.Load() {
				after.Add(1)
			}
			calls.Add(1)
			once.Do(func() { close(entered); <-release })
		})
		if err != nil {
			t.Fatal(err)
		}
		to := netip.AddrPortFrom(loopback, uint16(pp.Port))
		for range 3 {
			p.conn.WriteToUDPAddrPort([]byte{1}, to)
			p.conn.WriteToUDPAddrPort([]byte{2}, netip.AddrPortFrom(loopback, uint16(other.Port)))
		}
		select {
		case <-entered:
		case <-time.After(wait):
			t.Fatalf("round %d: the handler was never called", round)
		}
		done := make(chan struct{})
		go func() {
			alloc.rx.unwatch(w)
			unwatched.Store(true)
			close(done)
		}()
		select {
		case <-done:
			t.Fatalf("round %d: unwatch returned while the handler was running", round)
		case <-time.After(time.Millisecond):
		}
		close(release)
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatalf("round %d: unwatch did not return after the handler did", round)
		}
		p.conn.WriteToUDPAddrPort([]byte{3}, to)
		alloc.Release(pp)
		if n := after.Load(); n != 0 {
			t.Fatalf("round %d: the handler was called %d times after unwatch returned", round, n)
		}
	}
	if oc.got.Load() == 0 {
		t.Error("the other socket's datagrams were not handled")
	}
}

// Rule: the sender writes to the RTP socket's descriptor itself (recv_linux.go, rawSender), so
// it must speak the socket's family: an allocator bound to a wildcard address gets dual-stack
// IPv6 sockets from the net package, which reach an IPv4 peer through a v4-mapped address. A
// call bridged on 0.0.0.0 and on :: forwards between IPv4 peers (127.0.0.1) both ways.
func TestForwardingFromWildcardSocketsReachesIPv4Peers(t *testing.T) {
	for _, addr := range []string{"0.0.0.0", "::"} {
		t.Run(addr, func(t *testing.T) {
			base := 21000 + 2*rand.IntN(5000)
			alloc, err := NewPortAllocator(netip.MustParseAddr(addr), base, base+7)
			if err != nil {
				t.Fatal(err)
			}
			a := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
			b := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
			if _, err := Bridge(a, b); err != nil {
				t.Fatal(err)
			}
			pa, pb := newPeer(t), newPeer(t)
			for i, e := range []*Endpoint{a, b} {
				e.SetCodec(0, PCMU)
				e.SetRemote([]*peer{pa, pb}[i].addr())
			}
			to := func(e *Endpoint) netip.AddrPort { return netip.AddrPortFrom(loopback, e.LocalAddr().Port()) }
			pa.send(to(a), audio(0, 1, 160, 7, 0x11))
			if p := pb.recv(); p.SSRC != b.SSRC() || p.Payload[0] != 0x11 {
				t.Fatalf("b forwarded SSRC %d payload %#x", p.SSRC, p.Payload[0])
			}
			pb.send(to(b), audio(0, 1, 160, 8, 0x22))
			if p := pa.recv(); p.SSRC != a.SSRC() || p.Payload[0] != 0x22 {
				t.Fatalf("a forwarded SSRC %d payload %#x", p.SSRC, p.Payload[0])
			}
		})
	}
}

// A busy loop's round that begins over stallAfter after the previous one began counts as a
// stall, with its length; a round after parking (last zero) or on time does not.
func TestStallCheckCountsOnlyLateRoundsOfABusyLoop(t *testing.T) {
	n0, s0 := loopStalls.Load(), loopStallNanos.Load()
	now := time.Now()
	stallCheck(time.Time{}, now)
	stallCheck(now.Add(-coalesceWindow), now)
	stallCheck(now.Add(-stallAfter), now)
	if n, s := loopStalls.Load()-n0, loopStallNanos.Load()-s0; n != 0 || s != 0 {
		t.Fatalf("stalls %d (%d ns) for rounds on time, want 0", n, s)
	}
	stallCheck(now.Add(-300*time.Millisecond), now)
	if n, s := loopStalls.Load()-n0, loopStallNanos.Load()-s0; n != 1 || s != uint64(300*time.Millisecond) {
		t.Errorf("stalls %d (%d ns) after a 300 ms gap, want 1 (300 ms)", n, s)
	}
}
