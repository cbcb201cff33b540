package ivr

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// available makes agents available one after the other, a second apart, so that the first
// named has been idle longest.
func (r *rig) available(t testing.TB, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		if _, err := r.acd.SetState(id, StateAvailable); err != nil {
			t.Fatal(err)
		}
		r.clk.advance(time.Second)
	}
}

func (r *rig) state(t testing.TB, id int64) AgentState {
	t.Helper()
	s, err := r.acd.Agent(id)
	if err != nil {
		t.Fatal(err)
	}
	return s.State
}

// queueCall starts a call straight into queue q.
func (r *rig) queueCall(t testing.TB, id, q string) (*fakeLeg, *Call, <-chan Result) {
	t.Helper()
	leg := newFakeLeg(id)
	c := r.eng.NewCall(leg, CallInfo{From: "+15551230000", CallerName: "Caller", Line: "+15550199"})
	res := runCall(t, c, Line{Number: "+15550199", Target: QueueTarget(q)})
	r.events.next(t, id, callevent.EventQueued)
	return leg, c, res
}

func wantTypes(t testing.TB, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestQueue_LongestIdleAgentFirst_RingTimeoutMovesOn: the longest-idle available agent of the
// queue is offered the call; after the ring timeout the next one is; the answer bridges the
// call and the agent is busy until the caller hangs up.
func TestQueue_LongestIdleAgentFirst_RingTimeoutMovesOn(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", RingTimeout: 15 * time.Second}, Queue{Name: "sales"})
	r.available(t, 2, 1, 3) // 2 idle longest; 3 is in sales only
	leg, _, res := r.queueCall(t, "call-a", "support")

	o := r.dialer.next(t)
	if o.AgentID != 2 || o.Queue != "support" || o.From != "+15551230000" || o.CallID != "call-a" {
		t.Fatalf("first offer %+v, want agent 2 (idle longest) for call-a", o.Offer)
	}
	r.clk.awaitTimer(t, 15*time.Second)
	r.clk.advance(15 * time.Second)
	o.ended(t)
	o2 := r.dialer.next(t)
	if o2.AgentID != 1 {
		t.Fatalf("after the ring timeout agent %d was offered, want 1", o2.AgentID)
	}
	al := o2.answer()
	ans := r.events.next(t, leg.id, callevent.EventAnswered)
	if ans.AgentID != 1 {
		t.Errorf("answered by %d, want 1", ans.AgentID)
	}
	if !al.isBridged() || r.state(t, 1) != StateBusy || r.state(t, 2) != StateAvailable {
		t.Errorf("bridged=%v agent1=%s agent2=%s", al.isBridged(), r.state(t, 1), r.state(t, 2))
	}
	if s, _ := r.acd.Agent(2); s.MissedOffers != 1 {
		t.Errorf("agent 2 missed %d offers, want 1", s.MissedOffers)
	}
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	if !al.hungUp() || r.state(t, 1) != StateAvailable {
		t.Errorf("agent leg hung up=%v, agent 1 %s (want available, no wrap-up)", al.hungUp(), r.state(t, 1))
	}
	wantTypes(t, r.events.types(leg.id), callevent.EventQueued, callevent.EventOffered, callevent.EventOffered, callevent.EventAnswered)
	evs := r.events.all(leg.id)
	if evs[1].AgentID != 2 || evs[2].AgentID != 1 {
		t.Errorf("offered to %d then %d, want 2 then 1", evs[1].AgentID, evs[2].AgentID)
	}
}

// TestQueue_MissedOffersSetAway: an agent who misses MaxMissedOffers offers in a row goes
// away; a lone agent is offered the call again after the retry pause.
func TestQueue_MissedOffersSetAway(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond),
		Queue{Name: "support", RingTimeout: 10 * time.Second, MaxMissedOffers: 2, RetryDelay: time.Second, Overflow: HangupTarget()},
		Queue{Name: "sales"})
	r.available(t, 1)
	<-r.states // available
	leg, _, res := r.queueCall(t, "call-miss", "support")
	o := r.dialer.next(t)
	o.decline()
	r.clk.awaitTimer(t, time.Second) // the retry pause
	r.clk.advance(time.Second)
	o = r.dialer.next(t)
	if o.AgentID != 1 {
		t.Fatalf("offer to %d", o.AgentID)
	}
	r.clk.awaitTimer(t, 10*time.Second)
	r.clk.advance(10 * time.Second) // second miss
	o.ended(t)
	select { // the miss is recorded by the call's goroutine
	case st := <-r.states:
		if st.ID != 1 || st.State != StateAway || st.MissedOffers != 2 {
			t.Fatalf("state change %+v, want agent 1 away after 2 missed offers", st)
		}
	case <-time.After(wait):
		t.Fatal("agent 1 never went away")
	}
	r.dialer.none(t, 30*time.Millisecond)
	// Going available again resets the count.
	if s, _ := r.acd.SetState(1, StateAvailable); s.MissedOffers != 0 {
		t.Errorf("missed count %d after going available", s.MissedOffers)
	}
	r.dialer.next(t).answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	leg.hangup()
	result(t, res)
}

