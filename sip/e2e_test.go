package sip

import (
	"bytes"
	"context"
	"fmt"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// bridgeSetup starts a desk (SIPp uas) and a gateway whose line +15550197 bridges to it.
type bridgeSetup struct {
	g    *testGateway
	dir  string
	desk *sippProc
}

func newBridgeSetup(t *testing.T, deskScenario string, deskArgs []string, mod func(*Options)) *bridgeSetup {
	t.Helper()
	requireSipp(t)
	dir := t.TempDir()
	writeULawWAV(t, filepath.Join(dir, "tone.wav"), 2)
	deskPort := testport.FreeUDP(t)
	deskMedia := testport.FreeMedia(t)
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:desk@127.0.0.1:%d", deskPort))}}
		if mod != nil {
			mod(o)
		}
	})
	args := append([]string{"-p", strconv.Itoa(deskPort), "-mp", strconv.Itoa(deskMedia), "-m", "1"}, deskArgs...)
	var desk *sippProc
	if deskScenario != "" {
		desk = startSipp(t, dir, deskScenario, args...)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("desk SIPp output:\n%s", tail(desk.out.String(), 3000))
			}
		})
	}
	return &bridgeSetup{g: g, dir: dir, desk: desk}
}

func (b *bridgeSetup) carrier(t *testing.T, scenario string, args ...string) *sippProc {
	all := append([]string{fmt.Sprintf("127.0.0.1:%d", b.g.port()), "-s", "15550197", "-p", strconv.Itoa(testport.FreeUDP(t)),
		"-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1"}, args...)
	return startSipp(t, b.dir, scenario, all...)
}

func (b *bridgeSetup) summary(t *testing.T) CallSummary {
	t.Helper()
	select {
	case s := <-b.g.summary:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no call summary")
		return CallSummary{}
	}
}

// TestBridgedCallRTPBothWays proves the dev line's bridge: SIPp carrier with RTP → gateway →
// SIPp desk with RTP echo; RTP flows both ways on both legs, events and metrics are right.
func TestBridgedCallRTPBothWays(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, nil)
	car := b.carrier(t, "uac_rtp.xml")
	car.wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	got := eventTypes(evs)
	want := []string{callevent.EventStarted, callevent.EventAnswered, callevent.EventEnded}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	st := evs[0]
	if st.Direction != "inbound" || st.From != "+15551234567" || st.To != "+15550197" || st.Line != "+15550197" || st.CallerName != "Alice Caller" {
		t.Errorf("call.started = %+v", st)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) || e.ID == "" || e.CallID != st.CallID {
			t.Errorf("event %d: seq %d id %q call %q", i, e.Seq, e.ID, e.CallID)
		}
	}
	end := evs[2]
	if end.Outcome != callevent.OutcomeAnswered || end.Durations == nil || end.Duration < 2 || end.TalkTime < 2 {
		t.Errorf("call.ended = %+v %+v", end, end.Durations)
	}
	sum := b.summary(t)
	if sum.Carrier.PacketsReceived < 50 || sum.Carrier.PacketsSent < 50 {
		t.Errorf("carrier leg RTP rx %d tx %d, want both ways", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	}
	if len(sum.Outbound) != 1 || sum.Outbound[0].PacketsReceived < 50 || sum.Outbound[0].PacketsSent < 50 {
		t.Errorf("desk leg RTP %+v, want both ways", sum.Outbound)
	}
	if v := b.g.counter("switchboard_rtp_packets_total", "direction", "rx"); v < 100 {
		t.Errorf("switchboard_rtp_packets_total{rx} = %v", v)
	}
	if v := b.g.counter("switchboard_calls_total", "direction", "inbound", "outcome", "answered"); v != 1 {
		t.Errorf("switchboard_calls_total{answered} = %v", v)
	}
	if v := b.g.counter("switchboard_call_setup_seconds"); v != 1 {
		t.Errorf("switchboard_call_setup_seconds count = %v", v)
	}
	if v := b.g.counter("switchboard_sip_requests_total", "method", "INVITE"); v != 1 {
		t.Errorf("switchboard_sip_requests_total{INVITE} = %v", v)
	}
	if v := b.g.counter("switchboard_calls_active"); v != 0 {
		t.Errorf("switchboard_calls_active = %v after the call", v)
	}
}

