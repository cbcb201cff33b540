package ticketing_test

import (
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// answeredOn is call.answered by agent on the given channel (webrtc, sip or "").
func (s *script) answeredOn(at float64, agent int64, channel string) *script {
	return s.add(callevent.EventAnswered, at, func(e *callevent.Event) { e.AgentID, e.Channel = agent, channel })
}

// rule CF-1: session_type is webrtc for a ticket made by a call taken or placed on the browser
// softphone (call.answered's channel), inbound or outbound otherwise (a SIP phone, or an outside
// system that does not say), voicemail for a voicemail; a call that joins a ticket later does
// not change it. A line whose name starts with "webrtc" means nothing any more.
func TestRule_CF1_SessionTypeFromTheAgentsChannel(t *testing.T) {
	onQueue := ticketing.CreateOnQueueEntry
	h := newEngineHarness(t, map[string]ticketing.LineSettings{"+15550199": {TicketCreationPoint: &onQueue}})
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false }) // one ticket per call, unless said
	session := func(callID string) string {
		t.Helper()
		return deref(h.ticket(h.call(callID).TicketID).CustomFields.SessionType)
	}
	cases := []struct {
		name string
		s    *script
		want string
	}{
		{"inbound on the softphone", h.newCall(h.now).started("+15557771001", "+15550100").queued(1, "support").
			answeredOn(5, h.agent1.ID, callevent.ChannelWebRTC).ended(30, callevent.OutcomeAnswered), "webrtc"},
		{"inbound on a SIP phone", h.newCall(h.now).started("+15557771002", "+15550100").queued(1, "support").
			answeredOn(5, h.agent1.ID, callevent.ChannelSIP).ended(30, callevent.OutcomeAnswered), "inbound"},
		{"inbound, channel unknown, line named webrtc…", h.newCall(h.now).started("+15557771003", "webrtc-line").
			answeredOn(5, h.agent1.ID, "").ended(30, callevent.OutcomeAnswered), "inbound"},
		{"on_queue_entry, answered on the softphone", h.newCall(h.now).started("+15557771004", "+15550199").queued(1, "support").
			answeredOn(5, h.agent1.ID, callevent.ChannelWebRTC).ended(30, callevent.OutcomeAnswered), "webrtc"},
		{"outbound from the softphone", h.outboundOn(h.now, "+15557771005", callevent.ChannelWebRTC), "webrtc"},
		{"outbound, channel unknown", h.outboundOn(h.now, "+15557771006", ""), "outbound"},
		{"voicemail", h.newCall(h.now).started("+15557771007", "+15550198").
			add(callevent.EventVoicemail, 5, func(e *callevent.Event) { e.RecordingID = "vm-cf1" }).
			ended(30, callevent.OutcomeVoicemail), "voicemail"},
	}
	for _, c := range cases {
		h.run(c.s.evs...)
		if got := session(c.s.id); got != c.want {
			t.Errorf("%s: session_type %q, want %q", c.name, got, c.want)
		}
	}

	// An appended call keeps the ticket's value: a softphone call joining the voicemail
	// ticket (VM-3) leaves it voicemail; a SIP-phone call joining a webrtc ticket leaves it webrtc.
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = true })
	vm := cases[len(cases)-1].s
	later := h.newCall(h.now.Add(time.Hour)).started("+15557771007", "+15550100").
		answeredOn(5, h.agent2.ID, callevent.ChannelWebRTC).ended(30, callevent.OutcomeAnswered)
	h.run(later.evs...)
	if *h.call(later.id).TicketID != *h.call(vm.id).TicketID {
		t.Fatal("VM-3: the later call did not join the voicemail ticket")
	}
	if got := session(later.id); got != "voicemail" {
		t.Errorf("a softphone call joining the voicemail ticket changed session_type to %q", got)
	}
	first := cases[0].s
	again := h.newCall(h.now.Add(time.Hour)).started("+15557771001", "+15550100").queued(1, "support").
		answeredOn(5, h.agent1.ID, callevent.ChannelSIP).ended(30, callevent.OutcomeAnswered)
	h.run(again.evs...)
	if *h.call(again.id).TicketID != *h.call(first.id).TicketID {
		t.Fatal("TU-1: the second call did not join the first ticket")
	}
	if got := session(again.id); got != "webrtc" {
		t.Errorf("a SIP-phone call joining a webrtc ticket changed session_type to %q", got)
	}
	if got := deref(h.ticket(h.call(again.id).TicketID).CustomFields.CallID); got != again.id {
		t.Errorf("CF-3: call_id %q, want the joining call's", got)
	}
}

// outboundOn is agent1's answered outbound call to `to`, started and answered on channel.
func (h *engineHarness) outboundOn(start time.Time, to, channel string) *script {
	s := h.newCall(start).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line, e.Channel = "outbound", "+15550100", to, "+15550100", channel
	})
	return s.answeredOn(10, h.agent1.ID, channel).ended(70, callevent.OutcomeAnswered)
}
