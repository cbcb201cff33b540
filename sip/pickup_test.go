package sip

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// ringingOffer is the early dialog of the offer ringing agent's phone, as the gateway sees it:
// its Call-ID, the gateway's tag and the phone's tag (the ids of RFC 3891's Replaces).
type ringingOffer struct{ callID, gwTag, phoneTag, call string }

func (g *testGateway) awaitRingingOffer(t *testing.T, agent int64) ringingOffer {
	t.Helper()
	var r ringingOffer
	if !waitFor(30*time.Second, func() bool {
		g.s.mu.Lock()
		var legs []*leg
		for _, l := range g.s.dialogs {
			legs = append(legs, l)
		}
		g.s.mu.Unlock()
		for _, l := range legs { // leg locks are never taken under the server's
			if l.offerAgent != agent || l.isEnded() {
				continue
			}
			l.mu.Lock()
			if !l.confirmed && l.earlyTag != "" {
				r = ringingOffer{callID: l.callID, gwTag: l.localTag, phoneTag: l.earlyTag, call: l.call.id}
			}
			l.mu.Unlock()
		}
		return r.callID != ""
	}) {
		t.Fatalf("no offer ringing agent %d's phone", agent)
	}
	return r
}

// picker starts SIPp as agent2's phone picking up (scenario uac_pickup.xml or
// uac_pickup_code.xml), dialling service, echoing what it hears.
func (qp *queuePhone) picker(t *testing.T, scenario, service string, keys ...string) *sippProc {
	t.Helper()
	args := []string{fmt.Sprintf("127.0.0.1:%d", qp.g.port()), "-s", service, "-au", "agent2", "-ap", "other",
		"-auth_uri", fmt.Sprintf("%s@127.0.0.1:%d", service, qp.g.port()),
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1", "-rtp_echo"}
	for i := 0; i+1 < len(keys); i += 2 {
		args = append(args, "-key", keys[i], keys[i+1])
	}
	p := startSipp(t, qp.dir, scenario, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("picking phone (%s):\n%s", scenario, tail(p.out.String(), 3000))
		}
	})
	return p
}

// checkPickedUp checks what a pickup by agent 8 of a call offered to agent 7 leaves: call.offered
// to 7, then call.answered by 8 over a SIP phone (the ticket is 8's), the call answered, RTP
// both ways on the picking phone's leg (it echoes the caller's tone), agent 7 free with no
// missed offer, agent 8 no longer busy.
func (qp *queuePhone) checkPickedUp(t *testing.T) {
	t.Helper()
	evs := qp.g.sink.waitEnded(t, 30*time.Second)
	if o := lastOf(evs, callevent.EventOffered); o == nil || o.AgentID != 7 {
		t.Errorf("call.offered %+v, want agent 7", o)
	}
	a := lastOf(evs, callevent.EventAnswered)
	if a == nil || a.AgentID != 8 || a.Channel != callevent.ChannelSIP {
		t.Errorf("call.answered %+v, want agent 8 on a SIP phone; events %v", a, eventTypes(evs))
	}
	answers := 0
	for _, e := range evs {
		if e.Type == callevent.EventAnswered {
			answers++
		}
	}
	if answers != 1 {
		t.Errorf("%d call.answered, want 1: %v", answers, eventTypes(evs))
	}
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered {
		t.Errorf("call.ended outcome %q, want answered", end.Outcome)
	}
	var sum CallSummary
	select {
	case sum = <-qp.g.summary:
	case <-time.After(20 * time.Second):
		t.Fatal("no call summary")
	}
	talked := false
	for _, st := range sum.Outbound {
		if st.PacketsReceived >= 50 && st.PacketsSent >= 50 {
			talked = true
		}
	}
	if !talked {
		t.Errorf("no leg of the call carried RTP both ways (the picking phone's): %+v", sum.Outbound)
	}
	st7, err := qp.acd.Agent(7)
	if err != nil {
		t.Fatal(err)
	}
	if st7.State != ivr.StateAvailable || st7.MissedOffers != 0 {
		t.Errorf("agent 7 after the pickup: %+v, want available with no missed offer", st7)
	}
	if !waitFor(10*time.Second, func() bool { st, _ := qp.acd.Agent(8); return st.State != ivr.StateBusy }) {
		t.Error("agent 8 still busy after the call")
	}
}

