package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// testClusterSecret is the cluster secret of the two-node tests.
var testClusterSecret = []byte("0123456789abcdef0123456789abcdef-test")

// clusterPair is two gateways of one cluster on loopback: node "a" takes the carrier's calls on
// line +15550197 and offers each, like the ACD, to agent 7 on node "b" (Offer.Node = "b")
// through a's ClusterDialer; node "b" is where agent 7's SIP phone (a SIPp uas) registered.
type clusterPair struct {
	a, b      *testGateway
	rec       *countingRecorder // node a's recorder
	dir       string
	phonePort int
	phone     *sippProc
	results   chan offerResult
}

func clusterOpts(node string, resolve func(context.Context, string) (string, error)) ClusterOptions {
	return ClusterOptions{Node: node, Secret: testClusterSecret,
		Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Resolve: resolve}
}

// freePorts gives a gateway of a two-node test an RTP range of 200 ports all free now, below the
// ephemeral range (rtpRange picks one from the clock: two gateways started together could share
// it, and other processes on the machine may hold its ports).
func freePorts(t *testing.T, o *Options) {
	t.Helper()
	base := testport.FreeRange(t, 20000, 32000, 200)
	p, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), base, base+199)
	if err != nil {
		t.Fatal(err)
	}
	o.Ports = p
}

func newClusterPair(t *testing.T, ringTimeout time.Duration, calls int, ctl CallControl, phoneScenario string, phoneArgs ...string) *clusterPair {
	t.Helper()
	return newClusterPairWith(t, nil, ringTimeout, calls, ctl, phoneScenario, phoneArgs...)
}

// newClusterPairWith is newClusterPair with node a's options changed by aOpt (nil: none),
// applied after the pair's own (the line, the cluster options).
func newClusterPairWith(t *testing.T, aOpt func(*Options), ringTimeout time.Duration, calls int, ctl CallControl, phoneScenario string, phoneArgs ...string) *clusterPair {
	t.Helper()
	return newClusterPairOpts(t, aOpt, nil, ringTimeout, calls, ctl, phoneScenario, func(int) []string { return phoneArgs })
}

