package ticketing

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// applyEvent applies one event to the call record c and to its ticket, inside tx. Every write
// to a ticket is a targeted UPDATE of the columns the call owns, never a rewrite of the row, so
// what an agent changed meanwhile stays (TU-10); every write follows merges to the live ticket
// (TU-6).
func (e *Engine) applyEvent(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event) error {
	at := ev.At.UTC()
	switch ev.Type {
	case callevent.EventStarted:
		return e.onStarted(ctx, tx, c, ev, at)
	case callevent.EventIVRSelected:
		late := c.lateData(ev) // CF-4: what comes once the call has its ticket
		c.mergeData(ev.Data.Map())
		if ev.MenuPath != "" {
			c.MenuPath = &ev.MenuPath
		}
		if ev.Language != "" {
			c.Language = &ev.Language
		}
		return e.applyLateCustomData(ctx, tx, c, late)
	case callevent.EventQueued:
		c.Queue = &ev.Queue
		c.QueuedAt = &at
		c.State = "queued"
		c.enterPhase(phaseQueue, at)
		st, err := e.settingsFor(ctx, deref(c.Line))
		if err != nil {
			return err
		}
		// TC-4: with on_queue_entry the ticket exists from queue entry, unassigned.
		if c.Direction == "inbound" && st.TicketCreationPoint == CreateOnQueueEntry {
			return e.ensureInboundTicket(ctx, tx, c, st, ticketReasonCall)
		}
	case callevent.EventOffered:
		c.State = "ringing"
		c.enterPhase(phaseRing, at)
	case callevent.EventAnswered:
		return e.onAnswered(ctx, tx, c, ev, at)
	case callevent.EventHeld:
		c.State = "held"
		c.enterPhase(phaseHold, at)
	case callevent.EventResumed:
		c.State = "talking"
		c.enterPhase(phaseTalk, at)
	case callevent.EventTransferStarted:
		// CD-3: from here until the transfer completes (call.transferred, then the target's
		// call.answered) or is given up (call.resumed), the caller waits: transfer time.
		c.State = "transferring"
		c.enterPhase(phaseTransfer, at)
	case callevent.EventTransferred:
		c.State = "transferring"
		c.enterPhase(phaseTransfer, at)
		if ev.ToAgentID <= 0 {
			// To an outside number: no agent takes the call over, so the ticket stays with the
			// agent who transferred it (TU-7 names agents only).
			return nil
		}
		to := ev.ToAgentID
		c.AgentID = &to
		// TU-7: the ticket follows the call to the agent it was transferred to.
		if c.TicketID != nil {
			return e.withLiveTicket(ctx, tx, c, func(id int64) error {
				return tx.setTicket(ctx, id, "assignee_id", to)
			})
		}
	case callevent.EventVoicemail:
		return e.onVoicemail(ctx, tx, c, ev, at)
	case callevent.EventAbandoned:
		return e.onAbandoned(ctx, tx, c, ev)
	case callevent.EventRecordingReady:
		c.RecordingID = &ev.RecordingID
		secs := ev.Seconds
		c.RecordingSeconds = &secs
		return e.attachRecording(ctx, tx, c)
	case callevent.EventCSAT:
		score := ev.Score
		c.CSAT = &score
		// TU-8.
		if c.TicketID != nil {
			return e.withLiveTicket(ctx, tx, c, func(id int64) error {
				return tx.setTicket(ctx, id, "csat", score)
			})
		}
	case callevent.EventEnded:
		return e.onEnded(ctx, tx, c, ev, at)
	case callevent.EventCallbackRequested:
		return e.onCallbackRequested(ctx, tx, c, ev, at)
	case callevent.EventCallbackDropped:
		return e.onCallbackDropped(ctx, tx, ev)
	}
	return nil
}

