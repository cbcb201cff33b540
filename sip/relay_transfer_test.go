package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// transferCluster is a clusterPair whose node a runs its line through the IVR and a real ACD
// (queue support, agent 7): the ACD's offers for agent 7 name Node "b", as the shared store's
// do for an agent attached there, so agent 7's SIP phone on node b answers a's call over the
// internal leg; a's ACD takes the requests relayed from b (Cluster.Control). Node b's page and
// API drive a ClusterACD over b's own ACD, which serves no call of a's: without the relay it
// answers ivr.ErrNoCall (the API's 404). a's trunk "carrier-out" reaches the outside number,
// a SIPp far end.
type transferCluster struct {
	*clusterPair
	acd    *ivr.ACD   // node a's
	bACD   ClusterACD // node b's, as its page and API see it
	far    *sippProc
	caller *sippProc
	callID string
}

// nodeDialer is the ACD's dialer naming the node each offer's agent is attached to.
type nodeDialer struct {
	d    ivr.AgentDialer
	node string
}

func (n nodeDialer) Offer(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	o.Node = n.node
	return n.d.Offer(ctx, o)
}

// newTransferCluster starts the pair, the far end (farScenario for farCalls calls to outside
// numbers, none when ""; far legs ring at most ringTimeout, 0: the default) and a caller on node a, and
// returns once agent 7's phone on node b answered the call.
func newTransferCluster(t *testing.T, ringTimeout time.Duration, farCalls int, farScenario string, farArgs ...string) *transferCluster {
	t.Helper()
	return newTransferClusterWith(t, transferSetup{ringTimeout: ringTimeout, farCalls: farCalls,
		farScenario: farScenario, farArgs: farArgs})
}

// transferSetup is newTransferCluster's arguments, with agent 7's phone's scenario and its
// arguments (default: uas_agent.xml with -rtp_echo) and node b's options (bOpt, nil: none).
type transferSetup struct {
	ringTimeout   time.Duration
	farCalls      int
	farScenario   string
	farArgs       []string
	phoneScenario string
	phoneArgs     []string
	// phoneArgsFor, when set, makes the phone's arguments from node b's SIP port instead.
	phoneArgsFor func(bPort int) []string
	bOpt         func(*Options)
}

// newTransferClusterPhone is newTransferCluster with agent 7's phone playing phone (a SIPp
// scenario and its arguments).
func newTransferClusterPhone(t *testing.T, ringTimeout time.Duration, phone []string, farCalls int, farScenario string, farArgs ...string) *transferCluster {
	t.Helper()
	return newTransferClusterWith(t, transferSetup{ringTimeout: ringTimeout, farCalls: farCalls,
		farScenario: farScenario, farArgs: farArgs, phoneScenario: phone[0], phoneArgs: phone[1:]})
}