// newClusterPairOpts is newClusterPairWith with node b's options changed by bOpt too (nil:
// none), applied after the pair's own, and the phone's arguments made from node b's SIP port
// (where the phone calls through the gateway).
func newClusterPairOpts(t *testing.T, aOpt, bOpt func(*Options), ringTimeout time.Duration, calls int, ctl CallControl, phoneScenario string, phoneArgsFor func(bPort int) []string) *clusterPair {
	t.Helper()
	requireSipp(t)
	p := &clusterPair{dir: t.TempDir(), phonePort: testport.FreeUDP(t), results: make(chan offerResult, calls+4)}
	writeULawWAV(t, filepath.Join(p.dir, "tone.wav"), 2)
	p.b = startRegistrar(t, func(o *Options) {
		o.Registrar.DigestAlgorithms = sippDigest()
		o.Cluster = clusterOpts("b", nil)
		freePorts(t, o)
		if bOpt != nil {
			bOpt(o)
		}
	})
	p.b.s.ClusterDialer(p.b.s.PhoneDialer())
	bAddr := fmt.Sprintf("127.0.0.1:%d", p.b.port())
	var dialer atomic.Pointer[ivr.AgentDialer]
	p.rec = &countingRecorder{}
	p.a = startGateway(t, func(o *Options) {
		freePorts(t, o)
		o.Recorder = p.rec
		o.Cluster = clusterOpts("a", func(_ context.Context, node string) (string, error) {
			if node != "b" {
				return "", errors.New("unknown node")
			}
			return bAddr, nil
		})
		o.Cluster.Control = ctl
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			octx, cancel := context.WithTimeout(ctx, ringTimeout)
			defer cancel()
			start := time.Now()
			leg, err := (*dialer.Load()).Offer(octx, ivr.Offer{CallID: c.ID(), AgentID: 7, Queue: "support",
				From: c.From(), CallerName: c.CallerName(), Line: c.Line(), Language: "en", Node: "b"})
			res := offerResult{err: err, elapsed: time.Since(start)}
			if err != nil {
				p.results <- res
				return nil
			}
			if ch, ok := leg.(ivr.ChanneledLeg); !ok || ch.Channel() != callevent.ChannelSIP {
				res.err = fmt.Errorf("the internal leg's channel is not the agent's SIP phone")
			}
			stop, err := leg.Bridge(c.Endpoint())
			if err != nil {
				res.err = err
				p.results <- res
				return err
			}
			defer stop()
			c.answeredBy(7, callevent.ChannelSIP, c.Endpoint()) // as the ACD's call.answered does
			select {
			case <-ctx.Done():
				res.end = "caller"
			case <-leg.Done():
				res.end = "agent"
			}
			_ = leg.Hangup(context.Background())
			p.results <- res
			return nil
		})}}
		if aOpt != nil {
			aOpt(o) // last: it may replace the line's target too
		}
	})
	d := p.a.s.ClusterDialer(p.a.s.PhoneDialer())
	dialer.Store(&d)
	args := append([]string{"-p", strconv.Itoa(p.phonePort), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", strconv.Itoa(calls)}, phoneArgsFor(p.b.port())...)
	p.phone = startSipp(t, p.dir, phoneScenario, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("phone SIPp output:\n%s", tail(p.phone.out.String(), 3000))
		}
	})
	// Agent 7's phone registers with node b, and only there.
	startSipp(t, p.dir, "uac_register.xml", bAddr, "-s", "agent1", "-au", "agent1", "-ap", "secret",
		"-key", "contact_port", strconv.Itoa(p.phonePort), "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
	if n := len(p.b.s.Registrations(7)); n != 1 {
		t.Fatalf("agent 7 has %d bindings on node b", n)
	}
	if n := len(p.a.s.Registrations(7)); n != 0 {
		t.Fatalf("agent 7 has %d bindings on node a", n)
	}
	return p
}

func (p *clusterPair) carrier(t *testing.T, scenario string, calls int) *sippProc {
	return startSipp(t, p.dir, scenario, fmt.Sprintf("127.0.0.1:%d", p.a.port()), "-s", "15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", strconv.Itoa(calls))
}

func (p *clusterPair) result(t *testing.T) offerResult {
	t.Helper()
	select {
	case r := <-p.results:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("node a's target never finished its offer")
		return offerResult{}
	}
}