func (e *Engine) onStarted(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event, at time.Time) error {
	c.Direction = ev.Direction
	c.From, c.To = nonEmpty(ev.From), nonEmpty(ev.To)
	c.Line, c.CallerName, c.Location = nonEmpty(ev.Line), nonEmpty(ev.CallerName), nonEmpty(ev.Location)
	c.Trunk = nonEmpty(ev.Trunk)
	if ev.SIPCallID != "" {
		c.SIPCallIDs = []string{ev.SIPCallID}
	}
	if ev.Language != "" {
		// OB-7: an outbound call starts in its line's language (an inbound one learns it from
		// the IVR, call.ivr_selected).
		c.Language = &ev.Language
	}
	c.StartedAt = &at
	c.State = "started"
	c.enterPhase(phaseIVR, at)
	c.mergeData(ev.Data.Map()) // CF-4
	if ev.TicketChoice != "" {
		c.TicketChoice = &ev.TicketChoice
	}
	if ev.TicketID > 0 {
		id := ev.TicketID
		c.ChosenTicketID = &id
	}
	c.EnteredNumber = ev.EnteredNumber
	// TU-4: a queue callback's attempt joins the ticket of the call it calls back.
	if err := e.callbackTicket(ctx, tx, c, ev); err != nil {
		return err
	}
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil {
		return err
	}
	if ev.Direction == "outbound" {
		if c.RequesterID != nil { // a queue callback's caller (callbackTicket)
			return nil
		}
		if ev.RequesterID > 0 {
			id := ev.RequesterID
			c.RequesterID = &id
			return nil
		}
		return e.resolveRequester(ctx, tx, c, st, deref(c.To))
	}
	// Inbound: who the call is about, known before any agent sees it (screen pop, PM-11).
	return e.resolveRequester(ctx, tx, c, st, deref(c.From))
}

// resolveRequester runs caller resolution (PM rules) for number and records the requester.
func (e *Engine) resolveRequester(ctx context.Context, tx *applyTx, c *callRow, st Settings, number string) error {
	var agent int64
	if c.AgentID != nil {
		agent = *c.AgentID
	}
	var res Resolution
	if norm, ok := tx.callerNumber(e.store, number); ok && tx.cachedResolution(norm, st, &res) {
		// The batch resolved the number already (engine_prefetch.go).
		res.Number, res.Location = norm, e.store.PhoneLocation(norm)
	} else {
		var err error
		if res, err = e.store.resolveIn(ctx, tx.Tx, number, ResolveOptions{Settings: &st, CallID: c.ID, AgentID: agent}); err != nil {
			return err
		}
	}
	if res.Location != "" && c.Location == nil {
		c.Location = &res.Location
	}
	if res.NoTicket {
		c.NoTicket = true
	}
	if res.Requester != nil {
		id := res.Requester.ID
		c.RequesterID = &id
	}
	return nil
}

func (e *Engine) onAnswered(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event, at time.Time) error {
	if ev.AgentID > 0 {
		a := ev.AgentID
		c.AgentID = &a
	}
	c.AgentChannel = ev.Channel
	if c.AnsweredAt == nil {
		c.AnsweredAt = &at
	}
	c.State = "talking"
	c.enterPhase(phaseTalk, at)
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil {
		return err
	}
	if c.Direction == "outbound" {
		return e.ensureOutboundTicket(ctx, tx, c, st)
	}
	if c.RequesterID == nil && !c.NoTicket && st.AnonymousCallerPolicy == AnonymousAgentAsRequester && c.AgentID != nil {
		// PM-3 agent_as_requester: the accepting agent is the requester.
		c.RequesterID = c.AgentID
	}
	if c.TicketID != nil {
		// TC-4 then TC-1: the ticket made at queue entry gets the accepting agent.
		if c.AgentID == nil {
			return nil
		}
		return e.withLiveTicket(ctx, tx, c, func(id int64) error {
			_, err := tx.Exec(ctx, `UPDATE tickets SET assignee_id = $2 WHERE id = $1 AND assignee_id IS NULL AND status <> 'closed'`, id, *c.AgentID)
			if err != nil || c.AgentChannel != callevent.ChannelWebRTC {
				return err
			}
			// CF-1: a ticket this call made at queue entry, answered on the softphone, is a
			// webrtc session; one the call joined (TU-1) keeps its value.
			_, err = tx.Exec(ctx, `UPDATE tickets SET session_type = 'webrtc' WHERE id = $1 AND session_type = 'inbound'
				AND NOT EXISTS (SELECT 1 FROM calls WHERE ticket_id = $1 AND id <> $2)`, id, c.ID)
			return err
		})
	}
	// TC-1, or TU-1/TU-3/TU-4 when the call is appended.
	return e.ensureInboundTicket(ctx, tx, c, st, ticketReasonCall)
}

