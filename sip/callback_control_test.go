package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ivr/acdpg"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// testAgent is an agent's audio as the ACD sees it (an ivr.MediaAgentLeg over a local
// endpoint), its far side (phone) to hear and speak on.
type testAgent struct {
	leg   *ivr.MediaAgentLeg
	phone *media.Endpoint
	ended chan struct{}
	once  sync.Once
}

func (a *testAgent) hangup() { a.once.Do(func() { close(a.ended) }) }

// agentMedia makes n agents' endpoint pairs on their own port range.
func agentMedia(t *testing.T, n int) []*testAgent {
	t.Helper()
	lo := testport.FreeRange(t, 20000, 32000, 4*n)
	alloc, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), lo, lo+4*n-1)
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *media.Endpoint {
		e, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, RTCPInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		e.SetCodec(0, media.PCMU)
		e.SetDTMFPayloadType(101)
		return e
	}
	var out []*testAgent
	for range n {
		gw, phone := mk(), mk()
		gw.SetRemote(phone.LocalAddr())
		phone.SetRemote(gw.LocalAddr())
		a := &testAgent{phone: phone, ended: make(chan struct{})}
		a.leg = &ivr.MediaAgentLeg{Endpoint: gw, Ended: a.ended, HangupFunc: func(context.Context) error { a.hangup(); return nil }}
		out = append(out, a)
	}
	return out
}

// offerTo is an offer the test's agent dialer received, answered by sending on answer.
type offerTo struct {
	ivr.Offer
	answer chan ivr.AgentLeg
}