// TestInternalLegAnswersOnAnotherNode: agent 7's SIP phone is registered with node b only; a
// call on node a offered to agent 7 with Node "b" goes over a signed internal INVITE to b,
// which rings the phone, answers once it answered, and bridges. Audio flows both ways through
// both nodes: the phone echoes the carrier's tone, so a's carrier leg sends what it received
// over the internal leg, and b's counters see RTP both ways. The carrier's BYE ends the agent's
// leg on b (the phone scenario gets its BYE). Node a's recording taps both sides as on one node.
// Node b emits no event for the internal leg (the call is a's); a's call has its events. Without the internal leg (the code before) an offer
// with Node "b" went to a's own phone dialer and failed: agent 7 is not registered there.
func TestInternalLegAnswersOnAnotherNode(t *testing.T) {
	p := newClusterPair(t, 10*time.Second, 1, nil, "uas_agent.xml", "-rtp_echo")
	p.carrier(t, "uac_rtp.xml", 1).wait(t)
	p.phone.wait(t)
	r := p.result(t)
	if r.err != nil || r.end != "caller" {
		t.Fatalf("offer: %+v", r)
	}
	evs := p.a.sink.waitEnded(t, 20*time.Second)
	if lastOf(evs, callevent.EventAnswered) == nil {
		t.Errorf("node a's call has no call.answered: %v", eventTypes(evs))
	}
	var sum CallSummary
	select {
	case sum = <-p.a.summary:
	case <-time.After(20 * time.Second):
		t.Fatal("no call summary on node a")
	}
	if sum.Carrier.PacketsReceived < 50 || sum.Carrier.PacketsSent < 50 {
		t.Errorf("node a's carrier leg RTP rx %d tx %d, want both ways", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	}
	if len(sum.Outbound) != 1 || sum.Outbound[0].PacketsReceived < 50 || sum.Outbound[0].PacketsSent < 50 {
		t.Errorf("node a's internal leg RTP %+v, want both ways", sum.Outbound)
	}
	if rx, tx := p.b.counter("switchboard_rtp_packets_total", "direction", "rx"), p.b.counter("switchboard_rtp_packets_total", "direction", "tx"); rx < 100 || tx < 100 {
		t.Errorf("node b's RTP rx %v tx %v, want both ways on the internal leg and the phone's", rx, tx)
	}
	if !waitFor(10*time.Second, func() bool { return p.b.s.ActiveCalls() == 0 }) {
		t.Errorf("node b still relays %d calls after the caller hung up", p.b.s.ActiveCalls())
	}
	// Node a recorded the call as on one node: the caller (received) and the agent's audio
	// that came back over the internal leg (sent to the caller).
	if rx, tx := p.rec.rx.Load(), p.rec.tx.Load(); rx < 50 || tx < 50 {
		t.Errorf("node a's recording tapped %d caller and %d agent packets, want both sides", rx, tx)
	}
	if evs := p.b.sink.all(); len(evs) != 0 {
		t.Errorf("node b emitted %d events for the internal leg: %v", len(evs), eventTypes(evs))
	}
	if v := p.a.counter("switchboard_cluster_offers_total", "direction", "sent", "result", "answered"); v != 1 {
		t.Errorf("node a: cluster offers sent answered = %v, want 1", v)
	}
	if v := p.b.counter("switchboard_cluster_offers_total", "direction", "received", "result", "answered"); v != 1 {
		t.Errorf("node b: cluster offers received answered = %v, want 1", v)
	}
}

// TestInternalLegAgentHangsUp: the agent's phone on node b hangs up with BYE; b ends the
// internal leg with BYE, a's agent leg is Done, and the carrier gets a BYE from a.
func TestInternalLegAgentHangsUp(t *testing.T) {
	p := newClusterPair(t, 10*time.Second, 1, nil, "uas_bye.xml", "-rtp_echo")
	p.carrier(t, "uac_wait_bye.xml", 1).wait(t)
	p.phone.wait(t)
	if r := p.result(t); r.err != nil || r.end != "agent" {
		t.Fatalf("offer: %+v", r)
	}
	if !waitFor(10*time.Second, func() bool { return p.b.s.ActiveCalls() == 0 && p.a.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: a %d, b %d", p.a.s.ActiveCalls(), p.b.s.ActiveCalls())
	}
}

// TestInternalLegRingTimeoutCancels: the phone on node b only rings; b passes its 180 on, so a
// times the ringing; at a's ring timeout a CANCELs the internal INVITE, b withdraws its offer
// and CANCELs the phone's INVITE (the phone scenario checks the CANCEL and answers 487), and
// a's Offer returns the ring timeout.
func TestInternalLegRingTimeoutCancels(t *testing.T) {
	p := newClusterPair(t, 1500*time.Millisecond, 1, nil, "uas_cancel.xml")
	car := p.carrier(t, "uac_wait_bye.xml", 1)
	r := p.result(t)
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("Offer error %v, want the ring timeout's context.DeadlineExceeded", r.err)
	}
	if r.elapsed < 1400*time.Millisecond || r.elapsed > 5*time.Second {
		t.Errorf("Offer returned after %s, want about the 1.5 s ring timeout", r.elapsed)
	}
	p.phone.wait(t)
	car.wait(t)
	if !waitFor(10*time.Second, func() bool { return p.b.s.ActiveCalls() == 0 }) {
		t.Errorf("node b still relays %d calls after the CANCEL", p.b.s.ActiveCalls())
	}
	// The phone's 180 reached node a through b: a timed the ringing, as on one node.
	evs := p.a.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.RingTime < 1 {
		t.Errorf("node a's ring_time %d, want the phone's 1.5 s of ringing", end.RingTime)
	}
}

// TestInternalLegAgentPhoneHoldReachesTheCallsNode: the agent's phone on node b puts the call
// on hold (re-INVITE inactive) and resumes; b passes both across the internal leg, so node a,
// which owns the call, emits call.held and call.resumed and counts the hold time.
func TestInternalLegAgentPhoneHoldReachesTheCallsNode(t *testing.T) {
	p := newClusterPair(t, 10*time.Second, 1, nil, "uas_hold.xml", "-rtp_echo")
	car := p.carrier(t, "uac_wait_bye.xml", 1)
	var evs []callevent.Event
	if !waitFor(20*time.Second, func() bool {
		evs = p.a.sink.all()
		return lastOf(evs, callevent.EventResumed) != nil
	}) {
		t.Fatalf("node a never saw the hold and resume: %v", eventTypes(evs))
	}
	if lastOf(evs, callevent.EventHeld) == nil {
		t.Errorf("node a: no call.held before call.resumed: %v", eventTypes(evs))
	}
	// The phone waits for a BYE: hang up the call on a.
	for _, c := range p.a.callsNow() {
		c.Hangup()
	}
	car.wait(t)
	p.phone.wait(t)
	if len(p.b.sink.all()) != 0 {
		t.Errorf("node b emitted events: %v", eventTypes(p.b.sink.all()))
	}
}

// callsNow returns the gateway's calls in progress.
func (g *testGateway) callsNow() []*Call {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	var out []*Call
	for c := range g.s.calls {
		out = append(out, c)
	}
	return out
}

// forgedInvite is an internal INVITE to node b from a raw socket bound to src, with offer value
// v signed under secret (no signature when secret is nil).
func forgedInvite(t *testing.T, src string, port int, callID, v string, secret []byte) string {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp", src+":0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", laddr, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lp := c.LocalAddr().(*net.UDPAddr).Port
	sig := ""
	if secret != nil {
		s := &Server{opts: Options{Cluster: ClusterOptions{Secret: secret}}}
		sig = "X-Switchboard-Signature: " + s.signOffer(callID, v) + "\r\n"
	}
	sdp := "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	msg := fmt.Sprintf("INVITE sip:agent-7@127.0.0.1:%d SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%s\r\n"+
		"From: <sip:+15551234567@%s:%d>;tag=f1\r\nTo: <sip:agent-7@127.0.0.1:%d>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\n"+
		"Contact: <sip:a@%s:%d>\r\nMax-Forwards: 70\r\nX-Switchboard-Offer: %s\r\n%s"+
		"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		port, src, lp, callID, src, lp, port, callID, src, lp, v, sig, len(sdp), sdp)
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(3 * time.Second)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		if r := string(buf[:n]); !strings.HasPrefix(r, "SIP/2.0 1") {
			return r
		}
	}
}