func (e *Engine) onVoicemail(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event, at time.Time) error {
	c.VoicemailID = &ev.RecordingID
	if c.State == "ended" {
		return e.onVoicemailAfterEnd(ctx, tx, c)
	}
	c.State = "voicemail"
	c.enterPhase(phaseIVR, at)
	if c.NoTicket {
		return nil
	}
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil {
		return err
	}
	// TC-3, VM-1: a voicemail always gets its own new ticket, for default_assignee (VM-2).
	// With on_queue_entry the call already had one: when the call made it, it is already the
	// voicemail's own — it becomes the voicemail ticket rather than staying behind empty and
	// unassigned; when the call joined an existing ticket there (TU-1), the voicemail gets a
	// new one.
	if c.TicketID != nil {
		if took, err := e.voicemailTakesQueueTicket(ctx, tx, c, st); err != nil || took {
			return err
		}
	}
	c.TicketID = nil
	return e.ensureInboundTicket(ctx, tx, c, st, ticketReasonVoicemail)
}

// onVoicemailAfterEnd delivers a voicemail message that comes after its call's end: the part
// of a message the caller was leaving when the gateway crashed or its node was lost, which the
// restarted node recovered from its disk (its call.ended — outcome failed, cause crash or
// node_lost — and, for a call no agent took, its call.abandoned came first). The call's outcome
// becomes voicemail; the ticket the abandon gave it becomes its voicemail ticket (VM-1, as with
// a ticket made at queue entry), or the message gets a new one; the call's voice comment,
// written at its end, gets the message's recording.
func (e *Engine) onVoicemailAfterEnd(ctx context.Context, tx *applyTx, c *callRow) error {
	outcome := callevent.OutcomeVoicemail
	c.Outcome = &outcome
	if c.NoTicket {
		return nil
	}
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil {
		return err
	}
	took := false
	if c.TicketID != nil {
		if took, err = e.voicemailTakesQueueTicket(ctx, tx, c, st); err != nil {
			return err
		}
	}
	if !took {
		c.TicketID = nil
		if err := e.ensureInboundTicket(ctx, tx, c, st, ticketReasonVoicemail); err != nil || c.TicketID == nil {
			return err
		}
		if err := e.addVoiceComment(ctx, tx, c, *c.TicketID); err != nil {
			return err
		}
	}
	return tx.attachRecording(ctx, c.ID, *c.VoicemailID, "/api/v2/recordings/"+*c.VoicemailID)
}

