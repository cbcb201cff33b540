package sip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// phoneTransfers is node b's Options.Refer, PhoneConsult and PhoneComplete wired as the binary
// wires them (cmd/switchboard: web.Transfers over a sip.ClusterACD): the call must be the
// asking agent's (CallAgent), then the ClusterACD's Transfer, ConsultOn or CompleteConsult.
// The dial plan's check web adds is not modelled (the numbers here are E.164). The phone may
// REFER as soon as it answered: the hooks wait until the test has made the cluster and its
// targets ready (ready closed, acd set before).
type phoneTransfers struct {
	acd   ClusterACD
	ready chan struct{}
}

func newPhoneTransfers() *phoneTransfers { return &phoneTransfers{ready: make(chan struct{})} }

// start hands the hooks node b's ClusterACD.
func (pt *phoneTransfers) start(acd ClusterACD) {
	pt.acd = acd
	close(pt.ready)
}

// own waits until the test is ready and checks that callID is agentID's, as web.Transfers does.
func (pt *phoneTransfers) own(ctx context.Context, callID string, agentID int64) error {
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-pt.ready:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("test not ready: %w", ivr.ErrNoCall)
	}
	if owner, live := pt.acd.CallAgent(callID); !live || owner != agentID {
		return fmt.Errorf("not agent %d's call: %w", agentID, ivr.ErrNoCall)
	}
	return nil
}

// wire sets node b's options.
func (pt *phoneTransfers) wire(o *Options) {
	o.Refer = func(ctx context.Context, callID string, agentID int64, to ReferTarget) error {
		if err := pt.own(ctx, callID, agentID); err != nil {
			return err
		}
		return pt.acd.Transfer(ctx, callID, ivr.TransferTo{AgentID: to.AgentID, Number: to.Number})
	}
	o.PhoneConsult = func(ctx context.Context, callID string, agentID int64, to ReferTarget, via ivr.AgentLeg, onEnd func(ivr.ConsultEnd)) error {
		if err := pt.own(ctx, callID, agentID); err != nil {
			return err
		}
		return pt.acd.ConsultOn(ctx, callID, ivr.TransferTo{AgentID: to.AgentID, Number: to.Number}, via, onEnd)
	}
	o.PhoneComplete = func(ctx context.Context, callID string, agentID int64) error {
		if err := pt.own(ctx, callID, agentID); err != nil {
			return err
		}
		return pt.acd.CompleteConsult(ctx, callID)
	}
}

// referCluster is a transferCluster whose agent 7 phone (on node b) runs phoneScenario and
// whose node b carries out the phone's REFERs (phoneTransfers). ready runs before the hooks
// are let go (nil: nothing to do).
func referCluster(t *testing.T, ringTimeout time.Duration, farScenario string, farArgs []string, phoneScenario string, phoneArgsFor func(bPort int) []string, ready func(*transferCluster)) *transferCluster {
	t.Helper()
	pt := newPhoneTransfers()
	farCalls := 0
	if farScenario != "" {
		farCalls = 1
	}
	tc := newTransferClusterWith(t, transferSetup{ringTimeout: ringTimeout, farCalls: farCalls, farScenario: farScenario,
		farArgs: farArgs, phoneScenario: phoneScenario, phoneArgsFor: phoneArgsFor, bOpt: pt.wire})
	if ready != nil {
		ready(tc)
	}
	pt.start(tc.bACD)
	return tc
}

// args is a phone's fixed arguments as referCluster takes them.
func args(a ...string) func(int) []string { return func(int) []string { return a } }