// TestInternalLegForgedInviteRefused: internal INVITEs node b must refuse with 403, each counted
// as a security event (internal_refused), and with nothing rung: a wrong secret, no signature,
// a stale timestamp (signed right), a source outside cluster.internal_networks (127.0.0.2,
// signed right), one claiming to come from b itself, and a replay of an accepted one. The
// control — the same INVITE, fresh and signed right from 127.0.0.1 — is admitted (it then
// fails to reach the unregistered agent: 480).
func TestInternalLegForgedInviteRefused(t *testing.T) {
	b := startRegistrar(t, func(o *Options) {
		o.Cluster = clusterOpts("b", nil)
		freePorts(t, o)
	})
	b.s.ClusterDialer(b.s.PhoneDialer())
	offer := func(node string, ts time.Time) string {
		return fmt.Sprintf("agent=7&call=9a3c5a52-8c1e-4a43-9b36-1f6f1d3c0e11&from=%%2B15551234567&node=%s&queue=support&ts=%d&v=1", node, ts.Unix())
	}
	now := time.Now()
	cases := []struct {
		name, src, v string
		secret       []byte
	}{
		{"wrong secret", "127.0.0.1", offer("a", now), []byte("not-the-cluster-secret-at-all-000000")},
		{"no signature", "127.0.0.1", offer("a", now), nil},
		{"stale timestamp", "127.0.0.1", offer("a", now.Add(-2*time.Minute)), testClusterSecret},
		{"outside internal_networks", "127.0.0.2", offer("a", now), testClusterSecret},
		{"claims to be this node", "127.0.0.1", offer("b", now), testClusterSecret},
	}
	for i, tc := range cases {
		res := forgedInvite(t, tc.src, b.port(), fmt.Sprintf("forged-%d@x", i), tc.v, tc.secret)
		if statusCode(res) != 403 {
			t.Errorf("%s: got %q, want 403", tc.name, firstLine(res))
		}
	}
	if v := b.counter("switchboard_security_events_total", "type", "internal_refused"); v != float64(len(cases)) {
		t.Errorf("internal_refused = %v, want %d", v, len(cases))
	}
	// The control: admitted, then 480 (agent 7 has no phone on b).
	good := offer("a", time.Now())
	if res := forgedInvite(t, "127.0.0.1", b.port(), "good-1@x", good, testClusterSecret); statusCode(res) != 480 {
		t.Fatalf("a well-signed internal INVITE: got %q, want 480 (admitted, agent unreachable)", firstLine(res))
	}
	// Its replay, with a new branch: refused.
	if res := forgedInvite(t, "127.0.0.1", b.port(), "good-1@x", good, testClusterSecret); statusCode(res) != 403 {
		t.Errorf("replayed internal INVITE: got %q, want 403", firstLine(res))
	}
	if v := b.counter("switchboard_security_events_total", "type", "internal_refused"); v != float64(len(cases)+1) {
		t.Errorf("internal_refused = %v after the replay, want %d", v, len(cases)+1)
	}
	if v := b.counter("switchboard_security_events_total", "type", "acl_reject"); v != 0 {
		t.Errorf("acl_reject = %v: internal INVITEs are not trunk calls", v)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// TestInternalLegManyOffersLeakNothing: eight calls one after another, each answered on node b
// over the internal leg and hung up by the caller, leave no goroutine behind once both nodes
// are closed.
func TestInternalLegManyOffersLeakNothing(t *testing.T) {
	requireSipp(t)
	ignore := goleak.IgnoreCurrent()
	baseG := runtime.NumGoroutine()
	const calls = 8
	func() {
		p := newClusterPair(t, 10*time.Second, calls, nil, "uas_agent.xml", "-rtp_echo")
		car := startSipp(t, p.dir, "uac_basic.xml", fmt.Sprintf("127.0.0.1:%d", p.a.port()), "-s", "15550197",
			"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", strconv.Itoa(calls), "-l", "1", "-d", "300")
		car.wait(t)
		p.phone.wait(t)
		for i := 0; i < calls; i++ {
			if r := p.result(t); r.err != nil || r.end != "caller" {
				t.Fatalf("offer %d: %+v", i, r)
			}
		}
		if v := p.b.counter("switchboard_cluster_offers_total", "direction", "received", "result", "answered"); v != calls {
			t.Errorf("node b answered %v offers, want %d", v, calls)
		}
		p.a.s.Close()
		p.b.s.Close()
	}()
	if !waitFor(20*time.Second, func() bool { return runtime.NumGoroutine() <= baseG+2 }) {
		t.Errorf("goroutines after Close %d, baseline %d", runtime.NumGoroutine(), baseG)
	}
	goleak.VerifyNone(t, ignore)
}

// TestInternalLegCarrierHoldCrossesToTheAgentsNode: the carrier holds the call on node a
// (re-INVITE sendonly, 2.5 s) and resumes; a times the hold (call.held, call.resumed, hold time
// in call.ended) and passes both across the internal leg, so node b's side of it gets a
// re-INVITE for each (its endpoint takes the hold's quiet for a hold, not a dead leg). Before,
// b's internal leg heard nothing of it.
func TestInternalLegCarrierHoldCrossesToTheAgentsNode(t *testing.T) {
	p := newClusterPair(t, 10*time.Second, 1, nil, "uas_agent.xml", "-rtp_echo")
	p.carrier(t, "uac_hold.xml", 1).wait(t)
	p.phone.wait(t)
	if r := p.result(t); r.err != nil || r.end != "caller" {
		t.Fatalf("offer: %+v", r)
	}
	evs := p.a.sink.waitEnded(t, 20*time.Second)
	if lastOf(evs, callevent.EventHeld) == nil || lastOf(evs, callevent.EventResumed) == nil {
		t.Fatalf("node a's events %v, want call.held and call.resumed", eventTypes(evs))
	}
	if end := lastOf(evs, callevent.EventEnded); end.HoldTime < 2 || end.HoldTime > 3 {
		t.Errorf("hold_time %d, want about 2.5 s", end.HoldTime)
	}
	// Node b: the internal INVITE, then the hold and the resume.
	if !waitFor(5*time.Second, func() bool { return p.b.counter("switchboard_sip_requests_total", "method", "INVITE") == 3 }) {
		t.Errorf("node b got %v INVITEs, want 3 (the offer, the hold, the resume)", p.b.counter("switchboard_sip_requests_total", "method", "INVITE"))
	}
}

// fakeControl is node a's ACD as the relayed softphone buttons see it.
type fakeControl struct {
	ops chan string
	err atomic.Pointer[error]
}

func (f *fakeControl) answer() error {
	if e := f.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (f *fakeControl) Hold(_ context.Context, id string) error {
	f.ops <- "hold " + id
	return f.answer()
}

func (f *fakeControl) Resume(_ context.Context, id string) error {
	f.ops <- "resume " + id
	return f.answer()
}

func (f *fakeControl) Transfer(_ context.Context, id string, to ivr.TransferTo) error {
	f.ops <- fmt.Sprintf("transfer %s agent=%d queue=%s", id, to.AgentID, to.Queue)
	return f.answer()
}

func (f *fakeControl) Consult(_ context.Context, id string, to ivr.TransferTo, _ func(ivr.ConsultEnd)) error {
	f.ops <- fmt.Sprintf("consult %s agent=%d queue=%s number=%s", id, to.AgentID, to.Queue, to.Number)
	return f.answer()
}

func (f *fakeControl) CompleteConsult(_ context.Context, id string) error {
	f.ops <- "consult_complete " + id
	return f.answer()
}

func (f *fakeControl) CancelConsult(_ context.Context, id string) error {
	f.ops <- "consult_cancel " + id
	return f.answer()
}

func (f *fakeControl) Supervise(id string, _ *media.Endpoint, mode ivr.SuperviseMode) (ivr.Supervision, error) {
	f.ops <- "supervise " + id + " " + string(mode)
	return nil, ivr.ErrNoCall
}

func (f *fakeControl) Conference(id string, _ ivr.ConferenceLeg) error {
	f.ops <- "conference " + id
	return ivr.ErrNoCall
}

func (f *fakeControl) ConferenceAgent(id string, agent int64, _ func(error)) error {
	f.ops <- fmt.Sprintf("conference %s agent %d", id, agent)
	return ivr.ErrNoCall
}

// TestInternalLegRelaysSoftphoneButtons: the softphone's hold, resume and transfer pressed on
// node b, where the agent answered a call of node a, reach node a's ACD (an INFO on the
// internal leg) with a's call id; a refusal there (no such call) comes back as ivr.ErrNoCall;
// a call b does not relay is ErrNotInternal (b's own ACD takes it). So do consults to an agent
// and a queue, their completion and cancellation, with a's refusals (no consult, no agent
// free, a transfer busy) coming back to b as the same errors (on main: 400 from a, an error
// naming no sentinel).
func TestInternalLegRelaysSoftphoneButtons(t *testing.T) {
	ctl := &fakeControl{ops: make(chan string, 8)}
	p := newClusterPair(t, 10*time.Second, 1, ctl, "uas_agent.xml", "-rtp_echo")
	car := startSipp(t, p.dir, "uac_basic.xml", fmt.Sprintf("127.0.0.1:%d", p.a.port()), "-s", "15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1", "-d", "8000")
	var callID string
	if !waitFor(10*time.Second, func() bool {
		for _, c := range p.b.callsNow() {
			if c.internal && c.carrier.isConfirmed() {
				callID = c.id
			}
		}
		return callID != ""
	}) {
		t.Fatal("node b never answered the internal leg")
	}
	if a := p.a.callsNow(); len(a) != 1 || a[0].id != callID {
		t.Fatalf("node b relays call %s, node a runs %v", callID, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, op := range []struct {
		name string
		to   ivr.TransferTo
		want string
	}{
		{"hold", ivr.TransferTo{}, "hold " + callID},
		{"resume", ivr.TransferTo{}, "resume " + callID},
		{"transfer", ivr.TransferTo{Queue: "sales"}, "transfer " + callID + " agent=0 queue=sales"},
	} {
		if err := p.b.s.RelayControl(ctx, callID, op.name, op.to); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if got := <-ctl.ops; got != op.want {
			t.Errorf("node a's ACD got %q, want %q", got, op.want)
		}
	}
	gone := fmt.Errorf("gone: %w", ivr.ErrNoCall)
	ctl.err.Store(&gone)
	if err := p.b.s.RelayControl(ctx, callID, "hold", ivr.TransferTo{}); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("refused hold: %v, want ivr.ErrNoCall", err)
	}
	<-ctl.ops
	if err := p.b.s.RelayControl(ctx, "9a3c5a52-8c1e-4a43-9b36-1f6f1d3c0e11", "hold", ivr.TransferTo{}); !errors.Is(err, ErrNotInternal) {
		t.Errorf("a call b does not relay: %v, want ErrNotInternal", err)
	}
	if err := p.b.s.RelayConsult(ctx, "9a3c5a52-8c1e-4a43-9b36-1f6f1d3c0e11", ivr.TransferTo{AgentID: 8}, nil); !errors.Is(err, ErrNotInternal) {
		t.Errorf("a consult on a call b does not relay: %v, want ErrNotInternal", err)
	}
	// Consults to an agent and a queue, completion and cancellation reach a's ACD as they
	// were asked (the consult's result comes back in an INFO of its own: relay_transfer.go),
	// and a's refusals come back as the same sentinel errors.
	ctl.err.Store(nil)
	if err := p.b.s.RelayConsult(ctx, callID, ivr.TransferTo{AgentID: 8}, nil); err != nil {
		t.Errorf("consult to agent 8: %v", err)
	}
	if got := <-ctl.ops; got != "consult "+callID+" agent=8 queue= number=" {
		t.Errorf("node a's ACD got %q for a consult to agent 8", got)
	}
	for _, op := range []string{"consult_complete", "consult_cancel"} {
		if err := p.b.s.RelayControl(ctx, callID, op, ivr.TransferTo{}); err != nil {
			t.Errorf("%s: %v", op, err)
		}
		if got := <-ctl.ops; got != op+" "+callID {
			t.Errorf("node a's ACD got %q, want %q", got, op+" "+callID)
		}
	}
	for _, refusal := range []error{ivr.ErrNoConsult, ivr.ErrNoAgentFree, ivr.ErrTransferBusy} {
		e := fmt.Errorf("refused: %w", refusal)
		ctl.err.Store(&e)
		if err := p.b.s.RelayControl(ctx, callID, "consult_complete", ivr.TransferTo{}); !errors.Is(err, refusal) {
			t.Errorf("complete refused with %v on a: %v on b", refusal, err)
		}
		<-ctl.ops
		if err := p.b.s.RelayConsult(ctx, callID, ivr.TransferTo{Queue: "sales"}, nil); !errors.Is(err, refusal) {
			t.Errorf("consult refused with %v on a: %v on b", refusal, err)
		}
		<-ctl.ops
	}
	car.wait(t)
	p.phone.wait(t)
}

// countingRecorder is a sip.Recorder that counts the packets its tap sees, by flow.
type countingRecorder struct{ rx, tx atomic.Int64 }

func (r *countingRecorder) StartCall(context.Context, string) (media.Tap, func(context.Context) (string, int64, error), error) {
	tap := func(p media.TapPacket) {
		if p.Flow == media.Received {
			r.rx.Add(1)
		} else {
			r.tx.Add(1)
		}
	}
	return tap, func(context.Context) (string, int64, error) { return "rec-1", 1, nil }, nil
}

// TestAdmitOneRuleForCarrierCallsAndInternalLegs: a carrier call and another node's internal
// leg are admitted by the same rule (admitLocked), so they share max_calls and the Call-ID loop
// check: with max_calls 1 and a carrier call live, an internal leg gets admitFull; an INVITE
// (of either kind) with the Call-ID of a live dialog gets admitLoop; once the carrier call is
// released, the internal leg gets in, and counts as the one call. Only the carrier call
// counts in its trunk's max_calls.
func TestAdmitOneRuleForCarrierCallsAndInternalLegs(t *testing.T) {
	s := startGateway(t, func(o *Options) { o.MaxCalls = 1 }).s
	carrier := &Call{s: s, trunk: "carrier"}
	cl := &leg{callID: "carrier-1@127.0.0.1", localTag: "a"}
	internal := &Call{s: s, internal: true}
	il := &leg{callID: "internal-1@node-a", localTag: "b"}
	admit := func(c *Call, l *leg, trunkMax int) admission {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.admitLocked(c, l, trunkMax)
	}
	if a := admit(carrier, cl, 2); a != admitted {
		t.Fatalf("carrier call: admission %d, want admitted", a)
	}
	if a := admit(internal, il, 0); a != admitFull {
		t.Errorf("internal leg beside a carrier call at max_calls 1: admission %d, want admitFull", a)
	}
	if a := admit(internal, &leg{callID: cl.callID, localTag: "c"}, 0); a != admitLoop {
		t.Errorf("internal leg with the carrier call's Call-ID: admission %d, want admitLoop", a)
	}
	s.mu.Lock()
	trunkCalls := s.trunkCalls["carrier"]
	s.mu.Unlock()
	if trunkCalls != 1 {
		t.Errorf("trunk carrier counts %d calls, want 1", trunkCalls)
	}
	s.release(carrier, cl)
	s.callsWG.Done()
	if a := admit(internal, il, 0); a != admitted {
		t.Fatalf("internal leg after the carrier call ended: admission %d, want admitted", a)
	}
	s.mu.Lock()
	calls, trunkCalls := len(s.calls), s.trunkCalls["carrier"]
	s.mu.Unlock()
	if calls != 1 || trunkCalls != 0 {
		t.Errorf("after the internal leg got in: %d calls, trunk carrier %d; want 1 and 0", calls, trunkCalls)
	}
	s.release(internal, il)
	s.callsWG.Done()
	if n := s.ActiveCalls(); n != 0 {
		t.Errorf("%d calls after both were released, want 0", n)
	}
}