// TestQueue_MaxWaitGoesToVoicemail: no agent → after the maximum wait the call overflows to
// voicemail (the dev configuration's support queue: 120 s), and the message makes call.voicemail.
func TestQueue_MaxWaitGoesToVoicemail(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", MaxWait: 120 * time.Second}, Queue{Name: "sales"})
	leg, c, res := r.queueCall(t, "call-overflow", "support")
	if r.clk.pending(119*time.Second) != 0 {
		t.Fatal("a timer shorter than max wait")
	}
	r.clk.advance(120 * time.Second)
	r.rec.awaitStart(t)
	r.clk.awaitTimer(t, DefaultMaxLength)
	r.clk.advance(4 * time.Second)
	leg.hangup() // hanging up after a message keeps it
	if got := result(t, res); got.Outcome != callevent.OutcomeVoicemail {
		t.Errorf("outcome %q, want voicemail", got.Outcome)
	}
	wantTypes(t, r.events.types(c.ID()), callevent.EventQueued, callevent.EventVoicemail)
}

// TestRule_TC5_AbandonedInVoicemail: hanging up before the beep, or leaving less than the
// minimum length, is abandoned in voicemail — no call.voicemail.
func TestRule_TC5_AbandonedInVoicemail(t *testing.T) {
	t.Run("before the beep", func(t *testing.T) {
		p := testPrompts(t, 40*time.Millisecond)
		p.Set("en", PromptVoicemail, tone(600, 3*time.Second))
		r := newRig(t, p)
		gw, carrier := mediaPair(t)
		tap := tapReceived(carrier)
		leg := newFakeLeg("call-vm-early")
		leg.ep = gw
		c := r.eng.NewCall(leg, CallInfo{})
		res := runCall(t, c, Line{Target: VoicemailTarget()})
		tap.untilTone(t, 600)
		leg.hangup()
		if got := result(t, res); got.Outcome != callevent.OutcomeAbandoned {
			t.Errorf("outcome %q", got.Outcome)
		}
		if ab := r.events.next(t, leg.id, callevent.EventAbandoned); ab.Where != callevent.WhereVoicemail {
			t.Errorf("where=%q", ab.Where)
		}
		select {
		case <-r.rec.started:
			t.Error("recording started although the caller left before the beep")
		default:
		}
	})
	t.Run("shorter than the minimum", func(t *testing.T) {
		r := newRig(t, testPrompts(t, 40*time.Millisecond))
		leg := newFakeLeg("call-vm-short")
		c := r.eng.NewCall(leg, CallInfo{})
		res := runCall(t, c, Line{Target: VoicemailTarget()})
		r.rec.awaitStart(t)
		r.clk.awaitTimer(t, DefaultMaxLength)
		r.clk.advance(500 * time.Millisecond)
		c.InjectDigit('#')
		if got := result(t, res); got.Outcome != callevent.OutcomeAbandoned {
			t.Errorf("outcome %q", got.Outcome)
		}
		wantTypes(t, r.events.types(leg.id), callevent.EventAbandoned)
		r.rec.mu.Lock()
		defer r.rec.mu.Unlock()
		if len(r.rec.finished) != 1 || r.rec.finished[0] {
			t.Errorf("recording finished %v, want discarded", r.rec.finished)
		}
	})
	t.Run("max length ends the message", func(t *testing.T) {
		r := newRig(t, testPrompts(t, 40*time.Millisecond))
		leg := newFakeLeg("call-vm-long")
		c := r.eng.NewCall(leg, CallInfo{})
		res := runCall(t, c, Line{Target: VoicemailTarget()})
		r.rec.awaitStart(t)
		r.clk.awaitTimer(t, DefaultMaxLength)
		r.clk.advance(DefaultMaxLength)
		if got := result(t, res); got.Outcome != callevent.OutcomeVoicemail {
			t.Errorf("outcome %q", got.Outcome)
		}
		if vm := r.events.next(t, leg.id, callevent.EventVoicemail); vm.Seconds != 120 {
			t.Errorf("seconds %d", vm.Seconds)
		}
	})
}