// TestCrossNode_PhoneBlindReferToAnotherAgent: agent 7's SIP phone, registered with node b,
// answered node a's call over the internal leg and transfers it blindly with REFER to agent 8
// (Refer-To sip:agent2@…), whose SIP phone is registered with node b too. Node b carries the
// REFER out as on one node (202, NOTIFY 100 Trying), relayed to a's ACD, which rings agent 8
// over a second internal leg; the phone gets NOTIFY 200 OK (Subscription-State terminated)
// and only then its BYE (the phone's scenario checks the order). The caller ends up with
// agent 8: b's CallAgent names agent 8, agent 8's phone echoes the caller's audio back over
// the internal leg, and a's events carry call.transferred from agent 7 to agent 8 and agent
// 8's call.answered (TU-7). Before, the NOTIFY raced the BYE that followed the call's node's
// result and the BYE came first (the phone's NOTIFY 200 never came).
func TestCrossNode_PhoneBlindReferToAnotherAgent(t *testing.T) {
	var ph2 *sippProc
	tc := referCluster(t, 0, "", nil, "uas_agent_refer_to.xml",
		args("-rtp_echo", "-key", "refer_to", "agent2"), func(tc *transferCluster) {
			phone2 := testport.FreeUDP(t)
			ph2 = startSipp(t, tc.dir, "uas_echo.xml", "-p", strconv.Itoa(phone2), "-mp", strconv.Itoa(testport.FreeMedia(t)),
				"-m", "1", "-rtp_echo")
			startSipp(t, tc.dir, "uac_register.xml", fmt.Sprintf("127.0.0.1:%d", tc.b.port()), "-s", "agent2", "-au", "agent2", "-ap", "other",
				"-key", "contact_port", strconv.Itoa(phone2), "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
			if _, err := tc.acd.SetState(8, ivr.StateAvailable); err != nil {
				t.Fatal(err)
			}
		})
	tc.phone.wait(t) // REFER 202, NOTIFY 100, NOTIFY 200 OK, then the BYE
	tc.checkWithAgent8(t, ph2)
}

// TestCrossNode_PhoneBlindReferToOutsideNumber: agent 7's phone on node b REFERs node a's
// call to an outside number; a dials it through its trunk (the transfer relayed as the page's
// is), and once the far end answered the phone gets NOTIFY 200 OK, then its BYE (the agent is
// released). The caller talks with the far end (its tone reaches the far end and the echo
// comes back); a's events: call.transfer_started (blind, to_number) and call.transferred
// from agent 7. Before, the phone's final NOTIFY raced its BYE and lost.
func TestCrossNode_PhoneBlindReferToOutsideNumber(t *testing.T) {
	tc := referCluster(t, 0, "uas_echo.xml", []string{"-rtp_echo"}, "uas_agent_refer_to.xml",
		args("-rtp_echo", "-key", "refer_to", outsideNumber), nil)
	tc.phone.wait(t)
	if !waitFor(20*time.Second, func() bool {
		_, far := tc.legs(t)
		return far.PacketsReceived >= 50 && far.PacketsSent >= 50
	}) {
		_, far := tc.legs(t)
		t.Errorf("far leg rx %d tx %d, want the caller's tone to the far end and its echo back", far.PacketsReceived, far.PacketsSent)
	}
	evs := tc.hangUp(t)
	st := lastOf(evs, callevent.EventTransferStarted)
	if st == nil || st.TransferMode != callevent.TransferBlind || st.ToNumber != outsideNumber || st.FromAgentID != 7 {
		t.Errorf("call.transfer_started %+v, want agent 7's blind transfer to %s", st, outsideNumber)
	}
	if tr := lastOf(evs, callevent.EventTransferred); tr == nil || tr.ToNumber != outsideNumber || tr.FromAgentID != 7 {
		t.Errorf("call.transferred %+v, want agent 7 to %s", tr, outsideNumber)
	}
}

// TestCrossNode_PhoneBlindReferToBusyNumberReturnsTheCaller: the outside number answers
// 486 Busy Here. Agent 7's phone on node b REFERs node a's call to it: the phone's final
// NOTIFY carries "SIP/2.0 486 Busy Here" (what the target answered, passed from a's ACD over
// the internal leg), no BYE follows, and the caller is back with agent 7 on both nodes — the
// phone's echo of the caller reaches a's internal leg again; a's events have call.resumed and
// no call.transferred. Before, the phone's NOTIFY said 603 Declined.
func TestCrossNode_PhoneBlindReferToBusyNumberReturnsTheCaller(t *testing.T) {
	tc := referCluster(t, 0, "uas_busy.xml", nil, "uas_agent_refer_busy.xml",
		args("-rtp_echo", "-key", "refer_to", outsideNumber), nil)
	tc.far.wait(t) // 486 sent and ACKed
	tc.awaitEvent(t, callevent.EventResumed)
	if id, ok := tc.acd.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("node a's ACD has %d, %v on the call, want agent 7 still", id, ok)
	}
	if id, ok := tc.bACD.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("node b's CallAgent = %d, %v, want agent 7 still", id, ok)
	}
	rx0 := tc.internalRx()
	if !waitFor(20*time.Second, func() bool { return tc.internalRx() >= rx0+50 }) {
		t.Errorf("after the failed transfer node a's internal leg received %d packets (from %d), want the agent's echo of the caller", tc.internalRx(), rx0)
	}
	evs := tc.hangUp(t) // the phone's scenario got its final NOTIFY before this BYE
	if lastOf(evs, callevent.EventTransferred) != nil {
		t.Errorf("a transfer to a busy number emitted call.transferred: %v", eventTypes(evs))
	}
}

