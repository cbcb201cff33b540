package media

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Rule (symmetric RTP, RFC 4961, strict source): a source at the SDP's address latches even if
// its port is not the SDP's (NAT); afterwards a foreign source is dropped and counted, and our
// audio goes to the latched source. A re-INVITE naming the other port moves the latch there.
func TestLatchingThenStrictSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var hooked []netip.AddrPort // the security-event hook sees every foreign packet's source
	var hookMu sync.Mutex
	m.OnForeignSource(func(src netip.AddrPort) { hookMu.Lock(); hooked = append(hooked, src); hookMu.Unlock() })
	e := newTestEndpoint(t, EndpointOptions{Metrics: m})
	e.SetCodec(0, PCMU)
	tap := newTapper(e)
	sdp, real, foreign := newPeer(t), newPeer(t), newPeer(t)
	e.SetRemote(sdp.addr()) // the SDP says one thing, NAT another

	real.send(e.LocalAddr(), audio(0, 1, 160, 0xAAAA, 0xFF))
	tap.until(t, 1)
	if got := e.Remote(); got != real.addr() {
		t.Fatalf("Remote = %s, want the latched %s", got, real.addr())
	}
	foreign.send(e.LocalAddr(), audio(0, 2, 320, 0xBBBB, 0x00))
	real.send(e.LocalAddr(), audio(0, 3, 480, 0xAAAA, 0xFF)) // loopback keeps order: 2 was handled before 3
	if p := tap.until(t, 3); p.SSRC != 0xAAAA {
		t.Fatalf("tapped SSRC %#x", p.SSRC)
	}
	st := e.Stats()
	if st.Rejected != 1 || st.PacketsReceived != 2 || !st.Latched {
		t.Errorf("stats = %+v, want 1 rejected, 2 received, latched", st)
	}
	if got := testutil.ToFloat64(m.foreign); got != 1 {
		t.Errorf("switchboard_rtp_packets_rejected_total{reason=foreign_source} = %v", got)
	}
	hookMu.Lock()
	if len(hooked) != 1 || hooked[0] != foreign.addr() {
		t.Errorf("foreign-source hook saw %v, want [%s]", hooked, foreign.addr())
	}
	hookMu.Unlock()
	if got := testutil.ToFloat64(m.rx); got != 2 {
		t.Errorf("switchboard_rtp_packets_total{direction=rx} = %v", got)
	}

	// Our audio goes to the latched address, not to the SDP one.
	if err := e.Play(ctxTimeout(t), bytes.NewReader(make([]byte, FrameSize)), PCMU); err != nil {
		t.Fatal(err)
	}
	if p := real.recv(); p.SSRC != e.SSRC() {
		t.Errorf("SSRC %#x, want %#x", p.SSRC, e.SSRC())
	}

	// A re-INVITE moving the peer: the source at the new address takes the latch.
	e.SetRemote(foreign.addr())
	foreign.send(e.LocalAddr(), audio(0, 4, 640, 0xBBBB, 0x00))
	tap.until(t, 4)
	if got := e.Remote(); got != foreign.addr() {
		t.Errorf("after the move Remote = %s, want %s", got, foreign.addr())
	}
}

// checkContinuous asserts RFC 3550 continuity of an outgoing stream: one SSRC, sequence +1,
// timestamps advancing.
func checkContinuous(t *testing.T, pkts []*rtp.Packet, ssrc uint32) {
	t.Helper()
	for i, p := range pkts {
		if p.SSRC != ssrc {
			t.Errorf("packet %d: SSRC %#x, want %#x", i, p.SSRC, ssrc)
		}
		if i == 0 {
			continue
		}
		prev := pkts[i-1]
		if p.SequenceNumber != prev.SequenceNumber+1 {
			t.Errorf("packet %d: seq %d after %d", i, p.SequenceNumber, prev.SequenceNumber)
		}
		if d := p.Timestamp - prev.Timestamp; d == 0 || d > 1<<31 {
			t.Errorf("packet %d: timestamp %d after %d", i, p.Timestamp, prev.Timestamp)
		}
	}
}