// newTransferClusterWith is newTransferCluster with a transferSetup.
func newTransferClusterWith(t *testing.T, ts transferSetup) *transferCluster {
	t.Helper()
	ringTimeout, farCalls, farScenario, farArgs := ts.ringTimeout, ts.farCalls, ts.farScenario, ts.farArgs
	phoneScenario, phoneArgs := ts.phoneScenario, ts.phoneArgs
	if phoneScenario == "" {
		phoneScenario, phoneArgs = "uas_agent.xml", []string{"-rtp_echo"}
	}
	phoneArgsFor := ts.phoneArgsFor
	if phoneArgsFor == nil {
		phoneArgsFor = func(int) []string { return phoneArgs }
	}
	agents := []ivr.Agent{{ID: 7, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}},
		{ID: 8, Email: "agent2@example.com", Name: "Agent Two", Queues: []string{"support"}}}
	acd, err := ivr.NewACD(ivr.ACDOptions{Queues: []ivr.Queue{{Name: "support", RingTimeout: 10 * time.Second}}, Agents: agents})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	bACD, err := ivr.NewACD(ivr.ACDOptions{Queues: []ivr.Queue{{Name: "support"}}, Agents: agents})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bACD.Close)
	eng, err := ivr.New(ivr.Options{ACD: acd})
	if err != nil {
		t.Fatal(err)
	}
	farPort := testport.FreeUDP(t)
	p := newClusterPairOpts(t, func(o *Options) {
		o.Trunks = append(o.Trunks, Trunk{Name: "carrier-out", OutboundURI: fmt.Sprintf("sip:127.0.0.1:%d", farPort)})
		if ringTimeout > 0 {
			o.RingTimeout = ringTimeout
		}
		o.Lines = []Line{{Number: "+15550197", Target: &IVRTarget{IVR: eng,
			Line: ivr.Line{Number: "+15550197", Target: ivr.QueueTarget("support")}}}}
	}, ts.bOpt, 10*time.Second, 1, acd, phoneScenario, phoneArgsFor)
	acd.SetDialer(nodeDialer{d: p.a.s.ClusterDialer(p.a.s.PhoneDialer()), node: "b"})
	if _, err := acd.SetState(7, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	tc := &transferCluster{clusterPair: p, acd: acd, bACD: ClusterACD{ACD: bACD, SIP: p.b.s}}
	if farScenario != "" {
		tc.far = startSipp(t, p.dir, farScenario, append([]string{"-p", strconv.Itoa(farPort),
			"-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", strconv.Itoa(farCalls)}, farArgs...)...)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("far end SIPp output:\n%s", tail(tc.far.out.String(), 3000))
			}
		})
	}
	tc.caller = p.carrier(t, "uac_wait_bye.xml", 1)
	// Answered: node b relays the call (its 200 ACKed) and a's ACD has agent 7 on it.
	if !waitFor(30*time.Second, func() bool {
		for _, c := range p.b.callsNow() {
			if c.internal && c.carrier.isConfirmed() {
				if id, ok := acd.CallAgent(c.id); ok && id == 7 {
					tc.callID = c.id
				}
			}
		}
		return tc.callID != ""
	}) {
		t.Fatal("agent 7's phone on node b never answered node a's call")
	}
	return tc
}

// legs returns the RTP statistics now of node a's carrier leg and of its leg to the outside
// number (zero when there is none yet).
func (tc *transferCluster) legs(t *testing.T) (carrier, far media.Stats) {
	t.Helper()
	for _, c := range tc.a.callsNow() {
		if c.id != tc.callID {
			continue
		}
		if ep, err := c.carrier.endpoint(); err == nil {
			carrier = ep.Stats()
		}
		c.mu.Lock()
		legs := append([]*leg(nil), c.legs...)
		c.mu.Unlock()
		for _, l := range legs {
			if l.internal || l.isEnded() {
				continue
			}
			if ep, err := l.endpoint(); err == nil {
				far = ep.Stats()
			}
		}
	}
	return carrier, far
}

// internalRx is what node a's internal leg of the call (to the agent on node b) has received.
func (tc *transferCluster) internalRx() uint64 {
	for _, c := range tc.a.callsNow() {
		c.mu.Lock()
		legs := append([]*leg(nil), c.legs...)
		c.mu.Unlock()
		for _, l := range legs {
			if l.internal && !l.isEnded() {
				if ep, err := l.endpoint(); err == nil {
					return ep.Stats().PacketsReceived
				}
			}
		}
	}
	return 0
}