// voicemailTakesQueueTicket turns the ticket the call made at queue entry (TC-4) into its
// voicemail ticket (VM-1, VM-2: channel and session voicemail, tagged, for default_assignee when
// nobody has it) and reports true; false when the ticket is not the call's alone (another call
// joined it or was on it first, a ticket was merged into it) or is closed.
func (e *Engine) voicemailTakesQueueTicket(ctx context.Context, tx *applyTx, c *callRow, st Settings) (bool, error) {
	live, err := liveTicketID(ctx, tx, *c.TicketID)
	if err != nil {
		return false, err
	}
	a, err := e.defaultAssignee(ctx, tx, st)
	if err != nil {
		return false, err
	}
	// CF-5: the subject of a voicemail ticket, from the line's template.
	subject, err := e.ticketSubject(ctx, tx, c, st, ticketReasonVoicemail)
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `UPDATE tickets SET via_channel = 'voicemail', session_type = 'voicemail', subject = $3,
			tags = CASE WHEN 'voicemail' = ANY (tags) THEN tags ELSE array_append(tags, 'voicemail') END,
			assignee_id = coalesce(assignee_id, $4)
		WHERE id = $1 AND status <> 'closed'
		  AND NOT EXISTS (SELECT 1 FROM calls WHERE ticket_id = $1 AND id <> $2)
		  AND NOT EXISTS (SELECT 1 FROM tickets m WHERE m.merged_into_id = $1)`, live, c.ID, subject, a)
	if err != nil {
		return false, dbError("voicemail ticket", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	c.TicketID = &live
	return true, nil
}

func (e *Engine) onAbandoned(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event) error {
	where := ev.Where
	c.AbandonedWhere = &where
	return e.abandon(ctx, tx, c)
}

// abandon applies TC-5 to a call abandoned in the IVR, the queue or voicemail.
func (e *Engine) abandon(ctx context.Context, tx *applyTx, c *callRow) error {
	if c.Direction != "inbound" || c.NoTicket {
		return nil
	}
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil {
		return err
	}
	if c.TicketID != nil {
		// on_queue_entry made the ticket already: mark it abandoned, for default_assignee.
		return e.withLiveTicket(ctx, tx, c, func(id int64) error {
			if err := addTag(ctx, tx, id, "abandoned"); err != nil {
				return err
			}
			if a, err := e.defaultAssignee(ctx, tx, st); err != nil || a == nil {
				return err
			} else {
				_, err = tx.Exec(ctx, `UPDATE tickets SET assignee_id = $2 WHERE id = $1 AND assignee_id IS NULL AND status <> 'closed'`, id, *a)
				return err
			}
		})
	}
	if !st.AbandonedCallsCreateTickets {
		return nil // TC-5: the call record stays, without a ticket
	}
	return e.ensureInboundTicket(ctx, tx, c, st, ticketReasonAbandoned)
}

func (e *Engine) onEnded(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event, at time.Time) error {
	c.EndedAt = &at
	c.enterPhase(phaseDone, at)
	c.State = "ended"
	outcome := ev.Outcome
	c.Outcome = &outcome
	c.HangupBy, c.HangupCause, c.SIPReason = nonEmpty(ev.HangupBy), nonEmpty(ev.Cause), nonEmpty(ev.SIPReason)
	if ev.SIPStatus != 0 {
		status := ev.SIPStatus
		c.SIPStatus = &status
	}
	if ids := ev.SIPCallIDs.List(); len(ids) > 0 { // every leg's, the first leg's included
		c.SIPCallIDs = ids
	}
	c.D = c.derivedDurations()
	if d := ev.Durations; d != nil {
		// What the source measured (the gateway: a monotonic clock) wins; a component it left
		// at zero — the gateway's SIP layer does not see IVR, queue or transfer phases — comes
		// from the event timeline.
		c.D = callevent.Durations{
			IVRTime: pick(d.IVRTime, c.D.IVRTime), QueueTime: pick(d.QueueTime, c.D.QueueTime),
			RingTime: pick(d.RingTime, c.D.RingTime), TalkTime: pick(d.TalkTime, c.D.TalkTime),
			HoldTime: pick(d.HoldTime, c.D.HoldTime), TransferTime: pick(d.TransferTime, c.D.TransferTime),
			Duration: pick(d.Duration, c.D.Duration),
		}
	}
	if outcome == callevent.OutcomeAbandoned && c.AbandonedWhere == nil && c.TicketID == nil {
		where := "queue"
		if c.QueuedAt == nil {
			where = "ivr"
		}
		c.AbandonedWhere = &where
		if err := e.abandon(ctx, tx, c); err != nil {
			return err
		}
	}
	if outcome == callevent.OutcomeAnswered && c.TicketID == nil && !c.NoTicket {
		// The answer was never reported (an outside system's short stream): the call was
		// still answered, so it gets its ticket now.
		st, err := e.settingsFor(ctx, deref(c.Line))
		if err != nil {
			return err
		}
		if c.Direction == "outbound" {
			if err := e.ensureOutboundTicket(ctx, tx, c, st); err != nil {
				return err
			}
		} else if err := e.ensureInboundTicket(ctx, tx, c, st, ticketReasonCall); err != nil {
			return err
		}
	}
	if c.TicketID == nil {
		return nil // TC-2, TC-5 off, TC-8: the call record stays
	}
	return e.withLiveTicket(ctx, tx, c, func(id int64) error {
		// CD-1 … CD-5: the voice comment.
		if err := e.addVoiceComment(ctx, tx, c, id); err != nil {
			return err
		}
		// CF-2, CF-3: the fields of the most recent call.
		var wait *int64
		if c.QueuedAt != nil && c.AnsweredAt != nil {
			w := int64(c.AnsweredAt.Sub(*c.QueuedAt).Round(time.Second) / time.Second)
			wait = &w
		}
		return tx.setTicket(ctx, id, "call_duration", c.D.Duration, "wait_time", wait, "queue_name", c.Queue,
			"call_id", c.ID, "hold_duration", c.D.HoldTime)
	})
}

type ticketReason int

const (
	ticketReasonCall ticketReason = iota
	ticketReasonVoicemail
	ticketReasonAbandoned
)

// ensureInboundTicket gives an inbound call its ticket: appended to an existing one under
// TU-3/TU-4 (callback) or TU-1 (unsolved ticket of the same queue and channel), or new (TC-1,
// TC-3, TC-4, TC-5). Voicemail is always new (VM-1).
func (e *Engine) ensureInboundTicket(ctx context.Context, tx *applyTx, c *callRow, st Settings, why ticketReason) error {
	if c.NoTicket {
		return nil
	}
	if c.RequesterID == nil {
		rs := st
		if why != ticketReasonCall && rs.AnonymousCallerPolicy == AnonymousAgentAsRequester {
			// PM-3 agent_as_requester with no agent: a voicemail or an abandoned call from an
			// anonymous caller never reaches one, so its ticket gets a placeholder requester
			// rather than being lost.
			rs.AnonymousCallerPolicy = AnonymousPlaceholderUser
		}
		if err := e.resolveRequester(ctx, tx, c, rs, deref(c.From)); err != nil {
			return err
		}
		if c.RequesterID == nil {
			return nil // PM-3 no_ticket, or agent_as_requester before any agent
		}
	}
	requester, err := e.liveRequester(ctx, tx, *c.RequesterID)
	if err != nil {
		return err
	}
	c.RequesterID = &requester
	if why == ticketReasonCall {
		if id, ok, err := e.findAppendTarget(ctx, tx, c, st, requester); err != nil {
			return err
		} else if ok {
			return e.appendCall(ctx, tx, c, id, true)
		}
	}
	nt := newCallTicket{requester: requester, channel: ChannelVoice, source: "inbound", session: "inbound"}
	// CF-5: the subject from the line's template.
	if nt.subject, err = e.ticketSubject(ctx, tx, c, st, why); err != nil {
		return err
	}
	switch why {
	case ticketReasonVoicemail:
		nt.channel, nt.source, nt.session = ChannelVoicemail, "inbound", "voicemail"
		nt.tags = []string{"voicemail"}
		a, err := e.defaultAssignee(ctx, tx, st)
		if err != nil {
			return err
		}
		nt.assignee = a
	case ticketReasonAbandoned:
		nt.tags = []string{"abandoned"}
		a, err := e.defaultAssignee(ctx, tx, st)
		if err != nil {
			return err
		}
		nt.assignee = a
	default:
		nt.assignee = c.AgentID
	}
	nt.phone = c.From
	return e.createCallTicket(ctx, tx, c, nt)
}

// findAppendTarget finds the ticket an inbound call is appended to, if any.
func (e *Engine) findAppendTarget(ctx context.Context, tx *applyTx, c *callRow, st Settings, requester int64) (int64, bool, error) {
	// append_to_open_ticket is the kill switch of every automatic append: TU-1 and the
	// caller's callback (TU-4) alike.
	if !st.AppendToOpenTicket {
		return 0, false, nil
	}
	if id, ok, handled := e.batchAppendTarget(tx, c, st, requester); handled {
		return id, ok, nil // the batch read the candidates before its rules ran
	}
	// TU-4: a callback after a call shorter than callback_append_window, at most
	// callback_max_delay after that call ended (0: no bound), goes to that call's ticket. Only
	// the caller's most recent earlier call counts.
	if st.CallbackAppendWindow > 0 {
		var prevTicket *int64
		var prevDuration int64
		var prevEnded time.Time
		started := derefTime(c.StartedAt)
		err := tx.QueryRow(ctx, `SELECT ticket_id, duration, ended_at FROM calls
			WHERE requester_id = $1 AND id <> $2 AND ended_at IS NOT NULL AND ended_at <= $3
			ORDER BY ended_at DESC LIMIT 1`, requester, c.ID, started).Scan(&prevTicket, &prevDuration, &prevEnded)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, false, dbError("previous call", err)
		}
		inTime := st.CallbackMaxDelay == 0 || started.Sub(prevEnded) <= st.CallbackMaxDelay.Duration()
		if err == nil && prevTicket != nil && inTime && time.Duration(prevDuration)*time.Second < st.CallbackAppendWindow.Duration() {
			live, err := liveTicketID(ctx, tx, *prevTicket)
			if err != nil {
				return 0, false, err
			}
			var status string
			if err := tx.QueryRow(ctx, `SELECT status FROM tickets WHERE id = $1`, live).Scan(&status); err != nil {
				return 0, false, dbError("callback ticket", err)
			}
			if status != StatusClosed {
				return live, true, nil
			}
		}
	}
	// TU-1: the most recently updated unsolved ticket of this requester, same leaf queue,
	// same channel.
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM tickets
		WHERE requester_id = $1 AND status IN ('new', 'open', 'pending', 'hold') AND merged_into_id IS NULL
		  AND via_channel IN ('voice', 'voicemail') AND queue_name IS NOT DISTINCT FROM $2
		ORDER BY updated_at DESC, id DESC LIMIT 1 FOR UPDATE`, requester, c.Queue).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, dbError("unsolved ticket", err)
	}
	return id, true, nil
}

// ensureOutboundTicket gives an answered outbound call its ticket (TC-2, TC-6, TC-7, TC-8,
// TU-2, OB-1).
func (e *Engine) ensureOutboundTicket(ctx context.Context, tx *applyTx, c *callRow, st Settings) error {
	if c.TicketID != nil {
		return nil
	}
	choice := deref(c.TicketChoice)
	if choice == "none" {
		return nil // TC-8
	}
	if c.ChosenTicketID != nil && choice != "new" {
		// TC-6, TU-2: the chosen ticket; solved reopens. A ticket closed since the dial
		// cannot take the call: it gets a new ticket instead.
		live, err := liveTicketID(ctx, tx, *c.ChosenTicketID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil {
			var status string
			if err := tx.QueryRow(ctx, `SELECT status FROM tickets WHERE id = $1 FOR UPDATE`, live).Scan(&status); err != nil {
				return dbError("chosen ticket", err)
			}
			if status != StatusClosed {
				return e.appendCall(ctx, tx, c, live, true)
			}
		}
	}
	if c.RequesterID == nil {
		if err := e.resolveRequester(ctx, tx, c, st, deref(c.To)); err != nil {
			return err
		}
		if c.RequesterID == nil {
			return nil
		}
	}
	requester, err := e.liveRequester(ctx, tx, *c.RequesterID)
	if err != nil {
		return err
	}
	c.RequesterID = &requester
	if choice != "new" && st.AppendToOpenTicket {
		// OB-1, OB-3: the contact's most recent unsolved ticket — also when the agent was
		// prompted (prompt_ticket_choice) and picked none: "existing" without a ticket is
		// this pick, and without allow_new_ticket a new ticket is not the agent's to make.
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM tickets WHERE requester_id = $1 AND merged_into_id IS NULL
			AND status IN ('new', 'open', 'pending', 'hold') ORDER BY updated_at DESC, id DESC LIMIT 1 FOR UPDATE`, requester).Scan(&id)
		if err == nil {
			return e.appendCall(ctx, tx, c, id, true)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return dbError("unsolved ticket", err)
		}
	}
	// TC-2, TC-7: a new ticket about the callee, its subject from the line's template (CF-5).
	subject, err := e.ticketSubject(ctx, tx, c, st, ticketReasonCall)
	if err != nil {
		return err
	}
	return e.createCallTicket(ctx, tx, c, newCallTicket{
		requester: requester, assignee: c.AgentID, channel: ChannelVoice, source: "outbound", session: "outbound",
		subject: subject, phone: c.To,
	})
}