// TestHoldByReinviteSendonly: the carrier holds with a re-INVITE sendonly (answered recvonly,
// checked by the scenario), resumes with sendrecv; call.held/call.resumed are emitted and the
// hold time shows up in call.ended.
func TestHoldByReinviteSendonly(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, nil)
	b.carrier(t, "uac_hold.xml").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	want := []string{callevent.EventStarted, callevent.EventAnswered, callevent.EventHeld, callevent.EventResumed, callevent.EventEnded}
	if fmt.Sprint(eventTypes(evs)) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", eventTypes(evs), want)
	}
	end := lastOf(evs, callevent.EventEnded)
	if end.HoldTime < 2 || end.HoldTime > 3 || end.Outcome != callevent.OutcomeAnswered {
		t.Errorf("call.ended hold_time = %d outcome %s, want 2..3 s answered", end.HoldTime, end.Outcome)
	}
	if end.TalkTime+end.HoldTime > end.Duration+1 {
		t.Errorf("talk %d + hold %d exceed duration %d", end.TalkTime, end.HoldTime, end.Duration)
	}
}

// TestCancelBeforeAnswer: the carrier CANCELs while the far end rings: 487 to the carrier, the
// far end's INVITE is CANCELled too, outcome abandoned.
func TestCancelBeforeAnswer(t *testing.T) {
	b := newBridgeSetup(t, "uas_cancel.xml", nil, nil)
	b.carrier(t, "uac_cancel.xml").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	end := lastOf(evs, callevent.EventEnded)
	if end.Outcome != callevent.OutcomeAbandoned || end.Duration != 0 || end.RingTime < 1 {
		t.Errorf("call.ended = %s %+v, want abandoned, no duration, ring ≥ 1 s", end.Outcome, end.Durations)
	}
	if lastOf(evs, callevent.EventAnswered) != nil {
		t.Error("call.answered emitted for a cancelled call")
	}
	if v := b.g.counter("switchboard_sip_responses_total", "code", "487"); v != 1 {
		t.Errorf("487 responses = %v", v)
	}
}

// TestFarEndHangsUp: BYE from the far end ends both legs (the carrier receives a BYE).
func TestFarEndHangsUp(t *testing.T) {
	b := newBridgeSetup(t, "uas_bye.xml", []string{"-rtp_echo"}, nil)
	b.carrier(t, "uac_wait_bye.xml").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered || end.TalkTime < 1 {
		t.Errorf("call.ended = %s %+v", end.Outcome, end.Durations)
	}
}

// TestLateOffer: an INVITE without SDP gets our offer (PCMU, PCMA, telephone-event) in the 200
// and the answer in the ACK sets up media: RTP flows both ways.
func TestLateOffer(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, nil)
	b.carrier(t, "uac_late.xml").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s", end.Outcome)
	}
	sum := b.summary(t)
	if sum.Carrier.PacketsReceived < 50 || sum.Carrier.PacketsSent < 50 {
		t.Errorf("carrier leg RTP rx %d tx %d after a late offer", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	}
}

// TestOKCrossingCancel: the far end's 200 crosses our CANCEL: we ACK it and then BYE it
// (RFC 3261 §15), and the call is abandoned.
func TestOKCrossingCancel(t *testing.T) {
	b := newBridgeSetup(t, "uas_cross.xml", nil, nil)
	b.carrier(t, "uac_cancel.xml").wait(t)
	b.desk.wait(t) // the desk scenario only passes when it got the ACK and then the BYE
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAbandoned {
		t.Errorf("outcome = %s", end.Outcome)
	}
}

// TestBridgedCallOverTCP: the carrier leg over TCP (SIPp -t t1) bridged to a UDP far end.
func TestBridgedCallOverTCP(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, nil)
	b.carrier(t, "uac_rtp.xml", "-t", "t1").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s", end.Outcome)
	}
	if sum := b.summary(t); sum.Carrier.PacketsReceived < 50 || sum.Carrier.PacketsSent < 50 {
		t.Errorf("carrier RTP rx %d tx %d", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	}
}

// TestOutboundDigestAuth: the far end challenges our INVITE with 407; we answer with the
// trunk's digest credentials (qop=auth) and the call completes.
func TestOutboundDigestAuth(t *testing.T) {
	b := newBridgeSetup(t, "uas_auth.xml", []string{"-rtp_echo"}, func(o *Options) {
		o.Trunks[0].OutboundUsername, o.Trunks[0].OutboundPassword = "carrier", "s3cret"
		bt := o.Lines[0].Target.(*BridgeTarget)
		bt.Trunk = "carrier"
	})
	b.carrier(t, "uac_rtp.xml").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s", end.Outcome)
	}
}

