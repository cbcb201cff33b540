package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCancelToADeadDeskEndsTheCallAfter64T1: the carrier CANCELs a bridged call after the desk's
// 180, and the desk answers neither our CANCEL nor the INVITE again (a far end that crashed or
// aborted the call). RFC 3261 §9.1: with no final response 64×T1 after the CANCEL went, the
// INVITE's transaction is taken as cancelled — before, the leg waited for the whole ring timeout
// plus 64×T1 (minutes), holding the call, its ports and a max_calls slot.
func TestCancelToADeadDeskEndsTheCallAfter64T1(t *testing.T) {
	g, _, car, _ := cancelAfterDesk180(t)
	if r := car.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 487") }); r == "" {
		t.Error("no 487 to the carrier")
	}
	if !waitFor(15*time.Second, func() bool { return g.s.ActiveCalls() == 0 }) {
		t.Fatalf("the call is still live 15 s after the CANCEL (64×T1 is 1.6 s): %d calls", g.s.ActiveCalls())
	}
}

// TestCancelCrossingADeadDesk2xxEndsTheCall: the carrier CANCELs a bridged call just after the
// desk's 180; our CANCEL to the desk crosses the desk's 200 OK, and the desk then answers
// nothing more (as SIPp does after it aborted a call on the unexpected CANCEL: seen once in
// 2,000 calls of `make bench`'s CPS step, where the gateway kept that call for minutes). RFC
// 3261 §9.1 and §15: the 2xx that crossed our CANCEL is ACKed and BYEd; the BYE times out (64×T1)
// and the call must end then — it must never outlive its timers.
func TestCancelCrossingADeadDesk2xxEndsTheCall(t *testing.T) {
	g, desk, car, dinv := cancelAfterDesk180(t)
	// The desk's 200 crosses the CANCEL; the desk answers nothing after it.
	sdp := strings.ReplaceAll(pcmuOffer, "\n", "\r\n")
	desk.send(strings.Replace(respondTo(dinv, 200, "OK", "Contact: <sip:desk@127.0.0.1:LPORT>\nContent-Type: application/sdp\n"),
		"Content-Length: 0\n\n", fmt.Sprintf("Content-Length: %d\n\n%s", len(sdp), sdp), 1))
	if r := car.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 487") }); r == "" {
		t.Error("no 487 to the carrier")
	}
	if !waitFor(15*time.Second, func() bool { return g.s.ActiveCalls() == 0 }) {
		t.Fatalf("the call is still live 15 s later (64×T1 is 1.6 s): %d calls", g.s.ActiveCalls())
	}
}

// cancelAfterDesk180 sets up a call bridged to a hand-driven desk (T1 25 ms: 64×T1 = 1.6 s; the
// ring timeout the default), has the desk ring, the carrier CANCEL on that 180, and returns
// once our CANCEL reached the desk: the gateway, the desk, the carrier and the desk's INVITE.
func cancelAfterDesk180(t *testing.T) (*testGateway, *udpPeer, *udpPeer, string) {
	t.Helper()
	desk := newUDPPeer(t, 0)
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:desk@127.0.0.1:%d", desk.port))}}
		o.T1 = 25 * time.Millisecond // 64×T1 = 1.6 s
	})
	desk.gw.Port = g.port()
	car := newUDPPeer(t, g.port())
	inv := rawInvite("+15550197", "", pcmuOffer)
	car.send(inv)
	dinv := desk.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if dinv == "" {
		t.Fatal("no INVITE at the desk")
	}
	desk.send(respondTo(dinv, 180, "Ringing", "Contact: <sip:desk@127.0.0.1:LPORT>\n"))
	if r := car.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 180") }); r == "" {
		t.Fatal("no 180 to the carrier")
	}
	car.send(cancelOf(inv))
	if c := desk.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "CANCEL ") }); c == "" {
		t.Fatal("no CANCEL at the desk")
	}
	return g, desk, car, dinv
}