type newCallTicket struct {
	requester                         int64
	assignee                          *int64
	channel, source, session, subject string
	phone                             *string
	tags                              []string
}

// createCallTicket creates the call's ticket with CF-1 fields and the SD-1 note. CF-1: a call
// taken or placed on the browser softphone makes a webrtc session; a voicemail stays voicemail.
func (e *Engine) createCallTicket(ctx context.Context, tx *applyTx, c *callRow, nt newCallTicket) error {
	if c.AgentChannel == callevent.ChannelWebRTC && nt.session != "voicemail" {
		nt.session = "webrtc"
	}
	tags := nt.tags
	if tags == nil {
		tags = []string{}
	}
	// The ticket is inserted with the batch's others (applyTx.queueTickets), under an id taken
	// now, so that the rest of the batch can refer to it.
	id, err := tx.newTicketID(ctx, tx.expectTickets+1)
	if err != nil {
		return err
	}
	tx.createTicket(&batchTicket{ID: id, Subject: nt.subject, RequesterID: nt.requester, AssigneeID: nt.assignee,
		Channel: nt.channel, Source: nt.source, Phone: nt.phone, Tags: tags, Session: nt.session,
		CallerNumber: c.From, CallID: c.ID, Queue: c.Queue})
	c.TicketID = &id
	return e.addCallNote(ctx, tx, c, id)
}

