package media

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// sourceRig drives an endpoint's receive path directly with chosen sources and arrival times,
// so the learning and probation windows are crossed without sleeping.
type sourceRig struct {
	t      *testing.T
	e      *Endpoint
	m      *Metrics
	mu     sync.Mutex
	hooked map[netip.AddrPort]int
	seq    map[netip.AddrPort]uint16
}

// Addresses of the rig: the SDP c= address, the signalling source, the sprayer, a NAT'd peer
// that matches nothing signalled.
var (
	sdpAddr  = netip.MustParseAddrPort("127.0.0.1:5000")
	signalIP = netip.MustParseAddr("127.0.0.9")
	spray    = netip.MustParseAddrPort("127.0.0.2:6000")
	natted   = netip.MustParseAddrPort("127.0.0.3:4000")
)

func newSourceRig(t *testing.T, opts EndpointOptions) *sourceRig {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &sourceRig{t: t, m: m, hooked: map[netip.AddrPort]int{}, seq: map[netip.AddrPort]uint16{}}
	m.OnForeignSource(func(src netip.AddrPort) { r.mu.Lock(); r.hooked[src]++; r.mu.Unlock() })
	opts.Metrics = m
	opts.SignalSource = signalIP
	opts.MediaTimeout = -1
	r.e = newTestEndpoint(t, opts)
	r.e.SetCodec(0, PCMU)
	return r
}

// send pushes the next packet of src's stream (consecutive sequence numbers) arriving at
// start+at and reports whether the endpoint accepted it.
func (r *sourceRig) send(src netip.AddrPort, at time.Duration) bool {
	r.seq[src]++
	return r.sendSeq(src, r.seq[src], at)
}

func (r *sourceRig) sendSeq(src netip.AddrPort, seq uint16, at time.Duration) bool {
	before := r.e.Stats().Rejected
	pkt, _ := audio(0, seq, uint32(seq)*160, uint32(src.Port()), 0xFF).Marshal()
	r.e.handleRTP(pkt, src, r.e.start.Add(at), nil)
	return r.e.Stats().Rejected == before
}

func (r *sourceRig) hooks(src netip.AddrPort) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hooked[src]
}

// since is the endpoint's clock now, for packets "arriving" after a SetRemote just made.
func (r *sourceRig) since() time.Duration { return time.Since(r.e.start) }

// Attack (RTP bleed, re-INVITE variant): once the caller is latched, no re-INVITE — the same
// address, a hold and resume, a move to another port, a move to another address — lets a
// sprayer on 127.0.0.2 in, however many consecutive packets it sends and however long it waits;
// a genuine move is followed as soon as the peer speaks from its new c= address.
func TestRTPBleedReinviteDoesNotReopenLearning(t *testing.T) {
	r := newSourceRig(t, EndpointOptions{})
	r.e.SetRemote(sdpAddr)
	now := r.since()
	for i := range 10 { // proven consecutive stream, but the window is open: held back
		if r.send(spray, now+time.Duration(i)*20*time.Millisecond) {
			t.Fatal("sprayer accepted during the learning window")
		}
	}
	if got := testutil.ToFloat64(r.m.probation); got != 10 {
		t.Errorf("probation drops = %v, want 10", got)
	}
	if r.hooks(spray) != 0 {
		t.Error("probation drops reported as security events")
	}
	if !r.send(sdpAddr, now+250*time.Millisecond) {
		t.Fatal("the c= source was not accepted")
	}
	if r.send(spray, now+5*time.Second) {
		t.Fatal("sprayer accepted after the caller latched")
	}
	if r.hooks(spray) != 1 || testutil.ToFloat64(r.m.foreign) != 1 {
		t.Errorf("sprayer after latch: hook %d, foreign_source %v; want 1, 1", r.hooks(spray), testutil.ToFloat64(r.m.foreign))
	}

	steps := []struct {
		name   string
		remote netip.AddrPort
	}{
		{"the same address", sdpAddr},
		{"hold (c=0.0.0.0)", netip.AddrPortFrom(netip.IPv4Unspecified(), 5000)},
		{"resume", sdpAddr},
		{"a new port", netip.MustParseAddrPort("127.0.0.1:5100")},
		{"a new address", netip.MustParseAddrPort("127.0.0.4:7000")},
	}
	for _, s := range steps {
		r.e.SetRemote(s.remote)
		now := r.since()
		for i := range 10 { // inside the reopened window and long after it
			if r.send(spray, now+time.Duration(i)*time.Second) {
				t.Fatalf("after a re-INVITE to %s the sprayer got in", s.name)
			}
		}
		if !s.remote.Addr().IsUnspecified() && s.remote != sdpAddr {
			// The peer moved: its new address takes the latch when it speaks, even late.
			if !r.send(s.remote, now+20*time.Second) {
				t.Fatalf("after a re-INVITE to %s the peer's new address was refused", s.name)
			}
			if got := r.e.Remote(); got != s.remote {
				t.Errorf("after a re-INVITE to %s Remote = %s", s.name, got)
			}
			if r.send(spray, now+21*time.Second) {
				t.Fatalf("after the move to %s the sprayer got in", s.name)
			}
		}
	}
}

