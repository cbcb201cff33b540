package media

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The attack tests of this file play the "RTP bleed" attacker: a sprayer on 127.0.0.2 (a
// loopback address other than the real peers' 127.0.0.1) that sends RTP with consecutive
// sequence numbers to every even port of the range and RTCP to every odd one, hoping to latch
// an endpoint before its real peer does.

var sprayAddr = netip.MustParseAddr("127.0.0.2")

// sprayer sends to every port of [min, max+1] until stopped: RTP (PCMU filled with 0x55, and
// every fourth packet an RFC 4733 event for '9' with a new timestamp) to the even ports, with
// one SSRC and consecutive sequence numbers per port (enough to pass any probation), and an
// RTCP receiver report to the odd ones. It counts every datagram anyone sends back.
type sprayer struct {
	t          testing.TB
	rtp, rtcp  *net.UDPConn
	min, max   int
	sweeps     atomic.Int64
	stop, done chan struct{}
}

func newSprayer(t testing.TB, min, max int) *sprayer {
	t.Helper()
	bind := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(sprayAddr, 0)))
		if err != nil {
			t.Skipf("cannot bind %s (Linux routes all of 127/8 to lo; this system does not): %v", sprayAddr, err)
		}
		return c
	}
	s := &sprayer{t: t, rtp: bind(), rtcp: bind(), min: min, max: max, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	t.Cleanup(func() { s.halt(); s.rtp.Close(); s.rtcp.Close() })
	return s
}

func (s *sprayer) run() {
	defer close(s.done)
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 0x5BEED}})
	for sweep := 1; sweep <= 20000; sweep++ { // bounded: ~40 s at most
		select {
		case <-s.stop:
			return
		default:
		}
		for port := s.min; port <= s.max; port += 2 {
			p := audio(0, uint16(sweep), uint32(sweep)*160, 0x5BEED, 0x55)
			if sweep%4 == 0 {
				p.PayloadType, p.Marker = 101, true
				p.Payload = ev(9, false, 160)
			}
			b, _ := p.Marshal()
			_, _ = s.rtp.WriteToUDPAddrPort(b, netip.AddrPortFrom(loopback, uint16(port)))
			_, _ = s.rtcp.WriteToUDPAddrPort(rr, netip.AddrPortFrom(loopback, uint16(port+1)))
		}
		s.sweeps.Add(1)
		time.Sleep(2 * time.Millisecond) // pacing, not waiting for anything
	}
}

// awaitSweeps waits until n more sweeps have gone over the whole range.
func (s *sprayer) awaitSweeps(n int64) {
	s.t.Helper()
	target := s.sweeps.Load() + n
	deadline := time.Now().Add(wait)
	for s.sweeps.Load() < target {
		if time.Now().After(deadline) {
			s.t.Fatalf("sprayer made only %d sweeps", s.sweeps.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *sprayer) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// received drains both sockets and counts what the gateway sent the sprayer. Loopback delivers
// at sendto(2), so after the endpoints are closed everything ever sent is already queued.
func (s *sprayer) received() int {
	n := 0
	buf := make([]byte, 1500)
	for _, c := range []*net.UDPConn{s.rtp, s.rtcp} {
		for range 100000 {
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				break
			}
			n++
		}
	}
	return n
}

// collector reads a real peer's socket into a channel until the socket closes.
func collect(p *peer) <-chan *rtp.Packet {
	ch := make(chan *rtp.Packet, 4096)
	go func() {
		defer close(ch)
		buf := make([]byte, 1500)
		for range 100000 {
			n, _, err := p.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed by the test's cleanup
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(append([]byte(nil), buf[:n]...)) != nil {
				continue
			}
			select {
			case ch <- &pkt:
			default:
			}
		}
	}()
	return ch
}

// talk sends 40 frames (0.8 s) of PCMU filled with fill, paced at 20 ms, with an RFC 4733 key
// press of digit in the middle (start, then three end packets, one timestamp).
func talk(p *peer, to netip.AddrPort, ssrc uint32, fill byte, digit uint8) {
	seq := uint16(1000)
	for i := range 40 {
		seq++
		p.send(to, audio(0, seq, uint32(i)*160, ssrc, fill))
		if i == 20 {
			for j, end := range []bool{false, true, true, true} {
				seq++
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, Marker: j == 0, SequenceNumber: seq,
					Timestamp: uint32(i) * 160, SSRC: ssrc}, Payload: ev(digit, end, uint16(160*(j+1)))}
				p.send(to, pkt)
			}
		}
		time.Sleep(20 * time.Millisecond) // a phone's packet clock
	}
}