// appendCall puts the call on an existing ticket (TU-1 … TU-4): the SD-1 note, the call's
// caller_number and call_id (CF-3), status back to open when reopen is set and the ticket is
// solved or pending. The number shown on the ticket stays the one that created it (CD-7), and
// so does its session_type (CF-1: how the ticket began — a voicemail ticket a later call joins
// stays voicemail).
func (e *Engine) appendCall(ctx context.Context, tx *applyTx, c *callRow, ticketID int64, reopen bool) error {
	c.TicketID = &ticketID
	if bt := tx.pendingTicket(ticketID); bt != nil {
		// A ticket of this batch, not inserted yet: new or open, so reopening changes nothing.
		if c.AgentID != nil {
			tx.assignPending(bt, *c.AgentID)
		}
		if err := tx.setTicket(ctx, ticketID, "caller_number", c.From, "call_id", c.ID); err != nil {
			return err
		}
		return e.addCallNote(ctx, tx, c, ticketID)
	}
	if reopen {
		if _, err := tx.Exec(ctx, `UPDATE tickets SET status = 'open' WHERE id = $1 AND status IN ('solved', 'pending', 'hold')`, ticketID); err != nil {
			return dbError("reopen ticket", err)
		}
	}
	if c.AgentID != nil {
		if _, err := tx.Exec(ctx, `UPDATE tickets SET assignee_id = $2 WHERE id = $1 AND assignee_id IS NULL`, ticketID, *c.AgentID); err != nil {
			return dbError("assign ticket", err)
		}
	}
	if err := tx.setTicket(ctx, ticketID, "caller_number", c.From, "call_id", c.ID); err != nil {
		return err
	}
	return e.addCallNote(ctx, tx, c, ticketID)
}

