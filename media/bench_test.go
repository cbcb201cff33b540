package media

import (
	"encoding/binary"
	"net/netip"
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
