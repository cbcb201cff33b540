package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// answerInvite answers the next INVITE the peer gets with 200 and a PCMU offer.
func answerInvite(t *testing.T, p *udpPeer) {
	t.Helper()
	inv := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("no INVITE to the trunk")
	}
	sdp := strings.ReplaceAll(pcmuOffer, "\n", "\r\n")
	p.send(strings.Replace(respondTo(inv, 200, "OK", "Contact: <sip:party@127.0.0.1:LPORT>\nContent-Type: application/sdp\n"),
		"Content-Length: 0\n\n", fmt.Sprintf("Content-Length: %d\n\n%s", len(sdp), sdp), 1))
}

// Rule (issue 21, conference): an external party dialled for a conference goes through the
// trunk as an outbound call of its own that makes no ticket (ticket choice none); once it
// answers it is handed to Join with its endpoint; the conference hanging it up sends BYE and
// ends its call answered, calling Ended once; a Join that refuses hangs up at once.
func TestDialConference_JoinsOnAnswerAndHangsUp(t *testing.T) {
	party := newUDPPeer(t, 0)
	g := startGateway(t, func(o *Options) { o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", party.port) })
	party.gw.Port = g.port()
	joined := make(chan ivr.ConferenceLeg, 1)
	ended := make(chan struct{}, 2)
	id, err := g.s.DialConference(context.Background(), ConferenceDial{CallID: "call-1", AgentID: 7, Number: "+15557654321",
		Join:  func(callID string, leg ivr.ConferenceLeg) error { joined <- leg; return nil },
		Ended: func() { ended <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	answerInvite(t, party)
	var leg ivr.ConferenceLeg
	select {
	case leg = <-joined:
	case <-time.After(10 * time.Second):
		t.Fatal("the answered party was not handed to Join")
	}
	if leg.Endpoint() == nil {
		t.Fatal("the party's leg has no endpoint")
	}
	if err := leg.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bye := party.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") }); bye == "" {
		t.Fatal("no BYE to the party the conference hung up")
	}
	evs := g.sink.waitEnded(t, 10*time.Second)
	if e := lastOf(evs, callevent.EventStarted); e.CallID != id || e.Direction != "outbound" || e.TicketChoice != "none" {
		t.Errorf("call.started %+v, want the party's outbound call with ticket choice none", e)
	}
	if e := lastOf(evs, callevent.EventEnded); e.Outcome != callevent.OutcomeAnswered {
		t.Errorf("call.ended %s, want answered", e.Outcome)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("Ended not called")
	}

	// Join refuses (the call ended meanwhile): the party is hung up at once.
	party2 := newUDPPeer(t, 0)
	g2 := startGateway(t, func(o *Options) { o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", party2.port) })
	party2.gw.Port = g2.port()
	if _, err := g2.s.DialConference(context.Background(), ConferenceDial{CallID: "gone", Number: "+15557654321",
		Join: func(string, ivr.ConferenceLeg) error { return ivr.ErrNoCall }}); err != nil {
		t.Fatal(err)
	}
	answerInvite(t, party2)
	if bye := party2.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") }); bye == "" {
		t.Fatal("no BYE to a party Join refused")
	}
	if _, err := g.s.DialConference(context.Background(), ConferenceDial{Number: "+15557654321"}); err == nil || errors.Is(err, ErrNoOutboundTrunk) {
		t.Errorf("no call to join: %v, want a refusal", err)
	}
}