// addCallNote writes the SD-1 private comment (and CD-8's entered number note).
func (e *Engine) addCallNote(ctx context.Context, tx *applyTx, c *callRow, ticketID int64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Call %s", c.ID)
	if c.Direction == "outbound" {
		fmt.Fprintf(&b, " (outbound to %s)", deref(c.To))
	} else {
		fmt.Fprintf(&b, " (inbound from %s)", orDash(deref(c.From)))
	}
	fmt.Fprintf(&b, "\nLanguage: %s\nIVR menu path: %s", orDash(deref(c.Language)), orDash(deref(c.MenuPath)))
	if c.Queue != nil {
		fmt.Fprintf(&b, "\nQueue: %s", *c.Queue)
	}
	if c.EnteredNumber {
		fmt.Fprintf(&b, "\nNumber entered by the agent: %s", deref(c.To))
	}
	// The call's custom data, all of it, as the standard data shows it (CF-4): what is mapped
	// to fields and what is not.
	if len(c.Data) > 0 {
		b.WriteString("\nCustom data:")
		for _, k := range slices.Sorted(maps.Keys(c.Data)) {
			fmt.Fprintf(&b, "\n  %s: %s", k, noteValue(c.Data[k]))
		}
	}
	if err := tx.addComment(ctx, pendingComment{TicketID: ticketID, Type: TypeComment, Body: b.String(), CallID: c.ID}); err != nil {
		return err
	}
	// CF-4: the call's custom data into the ticket's fields.
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil {
		return err
	}
	return e.applyCustomData(ctx, tx, c, st, ticketID)
}

// addVoiceComment writes the call's voice comment (CD-1 … CD-6) once, when the call ends.
func (e *Engine) addVoiceComment(ctx context.Context, tx *applyTx, c *callRow, ticketID int64) error {
	if exists, err := tx.hasVoiceComment(ctx, c.ID); err != nil || exists {
		return err
	}
	from, to := deref(c.From), deref(c.To)
	var b strings.Builder
	switch {
	case c.VoicemailID != nil:
		fmt.Fprintf(&b, "Voicemail from %s", orDash(from))
	case c.Direction == "outbound":
		fmt.Fprintf(&b, "Outbound call to %s", to)
	default:
		fmt.Fprintf(&b, "Inbound call from %s", orDash(from))
	}
	if c.CallerName != nil {
		fmt.Fprintf(&b, " (%s)", *c.CallerName)
	}
	fmt.Fprintf(&b, "\nCall duration: %d s", c.D.Duration)
	if c.AgentID != nil {
		if name, ok := tx.userName(ctx, *c.AgentID); ok {
			fmt.Fprintf(&b, "\nAnswered by: %s", name)
		}
	}
	if c.Location != nil {
		fmt.Fprintf(&b, "\nLocation: %s", *c.Location)
	}
	if c.Outcome != nil && *c.Outcome != callevent.OutcomeAnswered {
		fmt.Fprintf(&b, "\nOutcome: %s", *c.Outcome)
	}
	recording := c.RecordingID
	if recording == nil {
		recording = c.VoicemailID
	}
	var url *string
	if recording != nil {
		u := "/api/v2/recordings/" + *recording
		url = &u
	}
	var answeredBy *int64
	if c.AnsweredAt != nil {
		answeredBy = c.AgentID
	}
	duration := c.D.Duration
	return tx.addComment(ctx, pendingComment{TicketID: ticketID, Type: TypeVoiceComment, Body: b.String(), AuthorID: answeredBy,
		CallID: c.ID, From: c.From, To: c.To, StartedAt: c.StartedAt, Duration: &duration, AnsweredByID: answeredBy,
		Location: c.Location, RecordingID: recording, Recording: url})
}