// Rule: bridging forwards both ways and the stream each peer receives stays continuous (same
// SSRC, sequence +1, timestamp advancing ≥ one frame) across source switches: the far leg's
// stream → a prompt → a different far-end SSRC with a wild sequence. PCMU ↔ PCMA is converted
// and telephone-event payload types mapped.
func TestBridgeContinuityAcrossSourceSwitch(t *testing.T) {
	alloc := testAllocator(t, 8)
	carrier := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	agent := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	carrier.SetCodec(8, PCMA)
	carrier.SetDTMFPayloadType(101)
	agent.SetCodec(0, PCMU)
	agent.SetDTMFPayloadType(96)
	pc, pa := newPeer(t), newPeer(t)
	carrier.SetRemote(pc.addr())
	agent.SetRemote(pa.addr())
	stop, err := Bridge(carrier, agent)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, err := Bridge(carrier, agent); !errors.Is(err, ErrBridged) {
		t.Errorf("second Bridge: %v, want ErrBridged", err)
	}

	var got []*rtp.Packet
	// 1. carrier → agent: 5 frames of A-law near-silence, arriving converted to μ-law.
	for i := range 5 {
		pc.send(carrier.LocalAddr(), audio(8, uint16(100+i), uint32(5000+160*i), 0x1111, 0xD5))
		p := pa.recv()
		if p.PayloadType != 0 || !bytes.Equal(p.Payload, bytes.Repeat([]byte{ALawToULaw(0xD5)}, FrameSize)) {
			t.Fatalf("agent got PT %d payload %x…, want the A-law frame converted to μ-law", p.PayloadType, p.Payload[:4])
		}
		got = append(got, p)
	}
	if !got[0].Marker {
		t.Error("first packet of a new source should carry the marker bit")
	}
	// 2. A prompt on the agent's stream (the bridge is overridden meanwhile).
	if err := agent.Play(ctxTimeout(t), bytes.NewReader(bytes.Repeat([]byte{0xFF}, 3*FrameSize)), PCMU); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got = append(got, pa.recv())
	}
	// 3. The carrier side changes SSRC and jumps its sequence and timestamp.
	for i := range 5 {
		pc.send(carrier.LocalAddr(), audio(8, uint16(60000+i), uint32(1<<31+160*i), 0x2222, 0xD5))
		got = append(got, pa.recv())
	}
	checkContinuous(t, got, agent.SSRC())
	if d := got[5].Timestamp - got[4].Timestamp; d < FrameSize {
		t.Errorf("timestamp advanced %d across the switch to the prompt, want ≥ %d", d, FrameSize)
	}

	// 4. agent → carrier, μ-law to A-law, and a DTMF event with its payload type mapped.
	pa.send(agent.LocalAddr(), audio(0, 7, 70, 0x3333, 0xFF))
	if p := pc.recv(); p.PayloadType != 8 || p.Payload[0] != 0xD5 || p.SSRC != carrier.SSRC() {
		t.Errorf("carrier got PT %d payload %#x SSRC %#x", p.PayloadType, p.Payload[0], p.SSRC)
	}
	ev := TelephoneEvent{Event: 5, Volume: 10, Duration: 160}.AppendTo(nil)
	pa.send(agent.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 8, Timestamp: 230, SSRC: 0x3333, Marker: true}, Payload: ev})
	if p := pc.recv(); p.PayloadType != 101 || !bytes.Equal(p.Payload, ev) {
		t.Errorf("carrier got PT %d payload %x, want the event on PT 101", p.PayloadType, p.Payload)
	}
	select {
	case d := <-agent.DTMF():
		if d.Digit != '5' {
			t.Errorf("agent detected %q", d.Digit)
		}
	case <-time.After(wait):
		t.Error("the bridged endpoint did not detect the digit")
	}

	// After stop, nothing is forwarded; a new bridge is possible.
	stop()
	stop()
	if _, err := Bridge(agent, carrier); err != nil {
		t.Fatalf("re-bridge after stop: %v", err)
	}
}