// hangUp ends node a's call (the caller and the far end wait for a BYE) and waits for the
// peers and for both nodes to let go of it.
func (tc *transferCluster) hangUp(t *testing.T) []callevent.Event {
	t.Helper()
	for _, c := range tc.a.callsNow() {
		c.Hangup()
	}
	tc.caller.wait(t)
	if tc.far != nil {
		tc.far.wait(t)
	}
	tc.phone.wait(t)
	evs := tc.a.sink.waitEnded(t, 20*time.Second)
	if !waitFor(10*time.Second, func() bool { return tc.a.s.ActiveCalls() == 0 && tc.b.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: a %d, b %d", tc.a.s.ActiveCalls(), tc.b.s.ActiveCalls())
	}
	return evs
}

// awaitEvent waits for node a's call to emit an event of type typ and returns it.
func (tc *transferCluster) awaitEvent(t *testing.T, typ string) *callevent.Event {
	t.Helper()
	var e *callevent.Event
	if !waitFor(20*time.Second, func() bool {
		e = lastOf(tc.a.sink.all(), typ)
		return e != nil
	}) {
		t.Fatalf("node a never emitted %s: %v", typ, eventTypes(tc.a.sink.all()))
	}
	return e
}

// awaitEnd waits for the consult's onEnd.
func awaitEnd(t *testing.T, ends <-chan ivr.ConsultEnd) ivr.ConsultEnd {
	t.Helper()
	select {
	case e := <-ends:
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("the consult's end was never told on node b")
		return ""
	}
}

const outsideNumber = "+15557770000"

// TestCrossNode_ConsultToOutsideNumberCompletes: agent 7, on node b, consults on a call node a
// owns (the page's or the API's consult on b: b's ClusterACD relays it over the internal leg
// to a's ACD): a holds the caller and dials the outside number through its trunk; once the far
// end answered b's Consult returns, and the agent's side of the call — the internal leg — is
// bridged to the far end. Completing on b bridges the caller to the far end and releases the
// agent (b's phone gets its BYE); b's onEnd hears "completed". Audio flows both ways between
// the caller and the far end (it echoes the caller's tone: a's leg to it receives, and the
// caller's leg sends, after the completion). a's events carry call.transfer_started (consult,
// to_number, from agent 7) then call.transferred (CD-3's transfer time, TU-7). Node b's API
// sees agent 7 on the call (CallAgent). On main b's own ACD answered ErrNoCall (404) to
// CallAgent, Consult and CompleteConsult.
func TestCrossNode_ConsultToOutsideNumberCompletes(t *testing.T) {
	tc := newTransferCluster(t, 0, 1, "uas_echo.xml", "-rtp_echo")
	if id, ok := tc.bACD.CallAgent(tc.callID); !ok || id != 7 {
		t.Fatalf("node b's CallAgent(%s) = %d, %v; want agent 7 (the API's 404 otherwise)", tc.callID, id, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends := make(chan ivr.ConsultEnd, 2)
	if err := tc.bACD.Consult(ctx, tc.callID, ivr.TransferTo{Number: outsideNumber}, func(e ivr.ConsultEnd) { ends <- e }); err != nil {
		t.Fatalf("consult from node b: %v", err)
	}
	st := tc.awaitEvent(t, callevent.EventTransferStarted)
	if st.TransferMode != callevent.TransferConsult || st.ToNumber != outsideNumber || st.FromAgentID != 7 {
		t.Errorf("call.transfer_started %+v, want a consult of agent 7 to %s", st, outsideNumber)
	}
	if id, ok := tc.acd.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("during the consult node a's ACD has %d, %v on the call, want agent 7", id, ok)
	}
	if err := tc.bACD.CompleteConsult(ctx, tc.callID); err != nil {
		t.Fatalf("complete from node b: %v", err)
	}
	if e := awaitEnd(t, ends); e != ivr.ConsultCompleted {
		t.Errorf("node b was told the consult ended %q, want %q", e, ivr.ConsultCompleted)
	}
	tc.phone.wait(t) // the agent released: a's BYE reached the phone through b
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
	tr := lastOf(evs, callevent.EventTransferred)
	if tr == nil || tr.ToNumber != outsideNumber || tr.FromAgentID != 7 {
		t.Fatalf("call.transferred %+v, want agent 7 to %s: %v", tr, outsideNumber, eventTypes(evs))
	}
	if lastOf(evs, callevent.EventResumed) != nil {
		t.Errorf("a completed consult emitted call.resumed: %v", eventTypes(evs))
	}
}

// TestCrossNode_ConsultCancelledReturnsTheCaller: agent 7 on node b consults the outside
// number on a's call, then goes back to the caller (consult_cancel relayed to a): the far end
// gets its BYE, a emits call.resumed, agent 7 is still on the call on both nodes, b's onEnd
// hears "cancelled", and the caller and the agent talk again through both nodes (the phone
// echoes the caller's tone: a's internal leg receives it). A second cancel is refused
// ivr.ErrNoConsult, as on one node. On main b answered ErrNoCall (404).
func TestCrossNode_ConsultCancelledReturnsTheCaller(t *testing.T) {
	tc := newTransferCluster(t, 0, 1, "uas_echo.xml", "-rtp_echo")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends := make(chan ivr.ConsultEnd, 2)
	if err := tc.bACD.Consult(ctx, tc.callID, ivr.TransferTo{Number: outsideNumber}, func(e ivr.ConsultEnd) { ends <- e }); err != nil {
		t.Fatalf("consult from node b: %v", err)
	}
	if err := tc.bACD.CancelConsult(ctx, tc.callID); err != nil {
		t.Fatalf("cancel from node b: %v", err)
	}
	if e := awaitEnd(t, ends); e != ivr.ConsultCancelled {
		t.Errorf("node b was told the consult ended %q, want %q", e, ivr.ConsultCancelled)
	}
	tc.far.wait(t) // the far end got its BYE
	tc.awaitEvent(t, callevent.EventResumed)
	if id, ok := tc.acd.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("after the cancel node a's ACD has %d, %v on the call, want agent 7", id, ok)
	}
	if id, ok := tc.bACD.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("after the cancel node b's CallAgent = %d, %v, want agent 7", id, ok)
	}
	if err := tc.bACD.CancelConsult(ctx, tc.callID); !errors.Is(err, ivr.ErrNoConsult) {
		t.Errorf("a second cancel: %v, want ivr.ErrNoConsult", err)
	}
	// The caller is back with the agent: the phone on b echoes what a's caller sends.
	rx0 := tc.internalRx()
	if !waitFor(20*time.Second, func() bool { return tc.internalRx() >= rx0+50 }) {
		t.Errorf("after the cancel node a's internal leg received %d packets (from %d), want the agent's echo of the caller", tc.internalRx(), rx0)
	}
	evs := tc.hangUp(t)
	if tr := lastOf(evs, callevent.EventTransferred); tr != nil {
		t.Errorf("a cancelled consult emitted call.transferred: %+v", tr)
	}
}

