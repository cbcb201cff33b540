package ticketing

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// The batch's call-row save (queueCalls) sends callSave as JSON to jsonb_populate_recordset:
// its keys must be exactly the stored columns (callRowColumns), and its values those the
// column-by-column map it replaced gave, for a call with every field set and for a new call.
func TestCallSaveMatchesColumnNames(t *testing.T) {
	s := func(v string) *string { return &v }
	i := func(v int64) *int64 { return &v }
	n := func(v int) *int { return &v }
	at := time.Date(2026, 12, 6, 4, 1, 2, 123456789, time.UTC)
	tm := func(d time.Duration) *time.Time { v := at.Add(d); return &v }
	full := &callRow{ID: "c1", Direction: "outbound", State: "ended", From: s("+15550001"), To: s("+15550002"),
		Line: s("+15550003"), CallerName: s("Ann \"A\" <x>"), Location: s("Paris"), TicketID: i(7), RequesterID: i(8),
		AgentID: i(9), Queue: s("support"), MenuPath: s("1>2"), Language: s("fr"), Outcome: s("answered"),
		StartedAt: tm(0), AnsweredAt: tm(time.Second), EndedAt: tm(time.Minute), Phase: phaseDone,
		PhaseSince: tm(2 * time.Second), QueuedAt: tm(3 * time.Second), PhaseMS: map[string]int64{"talk": 5, "queue": 6},
		D:            callevent.Durations{IVRTime: 1, QueueTime: 2, RingTime: 3, TalkTime: 4, HoldTime: 5, TransferTime: 6, Duration: 7},
		TicketChoice: s("new"), ChosenTicketID: i(10), EnteredNumber: true, NoTicket: true, AbandonedWhere: s("queue"),
		VoicemailID: s("vm"), RecordingID: s("rec"), RecordingSeconds: i(11), CSAT: n(4), LastSeq: 12,
		Data: map[string]string{"k": "v\u2028"}, Trunk: s("t"), SIPCallIDs: []string{"a@b", "c@d"}, HangupBy: s("caller"),
		HangupCause: s("bye"), SIPStatus: n(486), SIPReason: s("Busy Here")}
	for _, c := range []*callRow{full, newCallRow("c2")} {
		got, err := json.Marshal(c.columns())
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(callColumnsMap(c))
		if err != nil {
			t.Fatal(err)
		}
		var g, w map[string]any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("call %s: callSave gives\n%s\nthe column map gives\n%s", c.ID, got, want)
		}
		var keys []string
		for k := range g {
			keys = append(keys, k)
		}
		cols := strings.Split(strings.Join(strings.Fields(callRowColumns), ""), ",")
		slices.Sort(keys)
		slices.Sort(cols)
		if !slices.Equal(keys, cols) {
			t.Errorf("callSave's keys %v, the calls columns %v", keys, cols)
		}
	}
}

// callColumnsMap is the call row as the batch wrote it before callSave (a map by column name):
// the reference the struct is checked against.
func callColumnsMap(c *callRow) map[string]any {
	return map[string]any{
		"id": c.ID, "direction": c.Direction, "state": c.State, "from_number": c.From, "to_number": c.To, "line": c.Line,
		"caller_name": c.CallerName, "location": c.Location, "ticket_id": c.TicketID, "requester_id": c.RequesterID,
		"agent_id": c.AgentID, "queue": c.Queue, "menu_path": c.MenuPath, "language": c.Language, "outcome": c.Outcome,
		"started_at": micros(c.StartedAt), "answered_at": micros(c.AnsweredAt), "ended_at": micros(c.EndedAt), "phase": c.Phase,
		"phase_since": micros(c.PhaseSince), "queued_at": micros(c.QueuedAt), "phase_ms": c.PhaseMS, "ivr_time": c.D.IVRTime,
		"queue_time": c.D.QueueTime, "ring_time": c.D.RingTime, "talk_time": c.D.TalkTime, "hold_time": c.D.HoldTime,
		"transfer_time": c.D.TransferTime, "duration": c.D.Duration, "ticket_choice": c.TicketChoice,
		"chosen_ticket_id": c.ChosenTicketID, "entered_number": c.EnteredNumber, "no_ticket": c.NoTicket,
		"abandoned_where": c.AbandonedWhere, "voicemail_id": c.VoicemailID, "recording_id": c.RecordingID,
		"recording_seconds": c.RecordingSeconds, "csat": c.CSAT, "last_seq": c.LastSeq, "data": c.dataOrEmpty(),
		"trunk": c.Trunk, "sip_call_ids": sipCallIDs(c.SIPCallIDs), "hangup_by": c.HangupBy,
		"hangup_cause": c.HangupCause, "sip_status": c.SIPStatus, "sip_reason": c.SIPReason,
	}
}
