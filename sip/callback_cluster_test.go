package sip

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestCallback_AgentOnAnotherNodeTakesTheCallback: agent 7's SIP phone is registered with node
// b only; node a, which runs a queue callback (the caller is gone), offers it to agent 7 with
// Node "b": the internal leg is the first leg of the callback's own outbound call, b rings the
// phone (a callback: the offer says so), the phone answers, and a then dials the caller through
// its trunk on that call and bridges the answer to the agent across the nodes. The callback's
// call.started carries callback_of and the attempt. Before, the offer failed at once (the
// caller's call no longer exists on a: ErrUnknownCall) and counted as the agent's miss.
func TestCallback_AgentOnAnotherNodeTakesTheCallback(t *testing.T) {
	farPort := testport.FreeUDP(t)
	p := newClusterPairWith(t, func(o *Options) {
		o.Trunks = append(o.Trunks, Trunk{Name: "carrier-out", OutboundURI: fmt.Sprintf("sip:127.0.0.1:%d", farPort)})
	}, 10*time.Second, 1, nil, "uas_agent.xml", "-rtp_echo")
	// The caller's phone, reached through the trunk: answers, echoes, hangs up after 2 s.
	far := startSipp(t, p.dir, "uas_bye.xml", "-p", strconv.Itoa(farPort), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"-m", "1", "-rtp_echo")

	d := p.a.s.ClusterDialer(p.a.s.PhoneDialer())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const waiting = "7d1f1c7e-2b1a-4c7a-9a57-0b8f3c1d2e4f" // the call whose caller asked for it
	leg, err := d.Offer(ctx, ivr.Offer{CallID: waiting, AgentID: 7, Queue: "support", From: "+15551230000",
		Line: "+15550197", Language: "en", Node: "b", Callback: true})
	if err != nil {
		t.Fatalf("callback offer to agent 7 on node b: %v", err)
	}
	err = p.a.s.DialCallback(ctx, ivr.CallbackRequest{CallID: waiting, Queue: "support", To: "+15551230000",
		Line: "+15550197", Language: "en", AgentID: 7, Attempt: 1, Attempts: 1}, leg)
	_ = leg.Hangup(context.Background())
	if err != nil {
		t.Fatalf("DialCallback: %v, want the caller answered", err)
	}
	far.wait(t)
	p.phone.wait(t)
	evs := p.a.sink.waitEnded(t, 20*time.Second)
	st := lastOf(evs, callevent.EventStarted)
	if st == nil || st.CallbackOf != waiting || st.Attempt != 1 || st.Direction != "outbound" {
		t.Errorf("the callback's call.started %+v, want an outbound call with callback_of %s, attempt 1", st, waiting)
	}
	if lastOf(evs, callevent.EventAnswered) == nil {
		t.Errorf("the callback's call has no call.answered: %v", eventTypes(evs))
	}
	if v := p.a.counter("switchboard_cluster_offers_total", "direction", "sent", "result", "answered"); v != 1 {
		t.Errorf("node a: cluster offers sent answered = %v, want 1", v)
	}
	if !waitFor(10*time.Second, func() bool { return p.a.s.ActiveCalls() == 0 && p.b.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: a %d, b %d", p.a.s.ActiveCalls(), p.b.s.ActiveCalls())
	}
}