// Rule: hold — remote 0.0.0.0 or direction recvonly/inactive — sends nothing; resume continues
// the same stream.
func TestHoldSendsNothing(t *testing.T) {
	alloc := testAllocator(t, 8)
	a := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	b := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	for _, e := range []*Endpoint{a, b} {
		e.SetCodec(0, PCMU)
	}
	pa, pb := newPeer(t), newPeer(t)
	a.SetRemote(pa.addr())
	b.SetRemote(pb.addr())
	stop, err := Bridge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tapA := newTapper(a)
	seq := uint16(1)
	sendAndAwait := func() {
		t.Helper()
		pa.send(a.LocalAddr(), audio(0, seq, uint32(seq)*160, 0x42, 0xFF))
		tapA.until(t, seq) // forwarding happens right after the tap, on the same goroutine…
		seq++
		pa.send(a.LocalAddr(), audio(0, seq, uint32(seq)*160, 0x42, 0xFF))
		tapA.until(t, seq) // …so once the next packet is tapped, the previous one was forwarded
		seq++
	}
	sendAndAwait()
	first := pb.recv()
	pb.recv()
	// The sender counts a packet once its write returned, which may be after the peer read
	// it: wait for the count of the two packets before measuring what is sent on hold.
	for end := time.Now().Add(5 * time.Second); b.Stats().PacketsSent < 2 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}

	holds := []struct {
		name string
		hold func()
	}{
		{"c=0.0.0.0", func() { b.SetRemote(netip.AddrPortFrom(netip.IPv4Unspecified(), pb.addr().Port())) }},
		{"recvonly", func() { b.SetDirection(RecvOnly) }},
		{"inactive", func() { b.SetDirection(Inactive) }},
	}
	for _, h := range holds {
		h.hold()
		sent := b.Stats().PacketsSent
		sendAndAwait()
		if err := b.Play(ctxTimeout(t), bytes.NewReader(make([]byte, FrameSize)), PCMU); err != nil {
			t.Fatal(err)
		}
		if got := b.Stats().PacketsSent; got != sent {
			t.Errorf("%s: %d packets sent while on hold", h.name, got-sent)
		}
		b.SetRemote(pb.addr())
		b.SetDirection(SendRecv)
	}
	sendAndAwait()
	p := pb.recv()
	if p.SSRC != first.SSRC || !seqNewer(p.SequenceNumber, first.SequenceNumber) {
		t.Errorf("after resume SSRC %#x seq %d, before %#x seq %d", p.SSRC, p.SequenceNumber, first.SSRC, first.SequenceNumber)
	}
	// SendOnly (we hold the peer with music) still sends.
	b.SetDirection(SendOnly)
	if err := b.Play(ctxTimeout(t), bytes.NewReader(make([]byte, FrameSize)), PCMU); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if q := pb.recv(); q.SequenceNumber != p.SequenceNumber {
			return // the played frame arrived
		}
	}
	t.Error("sendonly: the played frame never arrived")
}

// Rule: no RTP for MediaTimeout reports ErrMediaTimeout once; while packets flow it does not fire.
func TestMediaTimeoutFires(t *testing.T) {
	start := time.Now() // the clock starts inside NewEndpoint
	e := newTestEndpoint(t, EndpointOptions{MediaTimeout: 100 * time.Millisecond})
	select {
	case err := <-e.MediaTimeout():
		if !errors.Is(err, ErrMediaTimeout) {
			t.Fatalf("cause %v", err)
		}
		if !strings.Contains(err.Error(), "no RTP ever") {
			t.Errorf("cause %q does not say nothing ever arrived", err)
		}
		if el := time.Since(start); el < 100*time.Millisecond {
			t.Errorf("fired after %s", el)
		}
	case <-time.After(wait):
		t.Fatal("media timeout never fired")
	}
	select {
	case err := <-e.MediaTimeout():
		t.Fatalf("fired twice: %v", err)
	default:
	}
}