// heard awaits, on a real peer's collector, n audio packets filled with fill and an RFC 4733
// event for digit; it fails on anything carrying the sprayer's audio (0x55) or digit (9).
func heard(t *testing.T, who string, ch <-chan *rtp.Packet, fill byte, digit uint8, n int) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	got, gotDigit := 0, false
	for got < n || !gotDigit {
		select {
		case p, ok := <-ch:
			if !ok {
				t.Fatalf("%s: socket closed after %d packets", who, got)
			}
			if p.PayloadType != 0 && p.PayloadType != 101 {
				continue // not media (an RTCP report that reached this socket)
			}
			if p.PayloadType == 101 {
				e, err := ParseTelephoneEvent(p.Payload)
				if err != nil {
					t.Fatalf("%s: bad event: %v", who, err)
				}
				if e.Event == 9 {
					t.Fatalf("%s heard the sprayer's digit 9", who)
				}
				gotDigit = gotDigit || e.Event == digit
				continue
			}
			if len(p.Payload) > 0 && p.Payload[0] == 0x55 {
				t.Fatalf("%s heard the sprayer's audio", who)
			}
			if len(p.Payload) > 0 && p.Payload[0] == fill {
				got++
			}
		case <-timer.C:
			t.Fatalf("%s heard %d of %d frames of the other side (digit heard: %v)", who, got, n, gotDigit)
		}
	}
}

