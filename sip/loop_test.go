package sip

import (
	"fmt"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestSecondInviteWithLiveCallIDRefused: a new INVITE (no To tag) reusing the Call-ID of a live
// call with another From tag gets 482 (RFC 3261 §8.2.2.2) and does not take the first call's
// dialog over; in-dialog requests with a wrong From or To tag get 481 (§12.2.2); the first
// call's own BYE still ends it. (Dialogs were keyed by Call-ID alone: the second INVITE was
// answered and replaced the first call's dialog, whose BYE then got 481.)
func TestSecondInviteWithLiveCallIDRefused(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	p.send(ackFor(g.port(), ok, 1))
	callID, to := header(ok, "Call-ID")[0], header(ok, "To")[0]

	second := rawInvite("+15550197", "", pcmuOffer)
	second = strings.Replace(second, ";tag=abc", ";tag=other", 1)
	second = second[:strings.Index(second, "Call-ID: ")] + "Call-ID: " + callID + second[strings.Index(second, "\nCSeq:"):]
	if res := udpExchange(t, g.port(), second, 5*time.Second); statusCode(res) != 482 {
		t.Fatalf("second INVITE with a live Call-ID: %d, want 482\n%s", statusCode(res), res)
	}

	bye := func(cseq int, fromTag, toHdr string) int {
		p.send(fmt.Sprintf("BYE sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKbye%d\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=%s\nTo: %s\nCall-ID: %s\nCSeq: %d BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
			g.port(), time.Now().UnixNano(), fromTag, toHdr, callID, cseq))
		return statusCode(p.recvUntil(5*time.Second, func(m string) bool { return strings.Contains(m, fmt.Sprintf("CSeq: %d BYE", cseq)) }))
	}
	wrongTo := to[:strings.Index(to, "tag=")] + "tag=nottheirs"
	if code := bye(2, "other", to); code != 481 {
		t.Errorf("BYE with a wrong From tag: %d, want 481", code)
	}
	if code := bye(3, "abc", wrongTo); code != 481 {
		t.Errorf("BYE with a wrong To tag: %d, want 481", code)
	}
	if code := bye(4, "abc", to); code != 200 {
		t.Fatalf("BYE of the first call: %d, want 200", code)
	}
	evs := g.sink.waitEnded(t, 10*time.Second)
	if e := lastOf(evs, callevent.EventEnded); e.Outcome != callevent.OutcomeAnswered {
		t.Errorf("first call outcome = %s", e.Outcome)
	}
	if n := len(g.sink.all()); n != len(evs) {
		t.Errorf("%d events in all, %d of the first call: the second INVITE made a call", n, len(evs))
	}
}

// TestLineBridgedToItselfIsRefused: a line whose target is the gateway itself on loopback. The
// b-leg INVITE comes back with the Call-ID of our own live leg and is refused with 482; the
// caller gets 482, one call was made, and nothing is left running. (It spiralled before: each
// hop a new call, until the RTP ports ran out.)
func TestLineBridgedToItselfIsRefused(t *testing.T) {
	port := testport.FreeUDP(t)
	g := startGateway(t, func(o *Options) {
		o.UDPAddr, o.TCPAddr = fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port)
		o.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:+15550197@127.0.0.1:%d", port))}}
	})
	if res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 10*time.Second); statusCode(res) != 482 {
		t.Fatalf("INVITE to a line bridged to itself: %d, want 482\n%s", statusCode(res), res)
	}
	g.sink.waitEnded(t, 10*time.Second)
	assertCallsGone(t, g, 1)
}

// TestSpiralBetweenTwoGatewaysEndsWith483: a line of gateway 1 bridges to gateway 2, whose line
// bridges back to gateway 1 — every hop a new Call-ID, so only the hop count can stop it.
// Max-Forwards is carried across each B2BUA minus one (RFC 7332 §4), so a carrier INVITE with
// Max-Forwards 10 makes ten calls (five on each) and the eleventh INVITE gets 483 Too Many Hops
// (RFC 3261 §16.3), relayed back hop by hop to the carrier. (Every b-leg started again at 70
// before: the spiral ran until the RTP ports were gone.)
func TestSpiralBetweenTwoGatewaysEndsWith483(t *testing.T) {
	p1, p2 := testport.FreeUDP(t), testport.FreeUDP(t)
	at := func(port int) func(*Options) {
		return func(o *Options) {
			o.UDPAddr, o.TCPAddr = fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port)
			other := p2
			if port == p2 {
				other = p1
			}
			o.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:+15550197@127.0.0.1:%d", other))}}
		}
	}
	g1, g2 := startGateway(t, at(p1)), startGateway(t, at(p2))
	inv := strings.Replace(rawInvite("+15550197", "", pcmuOffer), "Max-Forwards: 70", "Max-Forwards: 10", 1)
	if res := udpExchange(t, g1.port(), inv, 20*time.Second); statusCode(res) != 483 {
		t.Fatalf("spiral: caller got %d, want 483\n%s", statusCode(res), res)
	}
	assertCallsGone(t, g1, 5)
	assertCallsGone(t, g2, 5)
	if v := g1.counter("switchboard_security_events_total", "type", "loop_detected"); v != 1 {
		t.Errorf("loop_detected security events on gateway 1 = %v, want 1", v)
	}
}

// assertCallsGone waits until no call is active and every started call's ended event has
// arrived (a call leaves the active set before its ended event reaches the sink, so the count
// alone raced), then checks that exactly calls calls were made, each ended failed.
func assertCallsGone(t *testing.T, g *testGateway, calls int) {
	t.Helper()
	count := func() (started, ended int) {
		for _, e := range g.sink.all() {
			switch e.Type {
			case callevent.EventStarted:
				started++
			case callevent.EventEnded:
				ended++
			}
		}
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s, e := count(); g.s.ActiveCalls() == 0 && s == e && s >= calls {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := g.s.ActiveCalls(); n != 0 {
		t.Fatalf("%d calls still active", n)
	}
	for _, e := range g.sink.all() {
		if e.Type == callevent.EventEnded && e.Outcome != callevent.OutcomeFailed {
			t.Errorf("call %s ended %s, want failed", e.CallID, e.Outcome)
		}
	}
	if started, ended := count(); started != calls || ended != calls {
		t.Errorf("%d calls started, %d ended, want %d", started, ended, calls)
	}
}