// TestQueue_WrapUp: after a call the agent stays in wrap_up for the queue's wrap-up time and
// is not offered calls; then available and offered the waiting call.
func TestQueue_WrapUp(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", WrapUp: 30 * time.Second}, Queue{Name: "sales"})
	r.available(t, 1)
	legA, _, resA := r.queueCall(t, "call-w1", "support")
	r.dialer.next(t).answer()
	r.events.next(t, legA.id, callevent.EventAnswered)
	legA.hangup()
	result(t, resA)
	if st := r.state(t, 1); st != StateWrapUp {
		t.Fatalf("agent 1 is %s after the call, want wrap_up", st)
	}
	legB, _, resB := r.queueCall(t, "call-w2", "support")
	r.dialer.none(t, 30*time.Millisecond)
	r.clk.advance(30 * time.Second)
	o := r.dialer.next(t)
	if o.CallID != "call-w2" || r.state(t, 1) != StateAvailable {
		t.Errorf("offer %+v, agent %s", o.Offer, r.state(t, 1))
	}
	legB.hangup()
	o.ended(t)
	result(t, resB)
}

// TestQueue_FIFO: waiting calls are served in arrival order.
func TestQueue_FIFO(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	var legs []*fakeLeg
	var results []<-chan Result
	for i := range 3 {
		leg, _, res := r.queueCall(t, fmt.Sprintf("call-%d", i), "support")
		legs, results = append(legs, leg), append(results, res)
		r.clk.advance(time.Second)
	}
	qs := r.acd.Queues()
	if qs[1].Name != "support" || qs[1].Waiting != 3 || qs[1].LongestWait != 3*time.Second {
		t.Errorf("queue status %+v", qs[1])
	}
	for i, id := range []int64{2, 1} {
		r.available(t, id)
		o := r.dialer.next(t)
		if o.CallID != legs[i].id {
			t.Fatalf("agent %d offered %s, want %s (FIFO)", id, o.CallID, legs[i].id)
		}
		o.answer()
	}
	for i, leg := range legs {
		leg.hangup()
		result(t, results[i])
	}
}