// Attack (RTP bleed): a sprayer on 127.0.0.2 hits every even port of the range (and RTCP on
// every odd one) with consecutive sequence numbers from before the call exists until after it
// is bridged. The caller and the far end, on 127.0.0.1 as their SDP says, still hear each other
// and each other's digits; the sprayer receives nothing, its digits are never detected, and
// every packet it lands on a live endpoint after latching reaches the security hook (sip turns
// it into switchboard_security_events_total{type="rtp_source_rejected"}).
func TestRTPBleedSprayerCannotHijackBridgedCall(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	hooked := map[netip.AddrPort]int{}
	m.OnForeignSource(func(src netip.AddrPort) { mu.Lock(); hooked[src]++; mu.Unlock() })

	alloc := testAllocator(t, 8)
	spray := newSprayer(t, alloc.min, alloc.max)
	spray.awaitSweeps(3) // the attack is under way before the call arrives

	// Call setup: the carrier leg and the far end's leg, each told its peer's c= address.
	callerPhone, farPhone := newPeer(t), newPeer(t)
	carrier := newTestEndpoint(t, EndpointOptions{Allocator: alloc, Metrics: m, RTCPInterval: 50 * time.Millisecond})
	agent := newTestEndpoint(t, EndpointOptions{Allocator: alloc, Metrics: m, RTCPInterval: 50 * time.Millisecond})
	for _, e := range []*Endpoint{carrier, agent} {
		e.SetCodec(0, PCMU)
		e.SetDTMFPayloadType(101)
	}
	carrier.SetRemote(callerPhone.addr())
	agent.SetRemote(farPhone.addr())
	if _, err := Bridge(carrier, agent); err != nil {
		t.Fatal(err)
	}
	// The sprayer has now sent each leg far more consecutive packets than any probation asks
	// before the real peers say a word.
	spray.awaitSweeps(10)

	callerHears, farHears := collect(callerPhone), collect(farPhone)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); talk(callerPhone, carrier.LocalAddr(), 0xCA11, 0x11, 5) }()
	go func() { defer wg.Done(); talk(farPhone, agent.LocalAddr(), 0xFA12, 0x22, 7) }()
	heard(t, "the far end", farHears, 0x11, 5, 10)
	heard(t, "the caller", callerHears, 0x22, 7, 10)
	wg.Wait()
	spray.awaitSweeps(5) // and the attack goes on after the latch

	if got := carrier.Remote(); got != callerPhone.addr() {
		t.Errorf("carrier leg latched %s, want the caller %s", got, callerPhone.addr())
	}
	if got := agent.Remote(); got != farPhone.addr() {
		t.Errorf("far leg latched %s, want the far end %s", got, farPhone.addr())
	}
	// The digits each leg detected are its own peer's only.
	for _, c := range []struct {
		e    *Endpoint
		want rune
	}{{carrier, '5'}, {agent, '7'}} {
		got := ""
	drain:
		for range 100 {
			select {
			case d := <-c.e.DTMF():
				got += string(d.Digit)
			default:
				break drain
			}
		}
		if got != string(c.want) {
			t.Errorf("DTMF detected %q, want %q only", got, string(c.want))
		}
	}

	spray.halt()
	carrier.Close() // sends RTCP BYE: to the real peer, not the sprayer
	agent.Close()
	if n := spray.received(); n != 0 {
		t.Errorf("the sprayer received %d datagrams", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for src, n := range hooked {
		if src.Addr() != sprayAddr {
			t.Errorf("security hook reported %d packets from %s, not the sprayer", n, src)
		}
	}
	rtpSrc := spray.rtp.LocalAddr().(*net.UDPAddr).AddrPort()
	rtcpSrc := spray.rtcp.LocalAddr().(*net.UDPAddr).AddrPort()
	if hooked[rtpSrc] == 0 || hooked[rtcpSrc] == 0 {
		t.Errorf("security hook saw %d RTP and %d RTCP packets of the sprayer, want both counted", hooked[rtpSrc], hooked[rtcpSrc])
	}
	if got := testutil.ToFloat64(m.foreign); got < float64(hooked[rtpSrc]) || got == 0 {
		t.Errorf("switchboard_rtp_packets_rejected_total{reason=foreign_source} = %v, hook saw %d RTP", got, hooked[rtpSrc])
	}
}

// Race (run under -race): re-INVITEs moving the peer back and forth, playback choosing the
// destination, and RTP from the real peers and a sprayer all at once. Nothing races, and the
// sprayer is never latched or sent to, whatever the interleaving.
func TestRTPBleedReinvitesRacingTraffic(t *testing.T) {
	m, _ := NewMetrics(nil)
	e := newTestEndpoint(t, EndpointOptions{Metrics: m, RTCPInterval: 10 * time.Millisecond, LearningWindow: 50 * time.Millisecond})
	e.SetCodec(0, PCMU)
	a, b := newPeer(t), newPeer(t)
	e.SetRemote(a.addr())
	sprayer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(sprayAddr, 0)))
	if err != nil {
		t.Skipf("cannot bind %s: %v", sprayAddr, err)
	}
	defer sprayer.Close()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // signalling: re-INVITEs
		defer wg.Done()
		for i := range 300 {
			switch i % 3 {
			case 0:
				e.SetRemote(b.addr())
			case 1:
				e.SetRemote(netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
			default:
				e.SetRemote(a.addr())
			}
			if r := e.Remote(); r.Addr() == sprayAddr {
				t.Errorf("Remote is the sprayer %s", r)
				return
			}
		}
	}()
	go func() { // the peers and the sprayer
		defer wg.Done()
		for i := range 300 {
			a.send(e.LocalAddr(), audio(0, uint16(i), uint32(i)*160, 0xA, 0x11))
			b.send(e.LocalAddr(), audio(0, uint16(i), uint32(i)*160, 0xB, 0x22))
			pkt, _ := audio(0, uint16(i), uint32(i)*160, 0x5BEED, 0x55).Marshal()
			_, _ = sprayer.WriteToUDPAddrPort(pkt, e.LocalAddr())
		}
	}()
	go func() { // our own stream: the destination is chosen on every frame
		defer wg.Done()
		_ = e.Play(ctxTimeout(t), bytesOf(50*FrameSize, 0xFF), PCMU)
	}()
	wg.Wait()
	e.Close()
	if r := e.Remote(); r.Addr() == sprayAddr {
		t.Errorf("Remote is the sprayer %s", r)
	}
	buf := make([]byte, 1500)
	sprayer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := sprayer.ReadFromUDPAddrPort(buf); err == nil {
		t.Error("the sprayer received a datagram")
	}
}
