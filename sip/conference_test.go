package sip

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

// flowRecorder is a Recorder whose tap hands what the tapped endpoint receives (the
// recording's left channel) and sends (its right channel) to two pcmTaps. Only the first call
// it is asked for is recorded.
type flowRecorder struct {
	left, right *pcmTap
	started     atomic.Bool
	finished    chan struct{}
	once        sync.Once
}

func newFlowRecorder() *flowRecorder {
	return &flowRecorder{left: &pcmTap{ch: make(chan []int16, 4096)}, right: &pcmTap{ch: make(chan []int16, 4096)},
		finished: make(chan struct{})}
}

func (r *flowRecorder) StartCall(context.Context, string) (media.Tap, func(context.Context) (string, int64, error), error) {
	if !r.started.CompareAndSwap(false, true) {
		return func(media.TapPacket) {}, func(context.Context) (string, int64, error) { return "other", 0, nil }, nil
	}
	return func(p media.TapPacket) {
			if p.PayloadType != 0 {
				return
			}
			dst := r.left
			if p.Flow == media.Sent {
				dst = r.right
			}
			s := make([]int16, len(p.Payload))
			media.PCMU.Decode(s, p.Payload)
			select {
			case dst.ch <- s:
			default:
			}
		}, func(context.Context) (string, int64, error) {
			r.once.Do(func() { close(r.finished) })
			return "rec-conference", 1, nil
		}, nil
}

// TestConference_RecordingGoesOnAfterTheCallerLeaves (issue 21, recording of a conference): a
// SIPp caller (440 Hz) answered by agent 7 (1400 Hz), an outside party added through the
// trunk (SIPp, 1000 Hz). While the caller is in, the recording is the caller's: left the
// caller, right the agent and the party mixed. The caller hangs up (its BYE): the agent and the
// party talk on, and the recording follows the agent — left the agent, right the party —
// until the party hangs up, which ends the call and closes the recording
// (call.recording_ready). Before, the recording stopped hearing anything once the caller left.
func TestConference_RecordingGoesOnAfterTheCallerLeaves(t *testing.T) {
	requireSipp(t)
	partySipp, partyPort := startPartySipp(t)
	rec := newFlowRecorder()
	// The caller talks 25 s from the gateway's answer, then hangs up: time for the agent to
	// answer, the party to join and the checks below on a loaded machine.
	sc := newSuperviseClusterCaller(t, "a", func(o *Options) {
		o.Trunks = append(o.Trunks, Trunk{Name: "carrier-out", OutboundURI: fmt.Sprintf("sip:127.0.0.1:%d", partyPort)})
		o.Recorder = rec
	}, "uac_tone_bye.xml", "-d", "25000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	playTone(ctx, &wg, sc.agent.phone, agentHz)

	partyID, err := sc.a.s.DialConference(ctx, ConferenceDial{CallID: sc.callID, AgentID: 7, Number: "+15557654323",
		Join: sc.acdA.Conference})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return sc.acdA.Conferenced(sc.callID) }) {
		t.Fatal("the party never joined the call")
	}
	expectTones(t, "recording, caller in: left", rec.left.listen(t, 25), []float64{callerHz}, []float64{agentHz, partyHz})
	expectTones(t, "recording, caller in: right", rec.right.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})

	// The caller hangs up.
	sc.caller.wait(t)
	c := sc.a.s.callByID(sc.callID)
	if c == nil {
		t.Fatal("the call ended with the caller")
	}
	if !waitFor(30*time.Second, func() bool {
		c.mu.Lock()
		r := c.rec
		c.mu.Unlock()
		if r == nil {
			return false
		}
		r.move.Lock()
		defer r.move.Unlock()
		return r.from != nil && r.from != c.Endpoint()
	}) {
		t.Fatal("the recording did not follow the agent when the caller left")
	}
	expectTones(t, "recording, caller gone: left (the agent)", rec.left.listen(t, 25), []float64{agentHz}, []float64{callerHz, partyHz})
	expectTones(t, "recording, caller gone: right (the party)", rec.right.listen(t, 25), []float64{partyHz}, []float64{callerHz, agentHz})
	if id, ok := sc.acdA.CallAgent(sc.callID); !ok || id != 7 {
		t.Errorf("after the caller left, the call's agent is %d (%v), want 7", id, ok)
	}

	// The party hangs up: the call ends, its recording closes.
	pc := sc.a.s.callByID(partyID)
	if pc == nil {
		t.Fatal("the party's call is gone")
	}
	pc.Hangup()
	partySipp.wait(t)
	select {
	case <-rec.finished:
	case <-time.After(30 * time.Second):
		t.Fatal("the recording was not closed when the call ended")
	}
	if !waitFor(30*time.Second, func() bool {
		e := lastOf(sc.a.sink.callEvents(sc.callID), callevent.EventRecordingReady)
		return e != nil && e.RecordingID == "rec-conference"
	}) {
		t.Errorf("no call.recording_ready: %v", eventTypes(sc.a.sink.callEvents(sc.callID)))
	}
	if !waitFor(30*time.Second, func() bool { return sc.a.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left on node a: %d", sc.a.s.ActiveCalls())
	}
}

// startPartySipp starts the outside party of a conference test: SIPp answering one call on a
// free port and sending partyHz; its output is logged when the test fails.
func startPartySipp(t *testing.T) (*sippProc, int) {
	t.Helper()
	dir := t.TempDir()
	writeULawWAVHz(t, filepath.Join(dir, "party.wav"), 2, partyHz)
	port := testport.FreeUDP(t)
	p := startSipp(t, dir, "uas_party_tone.xml", "-p", strconv.Itoa(port),
		"-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("party SIPp output:\n%s", tail(p.out.String(), 3000))
		}
	})
	return p, port
}
