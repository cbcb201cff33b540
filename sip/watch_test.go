package sip

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// A far end we placed a leg to (a desk phone, an agent's phone, a carrier) that vanishes
// without BYE must not hold the bridge up: the leg is watched like the carrier's. In both tests
// the carrier streams RTP throughout and expects our BYE; the desk (uas_vanish.xml) checks our
// INVITE asked for session timers and passes only on our BYE. (Before, nothing watched a leg we
// placed: both calls ran until SIPp gave up.)

// TestBridgeFarEndStopsRTPEndsCall: the desk answers and sends no RTP; after MediaTimeout its leg
// is ended with BYE, the carrier gets BYE, and the call ends answered.
func TestBridgeFarEndStopsRTPEndsCall(t *testing.T) {
	b := newBridgeSetup(t, "uas_vanish.xml", []string{"-key", "se", "1800"}, func(o *Options) {
		o.MediaTimeout = time.Second
	})
	car := b.carrier(t, "uac_wait_bye.xml")
	assertFarEndVanishEnded(t, b, car)
}

// TestBridgeFarEndNeverRefreshesEndsCall: the desk takes on refreshing a 2 s session (RFC 4028,
// refresher=uas in its 2xx) and never refreshes; before expiry (2 s − 2/3 s) we end its leg with
// BYE (§10), the carrier gets BYE, and the call ends answered.
func TestBridgeFarEndNeverRefreshesEndsCall(t *testing.T) {
	b := newBridgeSetup(t, "uas_vanish.xml", []string{"-key", "se", "2"}, func(o *Options) {
		o.SessionExpires, o.MinSE = 2*time.Second, time.Second
	})
	car := b.carrier(t, "uac_wait_bye.xml")
	assertFarEndVanishEnded(t, b, car)
}

func assertFarEndVanishEnded(t *testing.T, b *bridgeSetup, car *sippProc) {
	t.Helper()
	evs := b.g.sink.waitEnded(t, 10*time.Second)
	end := lastOf(evs, callevent.EventEnded)
	if end.Outcome != callevent.OutcomeAnswered || end.Duration > 5 {
		t.Errorf("call.ended = %s after %d s, want answered within seconds", end.Outcome, end.Duration)
	}
	car.wait(t)    // the carrier got our BYE
	b.desk.wait(t) // the desk got our BYE
	if n := b.g.s.ActiveCalls(); n != 0 {
		t.Errorf("%d calls still active", n)
	}
}

// TestBridgeWeRefreshFarEndVanishes: the desk (a hand-driven peer) answers with a 1 s session
// and refresher=uac, making us the refresher of the leg we placed (RFC 4028 §7.2) — or, not
// doing session timers, with no Session-Expires at all, which leaves refreshing at our interval
// to us. We send the refresh re-INVITE (refresher=uac, our offer) at half the interval; the
// desk has vanished and never answers, so when the refresh transaction times out we BYE the
// desk (§10) and the carrier, and the call ends answered.
func TestBridgeWeRefreshFarEndVanishes(t *testing.T) {
	for _, tc := range []struct{ name, se string }{
		{"desk makes us refresher", "Session-Expires: 1;refresher=uac\n"},
		{"desk without session timers", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { testWeRefreshFarEndVanishes(t, tc.se) })
	}
}

func testWeRefreshFarEndVanishes(t *testing.T, deskSE string) {
	desk := newUDPPeer(t, 0)
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:desk@127.0.0.1:%d", desk.port))}}
		o.SessionExpires, o.MinSE = time.Second, time.Second
		o.T1 = 25 * time.Millisecond // the refresh times out after 64×T1 = 1.6 s
	})
	desk.gw.Port = g.port()
	car := newUDPPeer(t, g.port())
	car.send(rawInvite("+15550197", "", pcmuOffer))
	inv := desk.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("no INVITE at the desk")
	}
	if se := header(inv, "Session-Expires"); len(se) != 1 || se[0] != "1" || len(header(inv, "Min-SE")) != 1 {
		t.Errorf("INVITE Session-Expires %q Min-SE %q, want our interval and Min-SE (RFC 4028 §7.1)", se, header(inv, "Min-SE"))
	}
	sdp := strings.ReplaceAll(pcmuOffer, "\n", "\r\n")
	desk.send(strings.Replace(respondTo(inv, 200, "OK", "Contact: <sip:desk@127.0.0.1:LPORT>\n"+deskSE+"Content-Type: application/sdp\n"),
		"Content-Length: 0\n\n", fmt.Sprintf("Content-Length: %d\n\n%s", len(sdp), sdp), 1))
	if ok := car.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") }); ok == "" {
		t.Fatal("no 200 to the carrier")
	} else {
		car.send(ackFor(g.port(), ok, 1))
	}
	refresh := desk.recvUntil(5*time.Second, func(m string) bool {
		return strings.HasPrefix(m, "INVITE ") && !strings.Contains(m, "CSeq: 1 INVITE")
	})
	if refresh == "" {
		t.Fatal("no refresh re-INVITE from us as refresher")
	}
	if se := header(refresh, "Session-Expires"); len(se) != 1 || se[0] != "1;refresher=uac" || !strings.Contains(refresh, "m=audio ") {
		t.Errorf("refresh Session-Expires %q (want 1;refresher=uac) or no offer:\n%s", se, refresh)
	}
	if bye := desk.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") }); bye == "" {
		t.Fatal("no BYE to the desk after the refresh went unanswered")
	}
	if bye := car.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") }); bye == "" {
		t.Fatal("no BYE to the carrier")
	}
	if e := lastOf(g.sink.waitEnded(t, 10*time.Second), callevent.EventEnded); e.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s, want answered", e.Outcome)
	}
}

// TestOriginateCalleeStopsRTPEndsCall: an agent's outbound call through the trunk; the callee
// answers and then sends no RTP. The media timeout of the leg we placed sends BYE to the callee,
// ends the Answered handler's context (the agent side is told) and the call ends answered.
func TestOriginateCalleeStopsRTPEndsCall(t *testing.T) {
	callee := newUDPPeer(t, 0)
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", callee.port)
		o.MediaTimeout = time.Second
	})
	callee.gw.Port = g.port()
	handlerDone := make(chan struct{})
	_, err := g.s.Originate(context.Background(), OriginateOptions{Trunk: "carrier", Number: "+15557654321", Line: "+15550197",
		Answered: func(ctx context.Context, c *Call, leg *OutboundLeg) error {
			defer close(handlerDone)
			<-ctx.Done()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	inv := callee.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("no INVITE")
	}
	sdp := strings.ReplaceAll(pcmuOffer, "\n", "\r\n")
	callee.send(strings.Replace(respondTo(inv, 200, "OK", "Contact: <sip:callee@127.0.0.1:LPORT>\nContent-Type: application/sdp\n"),
		"Content-Length: 0\n\n", fmt.Sprintf("Content-Length: %d\n\n%s", len(sdp), sdp), 1))
	if bye := callee.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") }); bye == "" {
		t.Fatal("no BYE to the silent callee")
	}
	select {
	case <-handlerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the Answered handler's context did not end")
	}
	if e := lastOf(g.sink.waitEnded(t, 10*time.Second), callevent.EventEnded); e.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s, want answered", e.Outcome)
	}
}