// TestEarlyMediaRelayed: the far end's 183 with SDP is relayed to the carrier as 183 with our
// answer (checked by the scenario) and the early audio is bridged before the 200.
func TestEarlyMediaRelayed(t *testing.T) {
	b := newBridgeSetup(t, "uas_early.xml", []string{"-rtp_echo"}, nil)
	b.carrier(t, "uac_early.xml").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered || end.RingTime < 1 {
		t.Errorf("call.ended = %s %+v, want answered after ≥ 1 s of early media", end.Outcome, end.Durations)
	}
	// 1.5 s of early media plus 3 s of talk at 20 ms: ~225 packets each way; without the early
	// bridge the carrier would be sent at most the 150 of the talk time.
	sum := b.summary(t)
	t.Logf("carrier leg: rx %d tx %d", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	if sum.Carrier.PacketsReceived < 190 || sum.Carrier.PacketsSent < 190 {
		t.Errorf("carrier RTP rx %d tx %d, want early media bridged too", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	}
}

// TestFarEndHold: the far end holds with re-INVITE inactive (answered inactive) and resumes;
// hold is tracked across legs.
func TestFarEndHold(t *testing.T) {
	b := newBridgeSetup(t, "uas_hold.xml", []string{"-rtp_echo"}, nil)
	b.carrier(t, "uac_rtp.xml").wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	want := []string{callevent.EventStarted, callevent.EventAnswered, callevent.EventHeld, callevent.EventResumed, callevent.EventEnded}
	if fmt.Sprint(eventTypes(evs)) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", eventTypes(evs), want)
	}
	if end := lastOf(evs, callevent.EventEnded); end.HoldTime < 1 || end.HoldTime > 2 {
		t.Errorf("hold_time = %d, want 1..2", end.HoldTime)
	}
}

// TestOriginateThroughTrunk: an outbound call through the trunk (the agents' dial path): the
// carrier (SIPp uas) sees our caller ID, answers, RTP flows, and our hangup ends it with BYE.
func TestOriginateThroughTrunk(t *testing.T) {
	requireSipp(t)
	dir := t.TempDir()
	carrierPort := testport.FreeUDP(t)
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", carrierPort)
	})
	carrier := startSipp(t, dir, "uas_echo.xml", "-p", strconv.Itoa(carrierPort), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1", "-rtp_echo")
	talked := make(chan struct{})
	c, err := g.s.Originate(context.Background(), OriginateOptions{
		Trunk: "carrier", Number: "+15557654321", Line: "+15550197", AgentID: 7,
		Answered: func(ctx context.Context, c *Call, leg *OutboundLeg) error {
			defer close(talked)
			// Play two seconds of audio so the echo comes back.
			frames := make([]byte, 160*100)
			for i := range frames {
				frames[i] = 0x55
			}
			return leg.Endpoint().Play(ctx, bytes.NewReader(frames), media.PCMU)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Bounded: a SIPp that fails under load never answers, and the call never talks.
	select {
	case <-talked:
	case <-time.After(30 * time.Second):
		t.Fatal("the originated call was not answered within 30 s")
	}
	carrier.wait(t)
	evs := g.sink.waitEnded(t, 20*time.Second)
	if evs[0].Type != callevent.EventStarted || evs[0].Direction != "outbound" || evs[0].From != "+15550197" || evs[0].To != "+15557654321" || evs[0].CallID != c.ID() {
		t.Errorf("call.started = %+v", evs[0])
	}
	if a := lastOf(evs, callevent.EventAnswered); a == nil || a.AgentID != 7 {
		t.Errorf("call.answered = %+v", a)
	}
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered || end.Duration < 1 {
		t.Errorf("call.ended = %s %+v", end.Outcome, end.Durations)
	}
	var sum CallSummary
	select {
	case sum = <-g.summary:
	case <-time.After(20 * time.Second):
		t.Fatal("no call summary within 20 s")
	}
	if len(sum.Outbound) != 1 || sum.Outbound[0].PacketsSent < 40 || sum.Outbound[0].PacketsReceived < 40 {
		t.Errorf("outbound leg RTP %+v", sum.Outbound)
	}
}