// offerQueue hands every offer to the test; an offer not answered within ctx is missed.
func offerQueue() (ivr.AgentDialerFunc, chan offerTo) {
	ch := make(chan offerTo, 16)
	return func(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
		ot := offerTo{Offer: o, answer: make(chan ivr.AgentLeg, 1)}
		select {
		case ch <- ot:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case l := <-ot.answer:
			return l, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, ch
}

func nextOffer(t *testing.T, ch chan offerTo) offerTo {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(30 * time.Second):
		t.Fatal("no offer within 30 s")
		return offerTo{}
	}
}

// waitEvent waits until the sink holds an event of typ on call id matching ok, and returns it.
func (f *fakeSink) waitEvent(t *testing.T, id, typ string, ok func(callevent.Event) bool) callevent.Event {
	t.Helper()
	var got callevent.Event
	if !waitFor(30*time.Second, func() bool {
		for _, e := range f.callEvents(id) {
			if e.Type == typ && (ok == nil || ok(e)) {
				got = e
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no %s on call %s within 30 s; events %v", typ, id, eventTypes(f.callEvents(id)))
	}
	return got
}

// TestCallback_ConnectedCallbackIsHeldResumedAndTransferred: a queue callback taken up from
// PostgreSQL (acd_callbacks) is offered to agent 7, the caller (SIPp through the trunk)
// answers, and from then on call control acts on it as on any queued call: hold and resume
// by the id of the call called back (the one the agent's page and the wallboard know) and
// by the callback's own call id (call.held, call.resumed on the callback's call), and a blind
// transfer to agent 8, who is offered the callback's call and answers it (call.transferred
// 7 → 8, call.answered with agent 8; agent 7 free again). Before, the callback was bridged by
// sip alone and every one of these answered ErrNoCall.
func TestCallback_ConnectedCallbackIsHeldResumedAndTransferred(t *testing.T) {
	requireSipp(t)
	pool := pgtest.Pool(t)
	store := acdpg.NewCallbacks(pool)
	dir := t.TempDir()
	farPort := testport.FreeUDP(t)
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", farPort)
	})
	// The caller, called back through the trunk: answers, echoes, waits for our BYE.
	far := startSipp(t, dir, "uas_echo.xml", "-p", strconv.Itoa(farPort), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"-m", "1", "-rtp_echo")

	acd, err := ivr.NewACD(ivr.ACDOptions{
		Queues: []ivr.Queue{{Name: "support", RingTimeout: 20 * time.Second, Callback: ivr.QueueCallback{Key: "1", Attempts: 1}}},
		Agents: []ivr.Agent{{ID: 7, Name: "Agent Seven", Queues: []string{"support"}}, {ID: 8, Name: "Agent Eight", Queues: []string{"support"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	dialer, offers := offerQueue()
	acd.SetDialer(dialer)
	acd.SetCallbackDialer(g.s)
	node := "cbnode-" + uuid.NewString()[:8]
	acd.SetCallbackStore(store, node)
	t.Cleanup(acd.CloseCallbacks)
	agents := agentMedia(t, 2)
	a7, a8 := agents[0], agents[1]
	t.Cleanup(a7.hangup)
	t.Cleanup(a8.hangup)

	waiting := uuid.NewString() // the call whose caller asked to be called back
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := store.Save(ctx, ivr.PendingCallback{CallID: waiting, Queue: "support", Node: node, From: "+15551230000",
		Line: "+15550197", Language: "en"}); err != nil {
		t.Fatal(err)
	}
	if _, err := acd.SetState(7, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	if err := acd.ResumeCallbacks(ctx); err != nil {
		t.Fatal(err)
	}
	o := nextOffer(t, offers)
	if o.AgentID != 7 || !o.Callback || o.CallID != waiting {
		t.Fatalf("offer %+v, want the callback of %s to agent 7", o.Offer, waiting)
	}
	o.answer <- a7.leg

	// The callback's own call: its call.started names the call called back; the caller answers.
	var cb string
	if !waitFor(30*time.Second, func() bool {
		for _, e := range g.sink.all() {
			if e.Type == callevent.EventStarted && e.CallbackOf == waiting {
				cb = e.CallID
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no callback call started; events %v", eventTypes(g.sink.all()))
	}
	g.sink.waitEvent(t, cb, callevent.EventAnswered, func(e callevent.Event) bool { return e.AgentID == 7 })
	// Connected: the ACD serves it (Connected runs after call.answered; await it).
	if !waitFor(30*time.Second, func() bool { id, ok := acd.CallAgent(waiting); return ok && id == 7 }) {
		t.Fatal("the connected callback is not a call of the ACD (CallAgent by the id called back)")
	}
	if id, ok := acd.CallAgent(cb); !ok || id != 7 {
		t.Fatalf("CallAgent(%s) = %d %v, want agent 7", cb, id, ok)
	}

	count := func(typ string) int {
		n := 0
		for _, e := range g.sink.callEvents(cb) {
			if e.Type == typ {
				n++
			}
		}
		return n
	}
	awaitCount := func(typ string, n int) {
		t.Helper()
		if !waitFor(30*time.Second, func() bool { return count(typ) >= n }) {
			t.Fatalf("%d × %s on the callback's call, want %d; events %v", count(typ), typ, n, eventTypes(g.sink.callEvents(cb)))
		}
	}
	for i, id := range []string{waiting, cb} {
		if err := acd.Hold(ctx, id); err != nil {
			t.Fatalf("hold by %s: %v", id, err)
		}
		awaitCount(callevent.EventHeld, i+1)
		if err := acd.Resume(ctx, id); err != nil {
			t.Fatalf("resume by %s: %v", id, err)
		}
		awaitCount(callevent.EventResumed, i+1)
	}

	// A blind transfer to agent 8: offered the callback's own call.
	if _, err := acd.SetState(8, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	if err := acd.Transfer(ctx, waiting, ivr.TransferTo{AgentID: 8}); err != nil {
		t.Fatalf("transfer to agent 8: %v", err)
	}
	o8 := nextOffer(t, offers)
	if o8.AgentID != 8 || o8.CallID != cb {
		t.Fatalf("offer %+v, want the callback's call %s to agent 8", o8.Offer, cb)
	}
	o8.answer <- a8.leg
	tr := g.sink.waitEvent(t, cb, callevent.EventTransferred, func(e callevent.Event) bool { return e.ToAgentID == 8 })
	if tr.FromAgentID != 7 {
		t.Errorf("call.transferred %+v, want from agent 7", tr)
	}
	g.sink.waitEvent(t, cb, callevent.EventAnswered, func(e callevent.Event) bool { return e.AgentID == 8 })
	if !waitFor(30*time.Second, func() bool { id, ok := acd.CallAgent(cb); return ok && id == 8 }) {
		t.Fatal("the callback is not agent 8's after the transfer")
	}
	select {
	case <-a7.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("agent 7's leg was not hung up by the transfer")
	}
	if st, err := acd.Agent(7); err != nil || st.State == ivr.StateBusy {
		t.Errorf("agent 7 after the transfer: %+v %v, want free", st, err)
	}

	// Agent 8 hangs up: the callback ends (BYE to the caller), with its hold time.
	a8.hangup()
	far.wait(t)
	evs := g.sink.waitEnded(t, 30*time.Second)
	end := lastOf(evs, callevent.EventEnded)
	if end == nil || end.CallID != cb || end.Outcome != callevent.OutcomeAnswered {
		t.Fatalf("call.ended %+v, want the callback's call answered", end)
	}
	if err := acd.Hold(ctx, waiting); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("hold after the end: %v, want ErrNoCall", err)
	}
	if !waitFor(20*time.Second, func() bool { return g.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: %d", g.s.ActiveCalls())
	}
}

// agentSoftphone puts an agent's outbound call on a test agent's leg.
type agentSoftphone struct{ a *testAgent }

func (f agentSoftphone) StartCall(int64, string, string) (ivr.AgentLeg, error) { return f.a.leg, nil }

// pcmTap collects the decoded audio an endpoint receives or sends (flow).
type pcmTap struct{ ch chan []int16 }

func tapPCM(ep *media.Endpoint, flow media.Flow) *pcmTap {
	p := &pcmTap{ch: make(chan []int16, 4096)}
	ep.AddTap(func(tp media.TapPacket) {
		if tp.Flow != flow || tp.PayloadType != 0 {
			return
		}
		s := make([]int16, len(tp.Payload))
		media.PCMU.Decode(s, tp.Payload)
		select {
		case p.ch <- s:
		default:
		}
	})
	return p
}

// listen drops what was queued and the next 10 packets (the mix settling after a change, and
// for what comes back from the far end its echo's round trip), then returns n packets' audio.
func (p *pcmTap) listen(t *testing.T, n int) []int16 {
	t.Helper()
	for {
		select {
		case <-p.ch:
			continue
		default:
		}
		break
	}
	var pcm []int16
	for i := range n + 10 {
		select {
		case s := <-p.ch:
			if i >= 10 {
				pcm = append(pcm, s...)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no audio packet within 10 s")
		}
	}
	return pcm
}

func goertzelPower(pcm []int16, f float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*f/8000)
	var s1, s2 float64
	for _, x := range pcm {
		s := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// expectTones checks which tones pcm carries: each wanted one strong, each unwanted one at
// least 100× below the weakest wanted (all are sent at the same level).
func expectTones(t *testing.T, who string, pcm []int16, hear, notHear []float64) {
	t.Helper()
	weakest := -1.0
	for _, f := range hear {
		if p := goertzelPower(pcm, f); weakest < 0 || p < weakest {
			weakest = p
		}
	}
	if weakest < 1e12 {
		t.Errorf("%s: a wanted tone of %v is missing (power %.3g)", who, hear, weakest)
	}
	for _, f := range notHear {
		if p := goertzelPower(pcm, f); p*100 > weakest {
			t.Errorf("%s: %g Hz heard (power %.3g vs %.3g wanted)", who, f, p, weakest)
		}
	}
}

// playTone loops a sine of f Hz on ep until ctx ends.
func playTone(ctx context.Context, wg *sync.WaitGroup, ep *media.Endpoint, f float64) {
	pcm := make([]int16, 1600)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*f*float64(i)/8000))
	}
	b := make([]byte, len(pcm))
	media.PCMU.Encode(b, pcm)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_ = ep.Play(ctx, bytes.NewReader(b), media.PCMU)
		}
	}()
}

// TestCallForAgent_OwnCallIsSupervised: an agent's own outbound call (CallForAgent, the far
// end SIPp through the trunk, echoing what it hears) is reachable by supervisors like a queued
// call: monitoring, the supervisor hears the agent and nobody hears the supervisor; whispering,
// the agent hears the supervisor and the far end does not (what the gateway sends it, and the
// echo the supervisor would hear back); barging, the far end hears the supervisor too; hold and
// transfer still answer ErrNoCall (an agent's own call has no queue); an outside party added to
// it hears the agent (a conference), and a supervisor joins that conference too; the agent
// hanging up ends the call, the party's leg and the supervision. Before, Supervise and
// Conference answered ErrNoCall: the call was not the ACD's.
func TestCallForAgent_OwnCallIsSupervised(t *testing.T) {
	requireSipp(t)
	dir := t.TempDir()
	farPort := testport.FreeUDP(t)
	acd, err := ivr.NewACD(ivr.ACDOptions{Queues: []ivr.Queue{{Name: "support"}},
		Agents: []ivr.Agent{{ID: 7, Name: "Agent Seven", Queues: []string{"support"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	partyPort := testport.FreeUDP(t)
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", farPort)
		o.Trunks = append(o.Trunks, Trunk{Name: "party", OutboundURI: fmt.Sprintf("sip:127.0.0.1:%d", partyPort)})
		o.OwnCalls = acd
	})
	far := startSipp(t, dir, "uas_echo.xml", "-p", strconv.Itoa(farPort), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"-m", "1", "-rtp_echo")
	// The outside party added later: silent (two echoing far ends in one mix would feed each
	// other without end).
	partySipp := startSipp(t, dir, "uas_echo.xml", "-p", strconv.Itoa(partyPort), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"-m", "1")
	eps := agentMedia(t, 2)
	agent, sup := eps[0], eps[1] // the supervisor's endpoint is sup.leg.Endpoint, heard on sup.phone
	t.Cleanup(agent.hangup)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id, err := g.s.CallForAgent(ctx, AgentCall{AgentID: 7, Number: "+15557654321", Softphone: agentSoftphone{agent}})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { a, ok := acd.CallAgent(id); return ok && a == 7 }) {
		t.Fatalf("the agent's own call %s is not reachable by call control once answered", id)
	}
	if err := acd.Hold(ctx, id); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("hold of an agent's own call: %v, want ErrNoCall", err)
	}
	if err := acd.Transfer(ctx, id, ivr.TransferTo{Queue: "support"}); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("transfer of an agent's own call: %v, want ErrNoCall", err)
	}
	// What the gateway sends the far end.
	c := g.s.callByID(id)
	if c == nil {
		t.Fatal("the call is gone")
	}
	c.mu.Lock()
	farLeg := c.legs[0]
	c.mu.Unlock()
	farLeg.mu.Lock()
	farEP := farLeg.ep
	farLeg.mu.Unlock()
	toFar, agentHears, supHears := tapPCM(farEP, media.Sent), tapPCM(agent.phone, media.Received), tapPCM(sup.phone, media.Received)

	var wg sync.WaitGroup
	pctx, stopPlay := context.WithCancel(ctx)
	defer wg.Wait()
	defer stopPlay()
	const agentHz, supHz = 1400, 1000
	playTone(pctx, &wg, agent.phone, agentHz)
	playTone(pctx, &wg, sup.phone, supHz)

	sv, err := acd.Supervise(id, sup.leg.Endpoint, ivr.SuperviseMonitor)
	if err != nil {
		t.Fatalf("supervise the agent's own call: %v", err)
	}
	expectTones(t, "monitor: supervisor", supHears.listen(t, 25), []float64{agentHz}, []float64{supHz})
	expectTones(t, "monitor: far end", toFar.listen(t, 25), []float64{agentHz}, []float64{supHz})

	if err := sv.SetMode(ivr.SuperviseWhisper); err != nil {
		t.Fatal(err)
	}
	expectTones(t, "whisper: agent", agentHears.listen(t, 25), []float64{agentHz, supHz}, nil)
	expectTones(t, "whisper: far end", toFar.listen(t, 25), []float64{agentHz}, []float64{supHz})
	// The far end echoes what it hears: had it heard the whisper, the supervisor would too.
	expectTones(t, "whisper: supervisor", supHears.listen(t, 25), []float64{agentHz}, []float64{supHz})

	if err := sv.SetMode(ivr.SuperviseBarge); err != nil {
		t.Fatal(err)
	}
	expectTones(t, "barge: far end", toFar.listen(t, 25), []float64{agentHz, supHz}, nil)

	sv.Stop()
	expectTones(t, "stopped: far end", toFar.listen(t, 25), []float64{agentHz}, []float64{supHz})

	// The agent adds an outside party: a conference of the agent's own call, which the party
	// hears, and which a supervisor joins too.
	partyID, err := g.s.DialConference(ctx, ConferenceDial{CallID: id, AgentID: 7, Number: "+15557654322", Trunk: "party",
		Join: acd.Conference})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return acd.Conferenced(id) }) {
		t.Fatal("the outside party did not join the agent's own call")
	}
	pc := g.s.callByID(partyID)
	if pc == nil {
		t.Fatal("the party's call is gone")
	}
	pc.mu.Lock()
	partyLeg := pc.legs[0]
	pc.mu.Unlock()
	partyLeg.mu.Lock()
	toParty := tapPCM(partyLeg.ep, media.Sent)
	partyLeg.mu.Unlock()
	expectTones(t, "conference: party", toParty.listen(t, 25), []float64{agentHz}, []float64{supHz})

	sv2, err := acd.Supervise(id, sup.leg.Endpoint, ivr.SuperviseMonitor)
	if err != nil {
		t.Fatalf("supervise the conference of an agent's own call: %v", err)
	}
	expectTones(t, "conference monitor: party", toParty.listen(t, 25), []float64{agentHz}, []float64{supHz})
	agent.hangup() // the agent hangs up: BYE to the far end and the party, the supervision ends with the call
	far.wait(t)
	partySipp.wait(t)
	select {
	case <-sv2.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the supervision outlived the call")
	}
	if _, ok := acd.CallAgent(id); ok {
		t.Error("the ended call is still reachable")
	}
	if !waitFor(30*time.Second, func() bool { return g.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: %d", g.s.ActiveCalls())
	}
}