// attachRecording puts a recording that became ready on the call's voice comment (TU-5,
// SD-2); when the comment does not exist yet, onEnded writes it with the recording.
func (e *Engine) attachRecording(ctx context.Context, tx *applyTx, c *callRow) error {
	if c.TicketID == nil || c.RecordingID == nil {
		return nil
	}
	return tx.attachRecording(ctx, c.ID, *c.RecordingID, "/api/v2/recordings/"+*c.RecordingID)
}

// withLiveTicket runs fn on the live ticket of the call, following merges (TU-6), and records
// the live ticket on the call. A closed ticket takes no more writes from the call.
func (e *Engine) withLiveTicket(ctx context.Context, tx *applyTx, c *callRow, fn func(id int64) error) error {
	// The common case, a ticket never merged, is one query; a merged one follows the chain.
	live := *c.TicketID
	var status string
	var merged *int64
	if bt := tx.tickets[live]; bt != nil {
		status = bt.Status // the batch made it: never merged, never closed
	} else if ts, ok := tx.ticketState[live]; ok {
		status, merged = ts.status, ts.merged // locked by the batch's prefetch
	} else if err := tx.QueryRow(ctx, `SELECT status, merged_into_id FROM tickets WHERE id = $1 FOR UPDATE`, live).Scan(&status, &merged); err != nil {
		return dbError("live ticket", err)
	}
	if merged != nil {
		var err error
		if live, err = liveTicketID(ctx, tx, live); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT status FROM tickets WHERE id = $1 FOR UPDATE`, live).Scan(&status); err != nil {
			return dbError("live ticket", err)
		}
	}
	c.TicketID = &live
	if status == StatusClosed {
		e.log.Info("ticketing engine: the call's ticket is closed; skipping the write", "call_id", c.ID, "ticket_id", live)
		return nil
	}
	if err := fn(live); err != nil {
		return dbError("ticket write", err)
	}
	return nil
}

// defaultAssignee returns the user id of the line's default_assignee, or nil (VM-2: never a
// random agent).
func (e *Engine) defaultAssignee(ctx context.Context, tx *applyTx, st Settings) (*int64, error) {
	if st.DefaultAssignee == "" {
		return nil, nil
	}
	if a, ok := tx.assignees[st.DefaultAssignee]; ok {
		return a, nil
	}
	a, err := e.lookupDefaultAssignee(ctx, tx, st)
	if err == nil {
		tx.assignees[st.DefaultAssignee] = a
	}
	return a, err
}

func (e *Engine) lookupDefaultAssignee(ctx context.Context, tx *applyTx, st Settings) (*int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1) AND role IN ('agent', 'supervisor', 'admin')
		AND deleted_at IS NULL`, st.DefaultAssignee).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		e.log.Warn("ticketing engine: default_assignee is not an agent", "email", st.DefaultAssignee)
		return nil, nil
	}
	if err != nil {
		return nil, dbError("default assignee", err)
	}
	return &id, nil
}

func addTag(ctx context.Context, tx *applyTx, ticketID int64, tag string) error {
	_, err := tx.Exec(ctx, `UPDATE tickets SET tags = array_append(tags, $2) WHERE id = $1 AND NOT ($2 = ANY (tags))`, ticketID, tag)
	if err != nil {
		return dbError("tag ticket", err)
	}
	return nil
}

// pick returns measured unless it is zero.
func pick(measured, derived int64) int64 {
	if measured != 0 {
		return measured
	}
	return derived
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Now()
	}
	return *t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