// TestSIPPhonePicksUpACallRingingAnotherAgentWithReplaces: a queued call rings agent1's phone
// (SIPp, ringing until CANCELled). An INVITE whose Replaces names that early dialog with a
// wrong from-tag gets 481 (RFC 3891 §3: all three ids must match); agent2's phone (SIPp, not
// available in the queue) then sends the INVITE with Replaces built from the offer's ids —
// challenged, sent again with agent2's digest credentials — and gets 200: the gateway CANCELs
// the offer to agent1 (its phone answers 487), bridges the caller to agent2's phone, and the
// call is agent2's (call.answered agent 8, over SIP), no miss counted for agent1. The same
// Replaces once more is 481 (no such early dialog any more).
func TestSIPPhonePicksUpACallRingingAnotherAgentWithReplaces(t *testing.T) {
	qp := newQueuePhone(t, 30*time.Second, func(o *Options, acd *ivr.ACD) { o.Pickup = acd; o.PhoneHold = acd })
	ringing := qp.phone(t, "agent1", "secret", "uas_cancel.xml")
	qp.available(t, 7)
	caller := qp.caller(t, "uac_wait_bye.xml")
	off := qp.g.awaitRingingOffer(t, 7)

	raw := newUDPPeer(t, qp.g.port())
	final := func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 ") && !strings.HasPrefix(m, "SIP/2.0 1") }
	raw.send(rawInvite("agent1", fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=wrong\n", off.callID, off.gwTag), pcmuOffer))
	if m := raw.recvUntil(5*time.Second, final); !strings.HasPrefix(m, "SIP/2.0 481") {
		t.Errorf("Replaces with a wrong from-tag: %q, want 481", firstLine(m))
	}

	picker := qp.picker(t, "uac_pickup.xml", "agent1", "rcid", off.callID, "totag", off.gwTag, "fromtag", off.phoneTag)
	ringing.wait(t) // CANCELled: 200, 487, ACK
	picker.wait(t)  // 401, 200, 2 s of talk, BYE
	caller.wait(t)  // BYE once agent2 hung up
	qp.checkPickedUp(t)

	time.Sleep(time.Millisecond) // rawInvite's Call-ID is the clock's nanoseconds: a new one
	raw.send(rawInvite("agent1", fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=%s\n", off.callID, off.gwTag, off.phoneTag), pcmuOffer))
	if m := raw.recvUntil(5*time.Second, final); !strings.HasPrefix(m, "SIP/2.0 481") {
		t.Errorf("Replaces of the offer once picked up: %q, want 481", firstLine(m))
	}
}

// TestSIPPhonePicksUpTheRingingCallByFeatureCode: agent2's phone dials *8 while a queued call
// rings agent1's phone: the call is agent2's as with Replaces (offer to agent1 CANCELled, no
// miss, call.answered agent 8). Dialled again with nothing ringing, *8 gets 481.
func TestSIPPhonePicksUpTheRingingCallByFeatureCode(t *testing.T) {
	qp := newQueuePhone(t, 30*time.Second, func(o *Options, acd *ivr.ACD) { o.Pickup = acd })
	ringing := qp.phone(t, "agent1", "secret", "uas_cancel.xml")
	qp.available(t, 7)
	caller := qp.caller(t, "uac_wait_bye.xml")
	qp.g.awaitRingingOffer(t, 7)
	picker := qp.picker(t, "uac_pickup_code.xml", FeaturePickup)
	ringing.wait(t)
	picker.wait(t)
	caller.wait(t)
	qp.checkPickedUp(t)

	none := qp.picker(t, "uac_pickup_code.xml", FeaturePickup)
	select {
	case err := <-none.done:
		if err == nil || !strings.Contains(none.out.String(), "481") {
			t.Errorf("*8 with nothing ringing: sipp %v, want it refused with 481\n%s", err, tail(none.out.String(), 2000))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sipp dialling *8 with nothing ringing did not exit")
	}
}

// Race (run under -race): a leg's final RTP counters are recorded before anyone can see it
// ended. The far end's BYE ends a leg on sipgo's goroutine (leg.end) while the call's
// goroutine, woken by the leg's end (an agent's leg is the ACD's AgentLeg, whose Done is the
// leg's ended channel), ends the call and builds its summary (OnCallEnd) from each leg's
// recorded counters. The end used to close the channel first and record the counters only
// after closing the endpoint, so a summary built meanwhile read zeros: a picked-up call whose
// phone hung up showed no RTP either way on a loaded machine although the audio had flowed
// (issue 21). 200 rounds: a leg with RTP received ends while a goroutine waits for its end and
// reads its counters at once.
func TestLegCountersRecordedBeforeItsEndIsSeen(t *testing.T) {
	g := startGateway(t, nil)
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	const packets = 5
	pkt := make([]byte, 12+160)
	for i := range 200 {
		l := newLeg(g.s, nil, roleUAS)
		ep, err := l.endpoint()
		if err != nil {
			t.Fatal(err)
		}
		ep.SetRemote(from)
		ep.SetCodec(PayloadPCMU, media.PCMU)
		to := net.UDPAddrFromAddrPort(ep.LocalAddr())
		for n := range packets {
			pkt[0], pkt[1] = 0x80, PayloadPCMU
			binary.BigEndian.PutUint16(pkt[2:], uint16(n+1))
			binary.BigEndian.PutUint32(pkt[4:], uint32(160*n))
			binary.BigEndian.PutUint32(pkt[8:], 0x5157)
			if _, err := peer.WriteToUDP(pkt, to); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for ep.Stats().PacketsReceived < packets {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the endpoint received %d packets of %d", i, ep.Stats().PacketsReceived, packets)
			}
			time.Sleep(time.Millisecond)
		}
		seen := make(chan media.Stats)
		go func() {
			<-l.ended
			l.mu.Lock()
			st := l.stats
			l.mu.Unlock()
			seen <- st
		}()
		go l.end(causeRemoteBye)
		if st := <-seen; st.PacketsReceived != packets {
			t.Fatalf("round %d: the leg's counters read as it was seen ended: %+v, want %d packets received", i, st, packets)
		}
	}
}
