package sip

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// queuePhone is a gateway whose line +15550197 queues calls in "support" of a real ACD (agents
// 7 and 8, agent1 and agent2 of testAgents), whose agents are rung on their registered SIP
// phones (PhoneDialer); mod changes the gateway's options further.
type queuePhone struct {
	g   *testGateway
	acd *ivr.ACD
	dir string
}

func newQueuePhone(t *testing.T, ring time.Duration, mod func(*Options, *ivr.ACD)) *queuePhone {
	t.Helper()
	requireSipp(t)
	acd, err := ivr.NewACD(ivr.ACDOptions{
		Queues: []ivr.Queue{{Name: "support", RingTimeout: ring}},
		Agents: []ivr.Agent{{ID: 7, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}},
			{ID: 8, Email: "agent2@example.com", Name: "Agent Two", Queues: []string{"support"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	eng, err := ivr.New(ivr.Options{ACD: acd})
	if err != nil {
		t.Fatal(err)
	}
	qp := &queuePhone{acd: acd, dir: t.TempDir()}
	writeULawWAV(t, filepath.Join(qp.dir, "tone.wav"), 2)
	qp.g = startRegistrar(t, func(o *Options) {
		o.Registrar.DigestAlgorithms = sippDigest()
		o.Lines = []Line{{Number: "+15550197", Target: &IVRTarget{IVR: eng,
			Line: ivr.Line{Number: "+15550197", Target: ivr.QueueTarget("support")}}}}
		if mod != nil {
			mod(o, acd)
		}
	})
	acd.SetDialer(qp.g.s.PhoneDialer())
	return qp
}

// phone starts SIPp playing an agent's phone (scenario, as a uas on its own port) and
// registers it as user (agent1 or agent2 of testAgents).
func (qp *queuePhone) phone(t *testing.T, user, password, scenario string, args ...string) *sippProc {
	t.Helper()
	port := testport.FreeUDP(t)
	p := startSipp(t, qp.dir, scenario, append([]string{"-p", strconv.Itoa(port), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1"}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's phone (%s):\n%s", user, scenario, tail(p.out.String(), 3000))
		}
	})
	startSipp(t, qp.dir, "uac_register.xml", fmt.Sprintf("127.0.0.1:%d", qp.g.port()), "-s", user, "-au", user, "-ap", password,
		"-key", "contact_port", strconv.Itoa(port), "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
	return p
}

// caller starts a SIPp caller of the line.
func (qp *queuePhone) caller(t *testing.T, scenario string, args ...string) *sippProc {
	t.Helper()
	return startSipp(t, qp.dir, scenario, append([]string{fmt.Sprintf("127.0.0.1:%d", qp.g.port()), "-s", "15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1"}, args...)...)
}

func (qp *queuePhone) available(t *testing.T, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		if _, err := qp.acd.SetState(id, ivr.StateAvailable); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSIPPhoneHoldButtonIsTheACDsHold: agent1's SIP phone (SIPp, sending no audio) answers a
// queued call and presses its own hold button twice — a re-INVITE with a=sendonly, answered
// recvonly, for 4 s, and one with c=0.0.0.0 (RFC 2543), answered recvonly, for 1.5 s — resuming
// each time with sendrecv (answered sendrecv), then hangs up. The hold is the ACD's, as the
// page's button: the caller (SIPp echoing what it hears) hears the queue's music while held —
// its echo of that RTP reaches the gateway — where before it heard the silence of the held
// phone; call.held and call.resumed come once per hold, in order, and call.ended's hold_time
// counts both holds (the ACD's, not counted twice).
func TestSIPPhoneHoldButtonIsTheACDsHold(t *testing.T) {
	qp := newQueuePhone(t, 10*time.Second, func(o *Options, acd *ivr.ACD) { o.PhoneHold = acd })
	phone := qp.phone(t, "agent1", "secret", "uas_phone_hold.xml")
	qp.available(t, 7)
	caller := qp.caller(t, "uac_silent_wait_bye.xml", "-rtp_echo")

	var held callevent.Event
	if !waitFor(30*time.Second, func() bool {
		if e := lastOf(qp.g.sink.all(), callevent.EventHeld); e != nil {
			held = *e
			return true
		}
		return false
	}) {
		t.Fatalf("no call.held from the phone's hold: %v", eventTypes(qp.g.sink.all()))
	}
	c := qp.g.s.callByID(held.CallID)
	if c == nil {
		t.Fatal("the held call is gone")
	}
	// What the caller echoes is what it heard: the phone sends nothing, so from the hold on
	// only music can come back.
	base := c.Endpoint().Stats().PacketsReceived
	var got uint64
	if !waitFor(20*time.Second, func() bool {
		got = c.Endpoint().Stats().PacketsReceived - base
		return got >= 50
	}) {
		t.Errorf("the caller sent back %d RTP packets after the phone's hold, want ≥ 50 (1 s of the hold music it hears)", got)
	}
	phone.wait(t)
	caller.wait(t)
	evs := qp.g.sink.waitEnded(t, 30*time.Second)
	var seq []string
	for _, e := range evs {
		switch e.Type {
		case callevent.EventAnswered, callevent.EventHeld, callevent.EventResumed, callevent.EventEnded:
			seq = append(seq, e.Type)
		}
	}
	want := []string{callevent.EventAnswered, callevent.EventHeld, callevent.EventResumed,
		callevent.EventHeld, callevent.EventResumed, callevent.EventEnded}
	if fmt.Sprint(seq) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", seq, want)
	}
	if a := lastOf(evs, callevent.EventAnswered); a == nil || a.AgentID != 7 {
		t.Errorf("call.answered %+v, want agent 7", a)
	}
	end := lastOf(evs, callevent.EventEnded)
	if end.Durations == nil || end.Durations.HoldTime < 5 || end.Durations.HoldTime > 9 {
		t.Errorf("call.ended durations %+v, want hold_time about 5.5 s (4 s + 1.5 s)", end.Durations)
	}
}

// TestSIPPhoneHoldOnAnotherNodesCallIsThatNodesACDHold: agent1's phone, registered with node b,
// answers a call queued on node a (over the cluster's internal leg) and holds twice as in
// TestSIPPhoneHoldButtonIsTheACDsHold. Node b passes the hold and the resume to node a's ACD
// (INFO on the internal leg, as the page's buttons), so the caller on node a hears the queue's
// music while held — before, b passed the hold across as a re-INVITE and the caller heard the
// silence of the held phone; node a emits call.held and call.resumed once per hold and counts
// both holds; node b emits nothing.
func TestSIPPhoneHoldOnAnotherNodesCallIsThatNodesACDHold(t *testing.T) {
	tc := newTransferClusterPhone(t, 0, []string{"uas_phone_hold.xml"}, 0, "")
	c := tc.a.s.callByID(tc.callID)
	if c == nil {
		t.Fatal("node a's call is gone")
	}
	if !waitFor(30*time.Second, func() bool { return lastOf(tc.a.sink.callEvents(tc.callID), callevent.EventHeld) != nil }) {
		t.Fatalf("node a: no call.held from the phone's hold on node b: %v", eventTypes(tc.a.sink.callEvents(tc.callID)))
	}
	// The phone sends nothing: from the hold on, what node a sends the caller is music.
	base := c.Endpoint().Stats().PacketsSent
	var got uint64
	if !waitFor(20*time.Second, func() bool {
		got = c.Endpoint().Stats().PacketsSent - base
		return got >= 50
	}) {
		t.Errorf("node a sent the caller %d RTP packets after the phone's hold, want ≥ 50 (1 s of hold music)", got)
	}
	tc.phone.wait(t)
	tc.caller.wait(t)
	evs := tc.a.sink.waitEnded(t, 30*time.Second)
	var seq []string
	for _, e := range evs {
		switch e.Type {
		case callevent.EventAnswered, callevent.EventHeld, callevent.EventResumed, callevent.EventEnded:
			seq = append(seq, e.Type)
		}
	}
	want := []string{callevent.EventAnswered, callevent.EventHeld, callevent.EventResumed,
		callevent.EventHeld, callevent.EventResumed, callevent.EventEnded}
	if fmt.Sprint(seq) != fmt.Sprint(want) {
		t.Errorf("node a's events %v, want %v", seq, want)
	}
	end := lastOf(evs, callevent.EventEnded)
	if end.Durations == nil || end.Durations.HoldTime < 5 || end.Durations.HoldTime > 9 {
		t.Errorf("call.ended durations %+v, want hold_time about 5.5 s (4 s + 1.5 s)", end.Durations)
	}
	if n := len(tc.b.sink.all()); n != 0 {
		t.Errorf("node b emitted %d events: %v", n, eventTypes(tc.b.sink.all()))
	}
}