// TestCrossNode_BlindTransferToOutsideNumber: agent 7 on node b blind-transfers a's call to an
// outside number (relayed to a's ACD, which dials it through its trunk): b's Transfer returns
// once the number answered, the agent is released (the phone gets its BYE), and the caller
// talks with the far end (its echo comes back). a's events: call.transfer_started (blind,
// to_number), call.transferred. On main b's ACD answered ErrNoCall (404).
func TestCrossNode_BlindTransferToOutsideNumber(t *testing.T) {
	tc := newTransferCluster(t, 0, 1, "uas_echo.xml", "-rtp_echo")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.bACD.Transfer(ctx, tc.callID, ivr.TransferTo{Number: outsideNumber}); err != nil {
		t.Fatalf("blind transfer from node b: %v", err)
	}
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
	if st == nil || st.TransferMode != callevent.TransferBlind || st.ToNumber != outsideNumber {
		t.Errorf("call.transfer_started %+v, want a blind transfer to %s", st, outsideNumber)
	}
	if tr := lastOf(evs, callevent.EventTransferred); tr == nil || tr.ToNumber != outsideNumber || tr.FromAgentID != 7 {
		t.Errorf("call.transferred %+v, want agent 7 to %s", tr, outsideNumber)
	}
}

// TestCrossNode_UnansweredOutsideNumberReturnsTheCaller: the outside number only rings (its
// leg from a is CANCELled at a's 2 s ring timeout). A consult from node b to it returns
// ivr.ErrTransferFailed (the API's 409 no_answer) and the caller is back with agent 7, then a
// blind transfer to it does the same — the agent stays on the call, as on one node — and the
// caller and the agent still talk (the phone on b echoes the caller's tone). On main both
// answered ErrNoCall (404).
func TestCrossNode_UnansweredOutsideNumberReturnsTheCaller(t *testing.T) {
	tc := newTransferCluster(t, 2*time.Second, 2, "uas_cancel.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends := make(chan ivr.ConsultEnd, 2)
	start := time.Now()
	err := tc.bACD.Consult(ctx, tc.callID, ivr.TransferTo{Number: outsideNumber}, func(e ivr.ConsultEnd) { ends <- e })
	if !errors.Is(err, ivr.ErrTransferFailed) {
		t.Fatalf("consult to a number that does not answer: %v, want ivr.ErrTransferFailed", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("the consult failed after %s, before the 2 s ring timeout", d)
	}
	if err := tc.bACD.Transfer(ctx, tc.callID, ivr.TransferTo{Number: outsideNumber}); !errors.Is(err, ivr.ErrTransferFailed) {
		t.Fatalf("blind transfer to a number that does not answer: %v, want ivr.ErrTransferFailed", err)
	}
	tc.far.wait(t) // both CANCELled (the scenario checks the CANCEL and answers 487)
	if id, ok := tc.acd.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("node a's ACD has %d, %v on the call, want agent 7 still", id, ok)
	}
	if id, ok := tc.bACD.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("node b's CallAgent = %d, %v, want agent 7 still", id, ok)
	}
	rx0 := tc.internalRx()
	if !waitFor(20*time.Second, func() bool { return tc.internalRx() >= rx0+50 }) {
		t.Errorf("after the failed transfers node a's internal leg received %d packets (from %d), want the agent's echo of the caller", tc.internalRx(), rx0)
	}
	evs := tc.hangUp(t)
	n := 0
	for _, e := range evs {
		if e.Type == callevent.EventResumed {
			n++
		}
	}
	if n != 2 || lastOf(evs, callevent.EventTransferred) != nil {
		t.Errorf("events %v, want two call.resumed (one per failed transfer) and no call.transferred", eventTypes(evs))
	}
	select {
	case e := <-ends:
		t.Errorf("a consult that never reached its target was told it ended %q", e)
	default:
	}
}

