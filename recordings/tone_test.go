package recordings

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/media"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// udpPeer is a plain UDP socket standing in for the carrier or the agent's phone. It counts the
// RTP packets it receives (the bridged audio of the other side).
type udpPeer struct {
	t    testing.TB
	conn *net.UDPConn
	got  atomic.Int64
	done chan struct{}
}

func newUDPPeer(t testing.TB) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPeer{t: t, conn: c, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(buf[:n]) == nil {
				p.got.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-p.done })
	return p
}

func (p *udpPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *udpPeer) send(to netip.AddrPort, pt uint8, seq uint16, ts, ssrc uint32, payload []byte) {
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
		Payload: payload}).Marshal()
	if err != nil {
		p.t.Error(err)
		return
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Error(err)
	}
}

// awaitCount waits until the peer has received n packets (bounded by wait).
func (p *udpPeer) awaitCount(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for p.got.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("peer %s got %d packets, want %d", p.addr(), p.got.Load(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter: UDP gives no event to await
	}
}

func newEndpoint(t testing.TB, alloc *media.PortAllocator) *media.Endpoint {
	t.Helper()
	e, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, RTCPInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func testAllocator(t testing.TB) *media.PortAllocator {
	t.Helper()
	// Below Linux's ephemeral range (32768+), where other processes' sockets come and go, and
	// wide enough that the allocator, which skips ports in use, always finds a free pair.
	base := 21000 + 2*rand.IntN(5000)
	a, err := media.NewPortAllocator(loopback, base, base+63)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Rule (issue 8, docs/recordings.md): the recording of a call bridged between two media
// endpoints holds the caller in the left channel and the far end in the right, in time: a gap
// of lost packets and a hold without any packet are silence of their length, the far end's new
// stream after the hold (new SSRC, restarted timestamps) sits where it was sent, sequence numbers
// and timestamps wrapping mid-call change nothing, and the file lasts as long as what was sent.
// Without SIP: SIPp's end-to-end tone test comes with the B2BUA wiring.
func TestToneRecordingOfBridgedCall(t *testing.T) {
	s := newService(t, Options{})
	ctx := ctxTimeout(t)
	alloc := testAllocator(t)
	carrier, agent := newEndpoint(t, alloc), newEndpoint(t, alloc)
	carrier.SetCodec(0, media.PCMU)
	agent.SetCodec(8, media.PCMA)
	caller, phone := newUDPPeer(t), newUDPPeer(t)
	carrier.SetRemote(caller.addr())
	agent.SetRemote(phone.addr())
	unbridge, err := media.Bridge(carrier, agent)
	if err != nil {
		t.Fatal(err)
	}
	defer unbridge()

	const (
		frames                  = 150 // 3 s
		lossFrom, lossTo        = 50, 60
		holdFrom, holdTo        = 75, 125
		callerSSRC       uint32 = 0x1111
		agentSSRC        uint32 = 0x2222
		afterHold        uint32 = 0x3333
	)
	tStart := time.Now()
	w, err := s.Start(ctx, "call-tone")
	if err != nil {
		t.Fatal(err)
	}
	// Each packet's arrival as the recorder sees it (TapPacket.At), by channel and sequence
	// number: how late the machine delivered it after it was sent widens the placement checks
	// below (the recorder places by arrival where timestamps cannot say — a new stream, a
	// re-anchor — so its placement is as exact as the arrivals are).
	var arrMu sync.Mutex
	type pkt struct {
		ssrc uint32
		seq  uint16
	}
	arrivals := map[pkt]time.Time{}
	arrivalTap := func(tap media.Tap) media.Tap {
		return func(p media.TapPacket) {
			if p.Flow == media.Received {
				arrMu.Lock()
				arrivals[pkt{p.SSRC, p.Sequence}] = p.At
				arrMu.Unlock()
			}
			tap(p)
		}
	}
	defer carrier.AddTap(arrivalTap(w.CallerTap()))()
	defer agent.AddTap(arrivalTap(w.AgentTap()))()

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var firstSend, lastSend time.Time
	var sentAt [frames]time.Time // when each frame went out: a loaded machine's ticker drops ticks
	var callerSent, agentSent int64
	for k := range frames {
		if k > 0 {
			<-tick.C
		}
		now := time.Now()
		if k == 0 {
			firstSend = now
		}
		lastSend = now
		sentAt[k] = now
		// Caller: μ-law 440 Hz; sequence numbers and timestamps wrap around during the call.
		if k < lossFrom || k >= lossTo {
			caller.send(carrier.LocalAddr(), 0, uint16(65500+k), uint32(0xFFFFF000+k*media.FrameSize), callerSSRC,
				toneFrame(media.PCMU, 440, k))
			callerSent++
		}
		// Far end: A-law 880 Hz; on hold it sends nothing, then a new stream from timestamp 1234.
		switch {
		case k < holdFrom:
			phone.send(agent.LocalAddr(), 8, uint16(100+k), uint32(5000+k*media.FrameSize), agentSSRC, toneFrame(media.PCMA, 880, k))
			agentSent++
		case k >= holdTo:
			phone.send(agent.LocalAddr(), 8, uint16(k), uint32(1234+(k-holdTo)*media.FrameSize), afterHold, toneFrame(media.PCMA, 880, k))
			agentSent++
		}
	}
	// Each side's packets were tapped before the bridge forwarded them to the other peer.
	phone.awaitCount(t, callerSent)
	caller.awaitCount(t, agentSent)
	res, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateReady || res.Channels != 2 || res.Dropped != 0 || res.Late != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Lost != lossTo-lossFrom {
		t.Errorf("lost %d packets by sequence numbers, want %d", res.Lost, lossTo-lossFrom)
	}
	d := readWAV(t, res.Path)
	if d.h.Channels != 2 || d.h.SampleRate != 8000 || d.h.BitsPerSample != 16 || !d.h.Consistent(d.size) {
		t.Fatalf("header %+v for %d bytes", d.h, d.size)
	}

	// Length: what was sent (first to last packet, plus the last packet's 20 ms) within two
	// frames, plus the time between Start and the first packet.
	sent := lastSend.Sub(firstSend) + 20*time.Millisecond
	slack := firstSend.Sub(tStart)
	if got := d.duration(); got < sent-20*time.Millisecond || got > sent+slack+40*time.Millisecond {
		t.Errorf("file lasts %v; sent %v (start slack %v)", got, sent, slack)
	}
	if res.Duration != d.duration() {
		t.Errorf("Result.Duration %v, file %v", res.Duration, d.duration())
	}

	// Where the audio starts in each channel: both together (sent in the same tick).
	onset := func(c int, from time.Duration) time.Duration {
		s := d.segment(c, from, d.duration())
		for i, x := range s {
			if x > 2000 || x < -2000 {
				return from + time.Duration(i)*time.Second/SampleRate
			}
		}
		t.Fatalf("channel %d: no audio after %v", c, from)
		return 0
	}
	t0 := onset(0, 0)
	if r0 := onset(1, 0); r0-t0 > 40*time.Millisecond || t0-r0 > 40*time.Millisecond {
		t.Errorf("channels start %v apart (left %v, right %v)", r0-t0, t0, r0)
	}
	// jitter: the spread of the packets' arrivals at the recorder's tap around the schedule
	// their timestamps follow (frame k at k×20 ms). Idle it is a few milliseconds. On a loaded
	// machine (load 24) the sending loop fell 0.7 s behind that schedule, and the recorder,
	// keeping its file on wall time, rightly re-anchored the streams by their late arrivals:
	// the audio before the loss and before the hold then reached into the gaps. Placement can
	// be only as exact as the arrivals are.
	arrMu.Lock()
	minD, maxD := time.Duration(1<<62), time.Duration(-1<<62)
	for k := range frames {
		sent := []pkt{{callerSSRC, uint16(65500 + k)}}
		switch {
		case k < holdFrom:
			sent = append(sent, pkt{agentSSRC, uint16(100 + k)})
		case k >= holdTo:
			sent = append(sent, pkt{afterHold, uint16(k)})
		}
		for _, p := range sent {
			if at, ok := arrivals[p]; ok {
				d := at.Sub(sentAt[0].Add(time.Duration(k) * 20 * time.Millisecond))
				minD, maxD = min(minD, d), max(maxD, d)
			}
		}
	}
	arrMu.Unlock()
	jitter := max(maxD-minD, 0)
	t.Logf("file %v, sent %v, start slack %v, audio from %v; %d packets, %d lost; arrival jitter %v", d.duration(), sent, slack, t0, res.Packets, res.Lost, jitter)
	frame := func(k int) time.Duration { return t0 + time.Duration(k)*20*time.Millisecond }
	margin := 60*time.Millisecond + jitter
	// A window the margins leave empty (a loaded machine's arrivals spread wider than it) is
	// not checked: nothing in it can be told apart.
	tone := func(c int, freq, other float64, from, to time.Duration) {
		t.Helper()
		if from+margin >= to-margin {
			t.Logf("channel %d [%v, %v): not checked, arrivals spread %v", c, from, to, jitter)
			return
		}
		seg := d.segment(c, from+margin, to-margin)
		if on, off := goertzel(seg, freq), goertzel(seg, other); on < 100*off || energy(seg) < 1e6 {
			t.Errorf("channel %d [%v, %v): %v Hz power %.0f vs %v Hz %.0f, energy %.0f", c, from, to, freq, on, other, off, energy(seg))
		}
	}
	silent := func(c int, from, to time.Duration) {
		t.Helper()
		if from+margin >= to-margin {
			t.Logf("channel %d [%v, %v): not checked, arrivals spread %v", c, from, to, jitter)
			return
		}
		if e := energy(d.segment(c, from+margin, to-margin)); e > 100 {
			t.Errorf("channel %d [%v, %v) should be silence: energy %.0f", c, from, to, e)
		}
	}
	tone(0, 440, 880, frame(0), frame(lossFrom))
	silent(0, frame(lossFrom), frame(lossTo))
	tone(0, 440, 880, frame(lossTo), frame(frames))
	tone(1, 880, 440, frame(0), frame(holdFrom))
	silent(1, frame(holdFrom), frame(holdTo))
	// The far end's new stream after the hold has new timestamps: it is placed by when it
	// arrived, so it is expected where it was really sent (the sending loop may lag its ideal
	// schedule on a loaded machine; a 1-in-8 failure at load 15 was exactly that lag).
	at := func(k int) time.Duration { return t0 + sentAt[k].Sub(sentAt[0]) }
	tone(1, 880, 440, at(holdTo), at(frames-1)+20*time.Millisecond)
	// The tone after the hold is where it was sent (alignment kept across the hold), and the
	// caller's audio after the loss where its timestamps put it.
	if got, want := onset(1, frame(holdFrom)+margin), at(holdTo); got-want > 40*time.Millisecond+jitter || want-got > 40*time.Millisecond+jitter {
		t.Errorf("far end after hold starts at %v, want %v (sent %v after the first frame)", got, want, sentAt[holdTo].Sub(sentAt[0]))
	}
	if got, want := onset(0, frame(lossFrom)+margin), frame(lossTo); got-want > 20*time.Millisecond+jitter || want-got > 20*time.Millisecond+jitter {
		t.Errorf("caller after loss starts at %v, want %v", got, want)
	}

	flush(t, s)
	rec, err := s.Recording(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != StateReady || rec.DurationMS != res.Duration.Milliseconds() || rec.SizeBytes != d.size ||
		rec.CallID != "call-tone" || rec.Channels != 2 || rec.ReadyAt == nil {
		t.Errorf("metadata %+v, file %d bytes", rec, d.size)
	}
}