// TestCrossNode_PhoneAttendedReferWithReplaces: agent 7's phone on node b transfers node a's
// call attended (RFC 5589 §7): it holds the call, calls the outside number through node b
// (its consult call, digest-authenticated), which relays the consult to a (ClusterACD.ConsultOn:
// a holds the caller and dials the number through its trunk, b bridges the internal leg to the
// phone's consult call); once answered, the phone REFERs the call with Replaces naming its
// consult call: 202, NOTIFY 100 Trying, NOTIFY 200 OK, then b's BYEs of both its calls. The
// caller talks with the far end (tone there, echo back), and a's events carry
// call.transfer_started (consult, to_number, agent 7) and call.transferred. Before, node b's
// ConsultOn was its own ACD's, which serves no call of a's: the consult call was refused 403.
func TestCrossNode_PhoneAttendedReferWithReplaces(t *testing.T) {
	tc := referCluster(t, 0, "uas_echo.xml", []string{"-rtp_echo"}, "uas_agent_attended.xml", func(bPort int) []string {
		return []string{"-rtp_echo", "-au", "agent1", "-ap", "secret", "-key", "target", outsideNumber,
			"-key", "gw_port", strconv.Itoa(bPort), "-auth_uri", fmt.Sprintf("%s@127.0.0.1:%d", outsideNumber, bPort)}
	}, nil)
	st := tc.awaitEvent(t, callevent.EventTransferStarted)
	if st.TransferMode != callevent.TransferConsult || st.ToNumber != outsideNumber || st.FromAgentID != 7 {
		t.Errorf("call.transfer_started %+v, want agent 7's consult of %s", st, outsideNumber)
	}
	tc.phone.wait(t) // consult call answered, REFER with Replaces 202, NOTIFY 100, NOTIFY 200, both BYEs
	carrier0, _ := tc.legs(t)
	if !waitFor(20*time.Second, func() bool {
		carrier, far := tc.legs(t)
		return far.PacketsReceived >= 50 && far.PacketsSent >= 50 && carrier.PacketsSent >= carrier0.PacketsSent+50
	}) {
		carrier, far := tc.legs(t)
		t.Errorf("after the completion: far leg rx %d tx %d, caller's leg tx %d (+%d); want the caller's tone to the far end and its echo back",
			far.PacketsReceived, far.PacketsSent, carrier.PacketsSent, carrier.PacketsSent-carrier0.PacketsSent)
	}
	evs := tc.hangUp(t)
	if tr := lastOf(evs, callevent.EventTransferred); tr == nil || tr.ToNumber != outsideNumber || tr.FromAgentID != 7 {
		t.Fatalf("call.transferred %+v, want agent 7 to %s: %v", tr, outsideNumber, eventTypes(evs))
	}
}

// TestRelayBridgeSwapsRaceTheRelaysEnd loops what changes the relay's bridge at once — the
// phone's consult call bridged to the internal leg (RelayConsultOn), the consult's end bridging
// the phone's leg back (watchRelayConsult), and the relay ending (closeRelayBridge) — on
// goroutines of their own, in every order: nothing blocks, onEnd is told once, no bridge is
// left on any of the three endpoints once the relay ended (a bridge made as it ended undoes
// itself), and the race detector sees no unguarded access.
func TestRelayBridgeSwapsRaceTheRelaysEnd(t *testing.T) {
	lo := testport.FreeRange(t, 20000, 32000, 12)
	alloc, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), lo, lo+11)
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *media.Endpoint {
		e, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, RTCPInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	internal, phone, consult := mk(), mk(), mk()
	never := make(chan struct{})
	agent := &ivr.MediaAgentLeg{Endpoint: phone, Ended: never}
	var hangups atomic.Int32
	via := &ivr.MediaAgentLeg{Endpoint: consult, Ended: never, HangupFunc: func(context.Context) error { hangups.Add(1); return nil }}
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := range 300 {
		c := &Call{s: s, carrier: &leg{ep: internal}, relayLeg: agent}
		if err := c.bridgeRelay(agent); err != nil {
			t.Fatalf("round %d: the first bridge: %v", i, err)
		}
		ends := make(chan ivr.ConsultEnd, 1)
		told := make(chan ivr.ConsultEnd, 2)
		steps := []func(){
			func() { _ = c.bridgeRelay(via) },
			func() { ends <- ivr.ConsultCancelled },
			func() { c.closeRelayBridge() },
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); c.watchRelayConsult(via, ends, func(e ivr.ConsultEnd) { told <- e }) }()
		for j := range steps {
			step := steps[(i+j)%len(steps)]
			wg.Add(1)
			go func() { defer wg.Done(); step() }()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the bridge changes blocked", i)
		}
		if e := <-told; e != ivr.ConsultCancelled || len(told) != 0 {
			t.Fatalf("round %d: onEnd told %q (%d more), want %q once", i, e, len(told), ivr.ConsultCancelled)
		}
		for name, ep := range map[string]*media.Endpoint{"internal leg": internal, "phone's leg": phone, "consult call": consult} {
			if p := media.BridgedTo(ep); p != nil {
				t.Fatalf("round %d: the %s's endpoint is still bridged after the relay ended", i, name)
			}
		}
	}
	if hangups.Load() != 300 {
		t.Errorf("the consult call was hung up %d times in 300 cancelled consults, want 300", hangups.Load())
	}
}