// TestQueue_AbandonWhileWaitingAndRinging: a caller hanging up in the queue gives
// call.abandoned where=queue; an offer ringing meanwhile is withdrawn without counting as
// missed.
func TestQueue_AbandonWhileWaitingAndRinging(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	// Re-build the ACD with a registry to check the wait metrics.
	acd, err := NewACD(ACDOptions{Queues: []Queue{{Name: "support"}}, Agents: []Agent{{ID: 1, Queues: []string{"support"}}},
		Dialer: r.dialer, Clock: r.clk, Registerer: reg, Prompts: testPrompts(t, 40*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	r.acd = acd
	r.eng, _ = New(Options{Menus: nil, ACD: acd, Events: r.events, Clock: r.clk, Prompts: testPrompts(t, 40*time.Millisecond)})

	leg, _, res := r.queueCall(t, "call-ab-q", "support")
	if got := testutil.ToFloat64(acd.m.waiting.WithLabelValues("support")); got != 1 {
		t.Errorf("calls waiting %v, want 1", got)
	}
	r.available(t, 1)
	o := r.dialer.next(t)
	leg.hangup()
	o.ended(t)
	if got := result(t, res); got.Outcome != callevent.OutcomeAbandoned {
		t.Errorf("outcome %q", got.Outcome)
	}
	wantTypes(t, r.events.types(leg.id), callevent.EventQueued, callevent.EventOffered, callevent.EventAbandoned)
	if ab := r.events.all(leg.id)[2]; ab.Where != callevent.WhereQueue {
		t.Errorf("where=%q", ab.Where)
	}
	s, _ := acd.Agent(1)
	if s.State != StateAvailable || s.MissedOffers != 0 || s.Offering != "" {
		t.Errorf("agent after the caller left: %+v", s)
	}
	if got := testutil.ToFloat64(acd.m.waiting.WithLabelValues("support")); got != 0 {
		t.Errorf("calls waiting %v, want 0", got)
	}
	if n := testutil.CollectAndCount(acd.m.wait); n != 1 {
		t.Errorf("%d wait histograms", n)
	}
	if err := testutil.GatherAndCompare(reg, stringsReader(`
# HELP switchboard_agents Agents by state (available, busy, wrap_up, away, offline).
# TYPE switchboard_agents gauge
switchboard_agents{state="available"} 1
switchboard_agents{state="away"} 0
switchboard_agents{state="busy"} 0
switchboard_agents{state="offline"} 0
switchboard_agents{state="wrap_up"} 0
`), "switchboard_agents"); err != nil {
		t.Error(err)
	}
}

// TestQueue_PositionAnnouncements: a caller second in line hears please hold, "you are caller
// number" and two, then music, and again after AnnounceEvery — one RTP stream throughout.
func TestQueue_PositionAnnouncements(t *testing.T) {
	p := testPrompts(t, 40*time.Millisecond)
	p.Set("en", "num_2", tone(1400, 40*time.Millisecond))
	r := newRig(t, p, Queue{Name: "support", AnnouncePosition: true, AnnounceEvery: 20 * time.Second}, Queue{Name: "sales"})
	first, _, res1 := r.queueCall(t, "call-p1", "support")
	gw, carrier := mediaPair(t)
	tap := tapReceived(carrier)
	leg := newFakeLeg("call-p2")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res2 := runCall(t, c, Line{Target: QueueTarget("support")})
	var heard []float64
	last := tap.next(t)
	for range 200 {
		p := tap.next(t)
		if p.Sequence != last.Sequence+1 {
			t.Fatalf("sequence jumped from %d to %d", last.Sequence, p.Sequence)
		}
		last = p
		if f := toneOf(p.Payload); f != 0 && (len(heard) == 0 || heard[len(heard)-1] != f) {
			heard = append(heard, f)
		}
		if len(heard) >= 4 {
			break
		}
	}
	// please hold 600, position 1000, number two 1400, music 800
	if !reflect.DeepEqual(heard[len(heard)-3:], []float64{1000, 1400, 800}) {
		t.Errorf("heard %v, want ... 1000 (position) 1400 (two) 800 (music)", heard)
	}
	r.clk.awaitTimer(t, 20*time.Second)
	first.hangup() // now first in line
	result(t, res1)
	r.clk.advance(20 * time.Second)
	tap.untilTone(t, 1000)
	if f := toneOf(tap.untilTone(t, 1200).Payload); f != 1200 { // number one
		t.Errorf("position after the first caller left: %v", f)
	}
	leg.hangup()
	result(t, res2)
}

// TestAgent_HoldAndTransfer: hold cuts the bridge and counts hold time; a blind transfer to an
// agent releases the first (TU-7 events), and one to a queue re-queues the call.
func TestAgent_HoldAndTransfer(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	r.available(t, 1, 2, 3)
	leg, _, res := r.queueCall(t, "call-x", "support")
	a1 := r.dialer.next(t).answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	ctx := context.Background()

	if err := r.acd.Hold(ctx, leg.id); err != nil {
		t.Fatal(err)
	}
	if a1.isBridged() {
		t.Error("still bridged on hold")
	}
	r.clk.advance(20 * time.Second)
	if err := r.acd.Resume(ctx, leg.id); err != nil {
		t.Fatal(err)
	}
	if !a1.isBridged() {
		t.Error("not bridged after resume")
	}

	if err := r.acd.Transfer(ctx, leg.id, TransferTo{AgentID: 1}); !errors.Is(err, ErrAgentUnavailable) {
		t.Errorf("transfer to the busy agent itself: %v", err)
	}
	if err := r.acd.Transfer(ctx, leg.id, TransferTo{AgentID: 2}); err != nil {
		t.Fatal(err)
	}
	o := r.dialer.next(t)
	if o.AgentID != 2 || !a1.hungUp() {
		t.Fatalf("offer to %d, first agent hung up %v", o.AgentID, a1.hungUp())
	}
	a2 := o.answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	if !a2.isBridged() || r.state(t, 2) != StateBusy || r.state(t, 1) != StateAvailable {
		t.Errorf("after transfer: bridged %v agent2 %s agent1 %s", a2.isBridged(), r.state(t, 2), r.state(t, 1))
	}

	if err := r.acd.Transfer(ctx, leg.id, TransferTo{Queue: "sales"}); err != nil {
		t.Fatal(err)
	}
	o = r.dialer.next(t)
	if o.AgentID != 3 || o.Queue != "sales" {
		t.Fatalf("offer %+v, want agent 3 of sales", o.Offer)
	}
	o.answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	a2done := a2.hungUp()
	leg.hangup()
	got := result(t, res)
	if got.Outcome != callevent.OutcomeAnswered || got.HoldTime != 20*time.Second || !a2done {
		t.Errorf("result %+v (hold 20 s), agent 2 hung up %v", got, a2done)
	}
	wantTypes(t, r.events.types(leg.id),
		callevent.EventQueued, callevent.EventOffered, callevent.EventAnswered, callevent.EventHeld, callevent.EventResumed,
		callevent.EventTransferred, callevent.EventOffered, callevent.EventAnswered,
		callevent.EventQueued, callevent.EventOffered, callevent.EventTransferred, callevent.EventAnswered)
	evs := r.events.all(leg.id)
	if x := evs[5]; x.FromAgentID != 1 || x.ToAgentID != 2 {
		t.Errorf("first transfer %d→%d, want 1→2", x.FromAgentID, x.ToAgentID)
	}
	if x := evs[10]; x.FromAgentID != 2 || x.ToAgentID != 3 {
		t.Errorf("second transfer %d→%d, want 2→3", x.FromAgentID, x.ToAgentID)
	}
	if err := r.acd.Hold(ctx, leg.id); !errors.Is(err, ErrNoCall) {
		t.Errorf("hold after the call: %v", err)
	}
}

// TestAgent_StateChangesWhileBusy: away asked during a call applies when it ends, instead of
// wrap-up; busy and wrap_up cannot be chosen.
func TestAgent_StateChangesWhileBusy(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", WrapUp: time.Minute}, Queue{Name: "sales"})
	if _, err := r.acd.SetState(1, StateBusy); !errors.Is(err, ErrBadState) {
		t.Errorf("set busy: %v", err)
	}
	if _, err := r.acd.SetState(99, StateAway); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("unknown agent: %v", err)
	}
	r.available(t, 1)
	leg, _, res := r.queueCall(t, "call-s", "support")
	r.dialer.next(t).answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	if s, _ := r.acd.SetState(1, StateAway); s.State != StateBusy {
		t.Errorf("state %s right after asking away on a call, want busy", s.State)
	}
	leg.hangup()
	result(t, res)
	if st := r.state(t, 1); st != StateAway {
		t.Errorf("after the call: %s, want away", st)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// webrtcAgentLeg is an agent leg that says it is the browser softphone (ChanneledLeg).
type webrtcAgentLeg struct{ *fakeAgentLeg }

func (webrtcAgentLeg) Channel() string { return callevent.ChannelWebRTC }

// TestQueue_AnsweredCarriesTheAgentLegChannel (CF-1): call.answered says what the agent took the
// call on — webrtc for a leg that reports the softphone, nothing for a leg that does not say —
// so the ticket's session_type follows the agent's endpoint rather than the line's name.
func TestQueue_AnsweredCarriesTheAgentLegChannel(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", RingTimeout: 15 * time.Second}, Queue{Name: "sales"})
	r.available(t, 1)
	leg, _, res := r.queueCall(t, "call-webrtc", "support")
	o := r.dialer.next(t)
	al := webrtcAgentLeg{newFakeAgentLeg()}
	o.resp <- offerResult{leg: al}
	if ans := r.events.next(t, leg.id, callevent.EventAnswered); ans.Channel != callevent.ChannelWebRTC || ans.AgentID != 1 {
		t.Errorf("call.answered agent %d channel %q, want agent 1 on webrtc", ans.AgentID, ans.Channel)
	}
	leg.hangup()
	result(t, res)

	leg2, _, res2 := r.queueCall(t, "call-plain", "support")
	r.dialer.next(t).answer()
	if ans := r.events.next(t, leg2.id, callevent.EventAnswered); ans.Channel != "" {
		t.Errorf("a leg that does not say answered with channel %q", ans.Channel)
	}
	leg2.hangup()
	result(t, res2)
}