// Rule: a re-INVITE moving c= to another address sends to the new address at once (the old
// source no longer matches anything signalled), while the old source is still heard until the
// new one speaks.
func TestReinviteMoveSendsToNewAddressUntilItSpeaks(t *testing.T) {
	r := newSourceRig(t, EndpointOptions{})
	r.e.SetRemote(sdpAddr)
	if !r.send(sdpAddr, r.since()) {
		t.Fatal("c= source refused")
	}
	moved := netip.MustParseAddrPort("127.0.0.4:7000")
	r.e.SetRemote(moved)
	if got := r.e.Remote(); got != moved {
		t.Errorf("Remote = %s right after the move, want the new c= %s", got, moved)
	}
	if !r.send(sdpAddr, r.since()) {
		t.Error("the old source is refused before the new one spoke")
	}
	if !r.send(moved, r.since()) {
		t.Fatal("the new c= source refused")
	}
	if r.send(sdpAddr, r.since()) {
		t.Error("the old source still accepted after the new one latched")
	}
}

// Rule: a source matching neither c= nor the signalling source (a peer behind an odd NAT)
// latches only after Probation consecutive packets within ProbationWindow and once the learning
// window has closed with nobody better heard; a matching source heard in the window wins.
func TestStrangerLatchesOnlyAfterProbationAndLearningWindow(t *testing.T) {
	t.Run("alone, it latches after the window", func(t *testing.T) {
		r := newSourceRig(t, EndpointOptions{})
		r.e.SetRemote(sdpAddr)
		now := r.since()
		// A phone's stream, every 20 ms: proven after 4 packets, held back until the window closes.
		for at := time.Duration(0); at < DefaultLearningWindow+100*time.Millisecond; at += 20 * time.Millisecond {
			if got, want := r.send(natted, now+at), at >= DefaultLearningWindow; got != want {
				t.Fatalf("packet at +%s: accepted = %v, want %v", at, got, want)
			}
		}
		if got := r.e.Remote(); got != natted {
			t.Errorf("Remote = %s, want the proven %s", got, natted)
		}
		if r.hooks(natted) != 0 {
			t.Error("a peer's probation reported as a security event")
		}
		if r.send(spray, now+10*time.Second) || r.hooks(spray) != 1 {
			t.Error("another stranger not refused and reported once the first latched")
		}
	})
	t.Run("a matching source in the window wins", func(t *testing.T) {
		r := newSourceRig(t, EndpointOptions{})
		r.e.SetRemote(sdpAddr)
		now := r.since()
		for i := range 10 {
			r.send(spray, now+time.Duration(i)*20*time.Millisecond)
		}
		nat := netip.AddrPortFrom(signalIP, 30000) // the signalling source's address
		if !r.send(nat, now+time.Second) {
			t.Fatal("the signalling source's address refused")
		}
		if !r.send(sdpAddr, now+2*time.Second) {
			t.Fatal("the c= address did not take the latch from the signalling address in the window")
		}
		if r.send(nat, now+2*time.Second) {
			t.Error("the signalling address took the latch back from c=")
		}
		if r.send(spray, now+10*time.Second) {
			t.Error("the sprayer latched")
		}
	})
	t.Run("no proof without consecutive sequence numbers", func(t *testing.T) {
		r := newSourceRig(t, EndpointOptions{})
		r.e.SetRemote(sdpAddr)
		now := r.since() + DefaultLearningWindow
		for i := range 50 { // every other sequence number
			if r.sendSeq(spray, uint16(2*i), now+time.Duration(i)*20*time.Millisecond) {
				t.Fatalf("a non-consecutive stream latched at packet %d", i)
			}
		}
		for i := range 20 { // consecutive but slow: 4 packets take more than a second
			if r.send(natted, now+time.Duration(i)*400*time.Millisecond) {
				t.Fatalf("a stream of 2.5 packets/s latched at packet %d", i)
			}
		}
	})
	t.Run("nothing latches a stranger before c= is known", func(t *testing.T) {
		r := newSourceRig(t, EndpointOptions{}) // an outbound leg still ringing: no SDP answer yet
		for i := range 400 {
			if r.send(spray, time.Duration(i)*20*time.Millisecond) {
				t.Fatalf("sprayer latched at packet %d before any c= was known", i)
			}
		}
		if !r.send(netip.AddrPortFrom(signalIP, 9), 9*time.Second) {
			t.Error("the signalling source refused before c= was known")
		}
	})
}

// Rule: an endpoint with Peer accepts that exact address only (RTP from Peer; nothing learnt).
func TestEndpointWithPeerAcceptsOnlyThatAddress(t *testing.T) {
	relay := netip.MustParseAddrPort("127.0.0.1:7000")
	r := newSourceRig(t, EndpointOptions{Peer: relay})
	r.e.SetRemote(relay)
	for _, src := range []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7002"), spray, netip.AddrPortFrom(signalIP, 7000)} {
		for i := range 10 {
			if r.send(src, r.since()+time.Duration(i)*time.Second) {
				t.Fatalf("%s accepted by an endpoint pinned to %s", src, relay)
			}
		}
		if r.hooks(src) != 10 {
			t.Errorf("%s: %d security events, want 10", src, r.hooks(src))
		}
	}
	if !r.send(relay, r.since()) {
		t.Error("the pinned peer refused")
	}
}