// TestCrossNode_PhoneHangsUpItsConsultCallReturnsTheCaller: agent 7's phone on node b starts
// an attended transfer of node a's call to an outside number (its consult call through node b,
// relayed to a, answered), then hangs its consult call up and takes the call off hold: node b
// relays the consult's cancel, node a hangs the far end up and emits call.resumed after
// call.transfer_started, agent 7 is still on the call on both nodes, and the caller talks with
// the agent again — node b bridged the internal leg back to the phone's leg of the call, whose
// echo of the caller reaches node a. Before, the consult call was refused 403.
func TestCrossNode_PhoneHangsUpItsConsultCallReturnsTheCaller(t *testing.T) {
	tc := referCluster(t, 0, "uas_echo.xml", []string{"-rtp_echo"}, "uas_agent_attended_giveup.xml", func(bPort int) []string {
		return []string{"-rtp_echo", "-au", "agent1", "-ap", "secret", "-key", "target", outsideNumber,
			"-key", "gw_port", strconv.Itoa(bPort), "-auth_uri", fmt.Sprintf("%s@127.0.0.1:%d", outsideNumber, bPort)}
	}, nil)
	tc.awaitEvent(t, callevent.EventTransferStarted)
	tc.far.wait(t) // the far end got its BYE: the consult was given up on node a
	if !waitFor(20*time.Second, func() bool {
		evs := tc.a.sink.all()
		started := -1
		for i, e := range evs {
			switch {
			case e.Type == callevent.EventTransferStarted:
				started = i
			case e.Type == callevent.EventResumed && started >= 0:
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no call.resumed after call.transfer_started: %v", eventTypes(tc.a.sink.all()))
	}
	if id, ok := tc.acd.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("node a's ACD has %d, %v on the call, want agent 7 still", id, ok)
	}
	if id, ok := tc.bACD.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("node b's CallAgent = %d, %v, want agent 7 still", id, ok)
	}
	rx0 := tc.internalRx()
	if !waitFor(20*time.Second, func() bool { return tc.internalRx() >= rx0+50 }) {
		t.Errorf("after the consult was given up node a's internal leg received %d packets (from %d), want the phone's echo of the caller", tc.internalRx(), rx0)
		t.Log(relayMediaState(tc))
	}
	evs := tc.hangUp(t)
	if tr := lastOf(evs, callevent.EventTransferred); tr != nil {
		t.Errorf("a consult given up emitted call.transferred: %+v", tr)
	}
}

// relayMediaState describes node b's relays of the call (what the internal leg's endpoint is
// bridged to, each leg's RTP counters) and node a's legs of it, for a failure's log.
func relayMediaState(tc *transferCluster) string {
	var b strings.Builder
	for node, g := range map[string]*testGateway{"a": tc.a, "b": tc.b} {
		for _, c := range g.callsNow() {
			if c.id != tc.callID {
				continue
			}
			c.mu.Lock()
			legs := append([]*leg{c.carrier}, c.legs...)
			c.mu.Unlock()
			peer := media.BridgedTo(c.Endpoint())
			for i, l := range legs {
				ep, err := l.endpoint()
				if err != nil {
					fmt.Fprintf(&b, "node %s leg %d: no endpoint (%v)\n", node, i, err)
					continue
				}
				st := ep.Stats()
				l.mu.Lock()
				dir := l.med.Direction
				l.mu.Unlock()
				fmt.Fprintf(&b, "node %s leg %d internal=%v consult=%v ended=%v dir=%v rx=%d tx=%d bridged-to-carrier=%v\n",
					node, i, l.internal, l.consultOf != nil, l.isEnded(), dir, st.PacketsReceived, st.PacketsSent, peer == ep)
			}
		}
	}
	return b.String()
}
