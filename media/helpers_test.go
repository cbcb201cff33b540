package media

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every await in these tests.
const wait = 5 * time.Second

var loopback = netip.MustParseAddr("127.0.0.1")

// testAllocator returns an allocator over a random range of pairs even ports on 127.0.0.1
// (ports held by anyone else are skipped by the allocator itself).
func testAllocator(t testing.TB, pairs int) *PortAllocator {
	t.Helper()
	// Below Linux's ephemeral range (32768+), where other processes' sockets come and go; the
	// size is exact, as the port tests count on it. Probed free (other tests' and benchmarks'
	// gateways hold thousands of ports there: a base drawn blindly failed
	// TestManySocketsAreReadByAFewGoroutines with "no free RTP port pair" on a loaded machine).
	base := testport.FreeRange(t, 21000, 31000, 2*pairs)
	a, err := NewPortAllocator(loopback, base, base+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// newTestEndpoint starts an endpoint closed at the end of the test.
func newTestEndpoint(t testing.TB, opts EndpointOptions) *Endpoint {
	t.Helper()
	if opts.Allocator == nil {
		opts.Allocator = testAllocator(t, 8)
	}
	// RTCP is off unless a test asks for it (RTCPInterval 0). The learning window is on, as on
	// a SIP leg, unless a test turns it off with a negative one.
	if opts.LearningWindow == 0 {
		opts.LearningWindow = DefaultLearningWindow
	}
	if !opts.SignalSource.IsValid() {
		// The peers of these tests are loopback sockets, as if they had signalled from there:
		// their RTP latches at once (strict source, source.go). The attack tests set their own.
		opts.SignalSource = loopback
	}
	e, err := NewEndpoint(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// peer is a plain UDP socket standing in for a phone or carrier.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c}
}

// peerPair is a raw peer's RTP socket and its RTCP socket on the next port, both on loopback
// and read through the net package (the allocator's sockets are bare descriptors on Linux).
type peerPair struct {
	Port      int
	RTP, RTCP *net.UDPConn
}

// newPeerPair binds a pair of consecutive loopback ports (a bounded number of tries: the port
// after one the kernel chose may be taken).
func newPeerPair(t testing.TB) peerPair {
	t.Helper()
	for range 100 {
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
		if err != nil {
			t.Fatal(err)
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port < 65535 {
			rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(port+1))))
			if err == nil {
				t.Cleanup(func() { rtp.Close(); rtcp.Close() })
				return peerPair{Port: port, RTP: rtp, RTCP: rtcp}
			}
		}
		rtp.Close()
	}
	t.Fatal("no two consecutive free loopback ports in 100 tries")
	return peerPair{}
}

func (p *peer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *peer) send(to netip.AddrPort, pkt *rtp.Packet) {
	p.t.Helper()
	b, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// recv awaits one RTP packet (fails the test after wait).
func (p *peer) recv() *rtp.Packet {
	p.t.Helper()
	buf := make([]byte, 1500)
	p.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("peer %s: no packet: %v", p.addr(), err)
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(buf[:n]); err != nil {
		p.t.Fatalf("peer got a non-RTP packet: %v", err)
	}
	return &pkt
}

// audio builds a PCMU packet of a 160-byte frame filled with fill.
func audio(pt uint8, seq uint16, ts, ssrc uint32, fill byte) *rtp.Packet {
	payload := make([]byte, FrameSize)
	for i := range payload {
		payload[i] = fill
	}
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: payload}
}

// tapper collects an endpoint's tapped packets in a channel.
type tapper chan TapPacket

func newTapper(e *Endpoint) tapper {
	ch := make(tapper, 1024)
	e.AddTap(func(p TapPacket) {
		p.Payload = append([]byte(nil), p.Payload...)
		select {
		case ch <- p:
		default:
		}
	})
	return ch
}

// next awaits the next tapped packet of the given flow.
func (tp tapper) next(t testing.TB, flow Flow) TapPacket {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case p := <-tp:
			if p.Flow == flow {
				return p
			}
		case <-timer.C:
			t.Fatalf("no tapped packet (flow %d) within %s", flow, wait)
		}
	}
}

// until awaits a received packet with sequence seq on the tap (older ones are skipped).
func (tp tapper) until(t testing.TB, seq uint16) TapPacket {
	t.Helper()
	for range 10000 {
		p := tp.next(t, Received)
		if p.Sequence == seq {
			return p
		}
	}
	t.Fatalf("sequence %d never tapped", seq)
	return TapPacket{}
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func bytesOf(n int, fill byte) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{fill}, n)) }

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}
