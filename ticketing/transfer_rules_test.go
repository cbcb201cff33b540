package ticketing_test

import (
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// rules CD-3 and TU-7 for consult transfers: from call.transfer_started until the target takes
// the call (call.transferred, then its call.answered) the caller waits, and that is transfer
// time, not hold or talk; a consult to another agent reassigns the ticket to that agent.
// 30 s queue + 40 s talk + 15 s consult + 35 s talk with agent 2 = 120 s.
func TestRule_CD3_TU7_ConsultTransferToAgentCountsTransferTimeAndReassigns(t *testing.T) {
	h := newEngineHarness(t, nil)
	s := h.newCall(h.now).started("+15557770020", "+15550100").queued(0, "support").
		answered(30, h.agent1.ID).
		add(callevent.EventTransferStarted, 70, func(e *callevent.Event) {
			e.FromAgentID, e.ToAgentID, e.TransferMode = h.agent1.ID, h.agent2.ID, callevent.TransferConsult
		}).
		add(callevent.EventTransferred, 85, func(e *callevent.Event) { e.FromAgentID, e.ToAgentID = h.agent1.ID, h.agent2.ID }).
		answered(85, h.agent2.ID).
		ended(120, callevent.OutcomeAnswered)
	h.run(s.evs...)
	c := h.call(s.id)
	if c.QueueTime != 30 || c.TalkTime != 75 || c.TransferTime != 15 || c.HoldTime != 0 || c.Duration != 120 {
		t.Fatalf("queue %d talk %d hold %d transfer %d duration %d, want 30+75+0+15=120",
			c.QueueTime, c.TalkTime, c.HoldTime, c.TransferTime, c.Duration)
	}
	tk := h.ticket(c.TicketID)
	if tk.AssigneeID == nil || *tk.AssigneeID != h.agent2.ID {
		t.Errorf("assignee %v after the consult transfer, want agent2 %d (TU-7)", tk.AssigneeID, h.agent2.ID)
	}
}

// A transfer to an outside number (blind or consult) counts its transfer time the same way; no
// agent takes the call over, so the ticket stays with the agent who transferred it; a consult
// given up (call.resumed) counts only the time it lasted.
func TestRule_CD3_TransferToOutsideNumberKeepsTheAssignee(t *testing.T) {
	h := newEngineHarness(t, nil)
	s := h.newCall(h.now).started("+15557770021", "+15550100").queued(0, "support").
		answered(10, h.agent1.ID).
		add(callevent.EventTransferStarted, 20, func(e *callevent.Event) {
			e.FromAgentID, e.ToNumber, e.TransferMode = h.agent1.ID, "+15557770099", callevent.TransferConsult
		}).
		add(callevent.EventResumed, 25, nil). // not answered: back to the agent
		add(callevent.EventTransferStarted, 30, func(e *callevent.Event) {
			e.FromAgentID, e.ToNumber, e.TransferMode = h.agent1.ID, "+15557770098", callevent.TransferConsult
		}).
		add(callevent.EventTransferred, 40, func(e *callevent.Event) { e.FromAgentID, e.ToNumber = h.agent1.ID, "+15557770098" }).
		answered(40, 0).
		ended(70, callevent.OutcomeAnswered)
	for _, e := range s.evs {
		if errs := callevent.Validate(e); len(errs) > 0 {
			t.Fatalf("%s: %v", e.Type, errs)
		}
	}
	h.run(s.evs...)
	c := h.call(s.id)
	if c.TransferTime != 15 || c.TalkTime != 45 || c.Duration != 70 {
		t.Fatalf("transfer %d talk %d duration %d, want 5+10 transfer, 10+5+30 talk, 70", c.TransferTime, c.TalkTime, c.Duration)
	}
	if c.AgentID == nil || *c.AgentID != h.agent1.ID {
		t.Errorf("call agent %v, want agent1 (the outside party is no agent)", c.AgentID)
	}
	tk := h.ticket(c.TicketID)
	if tk.AssigneeID == nil || *tk.AssigneeID != h.agent1.ID {
		t.Errorf("assignee %v after a transfer to an outside number, want agent1 %d", tk.AssigneeID, h.agent1.ID)
	}
}
