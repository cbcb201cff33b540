package media

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// forwardingPair is a carrier endpoint bridged to an agent endpoint that sends to a UDP sink,
// with taps on both (as when recording), and one received PCMA packet to push through.
func forwardingPair(tb testing.TB) (in *Endpoint, pkt []byte, src netip.AddrPort) {
	alloc := testAllocator(tb, 4)
	a := newTestEndpoint(tb, EndpointOptions{Allocator: alloc, MediaTimeout: -1})
	b := newTestEndpoint(tb, EndpointOptions{Allocator: alloc, MediaTimeout: -1})
	a.SetCodec(8, PCMA)
	b.SetCodec(0, PCMU) // exercise the μ-law/A-law conversion too
	b.SetRemote(newPeer(tb).addr())
	var tapped int
	tap := func(p TapPacket) { tapped += len(p.Payload) }
	a.AddTap(tap)
	b.AddTap(tap)
	if _, err := Bridge(a, b); err != nil {
		tb.Fatal(err)
	}
	pkt, _ = audio(8, 1, 160, 0x1234, 0xD5).Marshal()
	return a, pkt, netip.MustParseAddrPort("127.0.0.1:40000")
}

// Rule: no allocation per packet on the forwarding path (receive, stats, tap, rewrite, send).
func TestForwardDoesNotAllocate(t *testing.T) {
	a, pkt, src := forwardingPair(t)
	seq := uint16(1)
	step := func() {
		seq++
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		a.handleRTP(pkt, src, time.Now(), nil)
	}
	step() // the first packet latches (one allocation, once per call)
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Errorf("%v allocations per forwarded packet, want 0", n)
	}
	if a.Stats().PacketsReceived < 1000 {
		t.Errorf("only %d packets went through", a.Stats().PacketsReceived)
	}
}

// BenchmarkForward measures one packet through the bridge: parse, latch check, RFC 3550 stats,
// tap, rewrite with A-law → μ-law conversion, and the sendto(2) towards the far peer.
func BenchmarkForward(b *testing.B) {
	a, pkt, src := forwardingPair(b)
	b.ReportAllocs()
	seq := uint16(0)
	for b.Loop() {
		seq++
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		a.handleRTP(pkt, src, time.Now(), nil)
	}
}

// BenchmarkParseRTP measures the header parser alone.
func BenchmarkParseRTP(b *testing.B) {
	pkt, _ := audio(0, 1, 160, 7, 0xFF).Marshal()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseRTP(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleLoopWakeLatency measures how long a datagram waits, on a lightly loaded receiver
// (four sockets at 50 packets a second each, so its loops park between packets), from its
// sendto(2) until its handler runs: each op is one 20 ms tick, a datagram to each socket. It
// reports the median, the 99th percentile and the worst wait in milliseconds. Run it with
// SWITCHBOARD_MEDIA_RECEIVE=epoll too: session 17 found the ring's parked loops woken 8–16 ms
// late through an eventfd registered with the ring (BENCHMARKS.md), where epoll's took under
// 1 ms. go test -run '^$' -bench IdleLoopWakeLatency -benchtime 250x ./media/
func BenchmarkIdleLoopWakeLatency(b *testing.B) {
	const socks = 4
	alloc := testAllocator(b, socks)
	p := newPeer(b)
	var sent [socks]atomic.Int64
	waits := make(chan time.Duration, socks*b.N)
	var ws []*watch
	var pps []PortPair
	for i := range socks {
		pp, err := alloc.Allocate()
		if err != nil {
			b.Fatal(err)
		}
		pps = append(pps, pp)
		w, err := alloc.rx.watch(alloc.slot(pp.Port), pp.RTP, func([]byte, netip.AddrPort, time.Time, *txBatch) {
			select {
			case waits <- time.Duration(time.Now().UnixNano() - sent[i].Load()):
			default:
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, w)
	}
	defer func() {
		for _, w := range ws {
			alloc.rx.unwatch(w)
		}
		for _, pp := range pps {
			alloc.Release(pp)
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for range b.N {
		<-tick.C
		for i, pp := range pps {
			sent[i].Store(time.Now().UnixNano())
			if _, err := p.conn.WriteToUDPAddrPort([]byte{1}, netip.AddrPortFrom(loopback, uint16(pp.Port))); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // the last tick's datagrams
	b.StopTimer()
	close(waits)
	var all []time.Duration
	for d := range waits {
		all = append(all, d)
	}
	if len(all) == 0 {
		b.Fatal("no datagram handled")
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(all[len(all)/2]), "p50_ms")
	b.ReportMetric(ms(all[len(all)*99/100]), "p99_ms")
	b.ReportMetric(ms(all[len(all)-1]), "max_ms")
	b.ReportMetric(float64(len(all))/float64(socks*b.N), "handled/sent")
}