// TestCrossNode_ConsultToAnotherAgentCompletes: agent 7 (SIP phone on node b) consults agent 8,
// whose SIP phone is registered with node b too, on a call node a owns. a's ACD rings agent 8
// over a second internal leg of the same call to b; b still names agent 7 as the call's agent
// (the first leg offered) while both legs are up. Completing from b hands the call to agent 8:
// agent 7's phone gets its BYE, a emits call.transferred to agent 8 (TU-7) and call.answered by
// agent 8, b's CallAgent names agent 8, and the caller's audio reaches agent 8 (its phone's
// echo comes back over the internal leg). On main b answered ErrNoCall (404).
func TestCrossNode_ConsultToAnotherAgentCompletes(t *testing.T) {
	tc := newTransferCluster(t, 0, 0, "")
	phone2 := testport.FreeUDP(t)
	ph2 := startSipp(t, tc.dir, "uas_echo.xml", "-p", strconv.Itoa(phone2), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"-m", "1", "-rtp_echo")
	startSipp(t, tc.dir, "uac_register.xml", fmt.Sprintf("127.0.0.1:%d", tc.b.port()), "-s", "agent2", "-au", "agent2", "-ap", "other",
		"-key", "contact_port", strconv.Itoa(phone2), "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
	if _, err := tc.acd.SetState(8, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends := make(chan ivr.ConsultEnd, 2)
	if err := tc.bACD.Consult(ctx, tc.callID, ivr.TransferTo{AgentID: 8}, func(e ivr.ConsultEnd) { ends <- e }); err != nil {
		t.Fatalf("consult agent 8 from node b: %v", err)
	}
	if id, ok := tc.bACD.CallAgent(tc.callID); !ok || id != 7 {
		t.Errorf("during the consult node b's CallAgent = %d, %v, want agent 7 (the consult target's leg is the second)", id, ok)
	}
	if err := tc.bACD.CompleteConsult(ctx, tc.callID); err != nil {
		t.Fatalf("complete from node b: %v", err)
	}
	if e := awaitEnd(t, ends); e != ivr.ConsultCompleted {
		t.Errorf("node b was told the consult ended %q, want %q", e, ivr.ConsultCompleted)
	}
	tc.phone.wait(t) // agent 7 released
	tc.checkWithAgent8(t, ph2)
}

// TestRelayNotesRaceTheRelaysEnd loops the agent's node's three racing deliveries for one
// relayed consult — the call's node's result, its end, and the relay ending (endRelays) — in
// every order on their own goroutines: each waiter gets exactly one result, its onEnd is told
// at most once (exactly once when the result was a success), nothing blocks (a second send on
// the result channel would, under the call's lock), and the race detector sees no unguarded
// access.
func TestRelayNotesRaceTheRelaysEnd(t *testing.T) {
	for i := range 300 {
		c := &Call{}
		l := &leg{call: c}
		var ends atomic.Int32
		told := make(chan struct{}, 4)
		w := &relayWait{result: make(chan error, 1), onEnd: func(ivr.ConsultEnd) { ends.Add(1); told <- struct{}{} }}
		c.relays = map[string]*relayWait{"r": w}
		var wg sync.WaitGroup
		steps := []func(){
			func() { l.handleRelayNote([]byte("op=result&ref=r")) },
			func() { l.handleRelayNote([]byte("op=end&ref=r&end=completed")) },
			func() { c.endRelays(i%2 == 0) },
		}
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
			t.Fatalf("round %d: the deliveries blocked", i)
		}
		var res error
		select {
		case res = <-w.result:
		default:
			t.Fatalf("round %d: no result delivered", i)
		}
		if res == nil {
			select { // onEnd runs on a goroutine of its own
			case <-told:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: a consult that reached its target was never told its end", i)
			}
		}
		if n := ends.Load(); n > 1 {
			t.Fatalf("round %d: onEnd told %d times", i, n)
		}
	}
}

// checkWithAgent8 checks the end of a transfer of the call from agent 7 to agent 8 (whose
// phone ph2 echoes): node b's ACD names agent 8 on the call, agent 8's echo of the caller comes
// back over the internal leg, and, once the caller hung up and ph2 ended, node a's events say
// call.transferred from 7 to 8 and the last call.answered is agent 8's.
func (tc *transferCluster) checkWithAgent8(t *testing.T, ph2 *sippProc) {
	t.Helper()
	if !waitFor(20*time.Second, func() bool {
		id, ok := tc.bACD.CallAgent(tc.callID)
		return ok && id == 8
	}) {
		id, ok := tc.bACD.CallAgent(tc.callID)
		t.Errorf("after the transfer node b's CallAgent = %d, %v, want agent 8", id, ok)
	}
	rx0 := tc.internalRx()
	if !waitFor(20*time.Second, func() bool { return tc.internalRx() >= rx0+50 }) {
		t.Errorf("agent 8's leg received %d packets (from %d), want agent 8's echo of the caller", tc.internalRx(), rx0)
	}
	evs := tc.hangUp(t)
	ph2.wait(t)
	if tr := lastOf(evs, callevent.EventTransferred); tr == nil || tr.FromAgentID != 7 || tr.ToAgentID != 8 {
		t.Errorf("call.transferred %+v, want agent 7 to agent 8: %v", tr, eventTypes(evs))
	}
	if an := lastOf(evs, callevent.EventAnswered); an == nil || an.AgentID != 8 {
		t.Errorf("last call.answered %+v, want agent 8's", an)
	}
}