// Rule (issue 18): OnMediaTimeout delivers the timeout to a callback, once, on a goroutine of
// its own — so a SIP leg watches its media without a goroutine waiting for the whole call — and
// a callback set after the timeout fired is called at once; none is called once Close began.
func TestOnMediaTimeoutCallsBackOnce(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{MediaTimeout: 50 * time.Millisecond})
	got := make(chan error, 4)
	e.OnMediaTimeout(func(err error) { got <- err })
	select {
	case err := <-got:
		if !errors.Is(err, ErrMediaTimeout) || !strings.Contains(err.Error(), "no RTP ever") {
			t.Fatalf("callback got %v", err)
		}
	case <-time.After(wait):
		t.Fatal("the callback was never called")
	}
	late := make(chan error, 1)
	e.OnMediaTimeout(func(err error) { late <- err }) // fired already: called at once
	select {
	case err := <-late:
		if !errors.Is(err, ErrMediaTimeout) {
			t.Fatalf("late callback got %v", err)
		}
	case <-time.After(wait):
		t.Fatal("a callback set after the timeout fired was not called")
	}
	select {
	case err := <-got:
		t.Fatalf("the first callback was called twice: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	// After Close nothing is called, however long one waits.
	c := newTestEndpoint(t, EndpointOptions{MediaTimeout: 50 * time.Millisecond})
	called := make(chan struct{}, 1)
	c.OnMediaTimeout(func(error) { called <- struct{}{} })
	c.Close()
	select {
	case <-called:
		t.Fatal("callback called after Close")
	case <-time.After(150 * time.Millisecond):
	}
}

// Rule: the timeout counts from the last packet received, not from the start.
func TestMediaTimeoutCountsFromLastPacket(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{MediaTimeout: time.Second})
	e.SetCodec(0, PCMU)
	tap := newTapper(e)
	p := newPeer(t)
	var last time.Time
	for i := range 30 { // 1.5 s of traffic with 50 ms gaps, longer than the timeout
		// The timeout counts from when the packet was received, which is after it was sent and
		// before the tap saw it: measured from the tap, it fired a fraction of a millisecond
		// "early" once a loop stamped a round's datagrams at its start.
		last = time.Now()
		p.send(e.LocalAddr(), audio(0, uint16(i), uint32(i)*160, 1, 0xFF))
		tap.until(t, uint16(i))
		select {
		case err := <-e.MediaTimeout():
			t.Fatalf("fired while RTP flowed: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case err := <-e.MediaTimeout():
		if !errors.Is(err, ErrMediaTimeout) || strings.Contains(err.Error(), "ever") {
			t.Errorf("cause %v", err)
		}
		if el := time.Since(last); el < time.Second {
			t.Errorf("fired %s after the last packet", el)
		}
	case <-time.After(wait):
		t.Fatal("media timeout never fired")
	}
}

// Rule: on hold the (longer) hold timeout applies.
func TestMediaTimeoutOnHoldUsesHoldTimeout(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{MediaTimeout: 300 * time.Millisecond, HoldTimeout: 600 * time.Millisecond})
	start := time.Now()
	e.SetDirection(RecvOnly)
	select {
	case err := <-e.MediaTimeout():
		if !strings.Contains(err.Error(), "on hold") {
			t.Errorf("cause %q", err)
		}
		if el := time.Since(start); el < 600*time.Millisecond {
			t.Errorf("fired after %s, before the hold timeout", el)
		}
	case <-time.After(wait):
		t.Fatal("hold timeout never fired")
	}
	// A disabled timeout never fires: nothing to await, the endpoint simply closes cleanly.
	d := newTestEndpoint(t, EndpointOptions{MediaTimeout: -1})
	d.Close()
}

// Rule (RFC 3550 A.3, A.8): loss counts gaps and forgives reordering; jitter follows
// J += (|D| − J)/16 on a crafted arrival pattern.
func TestStatsLossAndJitter(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{})
	e.SetCodec(0, PCMU)
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	base := e.start
	type arrival struct {
		seq uint16
		at  time.Duration // arrival since start
	}
	// seq 65533..65535, 0..9 (wrap), 3 and 4 lost, 7 after 8, one late by 10 ms.
	arrivals := []arrival{{65533, 0}, {65534, 20}, {65535, 40}, {0, 60}, {1, 80}, {2, 100}, {5, 160}, {6, 180}, {8, 220}, {7, 225}, {9, 250}}
	var want float64
	var prevTransit float64
	for i, a := range arrivals {
		at := time.Duration(a.at) * time.Millisecond
		rel := uint32(uint16(a.seq - 65533))
		ts := 1000 + rel*160
		pkt, _ := audio(0, a.seq, ts, 7, 0xFF).Marshal()
		e.handleRTP(pkt, src, base.Add(at), nil)
		transit := float64(at.Seconds()*clockRate) - float64(ts)
		if i > 0 {
			want += (math.Abs(transit-prevTransit) - want) / 16
		}
		prevTransit = transit
	}
	st := e.Stats()
	if st.PacketsReceived != uint64(len(arrivals)) {
		t.Errorf("received %d, want %d", st.PacketsReceived, len(arrivals))
	}
	if st.PacketsLost != 2 {
		t.Errorf("lost %d, want 2 (seq 3 and 4)", st.PacketsLost)
	}
	wantJ := time.Duration(want / clockRate * float64(time.Second))
	if d := st.Jitter - wantJ; d < -time.Millisecond/8 || d > time.Millisecond/8 {
		t.Errorf("jitter %s, want %s (±1 sample)", st.Jitter, wantJ)
	}
	if st.Jitter == 0 {
		t.Error("jitter is zero despite the late and reordered packets")
	}
	// A duplicate makes the loss negative (A.3 allows it), as RTCP reports it.
	pkt, _ := audio(0, 9, 1000+12*160, 7, 0xFF).Marshal()
	e.handleRTP(pkt, src, base.Add(260*time.Millisecond), nil)
	if got := e.Stats().PacketsLost; got != 1 {
		t.Errorf("after a duplicate lost = %d, want 1", got)
	}

	// The RTCP report block carries the same numbers (RFC 3550 §6.4.2).
	var rep reportState
	b, err := e.buildReport(&rep, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	rr := parseReport(t, b)
	if rr.SSRC != 7 || rr.TotalLost != 1 || rr.LastSequenceNumber != 1<<16+9 {
		t.Errorf("report block %+v", rr)
	}
	if rr.FractionLost != uint8(1*256/13) {
		t.Errorf("fraction lost %d, want %d", rr.FractionLost, 1*256/13)
	}
}

// A packet that arrives 100 ms or more behind its stream's pace counts once as a late arrival
// (the first of a backlog: those queued behind it keep their predecessor's pace); jitter of
// less does not, nor does a sender's pause that advances its timestamps with the clock.
func TestLateArrivalCountsTheFirstPacketAfterAStall(t *testing.T) {
	m, _ := NewMetrics(nil)
	e := newTestEndpoint(t, EndpointOptions{Metrics: m})
	e.SetCodec(0, PCMU)
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	send := func(seq uint16, at time.Duration) {
		pkt, _ := audio(0, seq, 1000+uint32(seq)*160, 7, 0xFF).Marshal()
		e.handleRTP(pkt, src, e.start.Add(at*time.Millisecond), nil)
	}
	for seq := range uint16(10) {
		send(seq, time.Duration(seq)*20+time.Duration(seq%3)*30) // up to 60 ms of jitter
	}
	if got := testutil.ToFloat64(m.late); got != 0 {
		t.Fatalf("late arrivals %v after jitter under 100 ms, want 0", got)
	}
	// A 300 ms stall: packets 10..24 arrive together at 500 ms.
	for seq := uint16(10); seq < 25; seq++ {
		send(seq, 500)
	}
	if got := testutil.ToFloat64(m.late); got != 1 {
		t.Errorf("late arrivals %v after a 300 ms stall, want 1", got)
	}
	// A pause of a second whose timestamps advance with the clock (seq 75 at 1,500 ms) is not late.
	send(75, 1500)
	if got := testutil.ToFloat64(m.late); got != 1 {
		t.Errorf("late arrivals %v after a paced pause, want still 1", got)
	}
}

// Packets of other payload types are counted as received (they carry sequence numbers) but not
// used: rejected with reason payload_type, never forwarded.
func TestUnknownPayloadTypeRejected(t *testing.T) {
	m, _ := NewMetrics(nil)
	e := newTestEndpoint(t, EndpointOptions{Metrics: m})
	e.SetCodec(0, PCMU)
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	pkt, _ := audio(13, 1, 160, 9, 0).Marshal() // comfort noise, not negotiated
	e.handleRTP(pkt, src, time.Now(), nil)
	if st := e.Stats(); st.Rejected != 1 || st.PacketsReceived != 1 {
		t.Errorf("stats %+v", st)
	}
	if testutil.ToFloat64(m.badPT) != 1 {
		t.Error("payload_type reason not counted")
	}
	e.handleRTP([]byte{0x80, 0, 1}, src, time.Now(), nil)
	if testutil.ToFloat64(m.bad) != 1 {
		t.Error("malformed reason not counted")
	}
}

// Close is idempotent, releases the ports, closes DTMF() and records jitter and loss metrics.
func TestCloseIdempotentAndRecordsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	alloc := testAllocator(t, 2)
	e := newTestEndpoint(t, EndpointOptions{Allocator: alloc, Metrics: m})
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	for _, seq := range []uint16{1, 2, 5} {
		pkt, _ := audio(0, seq, uint32(seq)*160, 1, 0xFF).Marshal()
		e.handleRTP(pkt, src, time.Now(), nil)
	}
	e.Close()
	e.Close()
	if alloc.InUse() != 0 {
		t.Error("ports not released")
	}
	if _, ok := <-e.DTMF(); ok {
		t.Error("DTMF channel still open")
	}
	if got := testutil.ToFloat64(m.lost); got != 2 {
		t.Errorf("switchboard_rtp_packets_lost_total = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(reg, "switchboard_rtp_jitter_seconds"); n != 1 {
		t.Errorf("jitter histogram count %d", n)
	}
	if err := e.Play(context.Background(), bytes.NewReader(nil), PCMU); !errors.Is(err, ErrClosed) {
		t.Errorf("Play after Close: %v", err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice must fail")
	}
}
