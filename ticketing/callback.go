package ticketing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PlanCallback plans an agent's callback of call callID (POST /api/v2/calls/{id}/callback,
// docs/rules.md TU-3, TU-4): it calls the other party of that call — the caller of an inbound
// call, the callee of an outbound one — and the callback joins the call's ticket (its live
// ticket, following merges) when
//   - the call has not ended yet: the agent's "hang up and call back" (TU-3), or
//   - it ended less than callback_max_delay ago (0: no bound) and lasted less than
//     callback_append_window (TU-4),
//
// and append_to_open_ticket is on for the call's line and the ticket is not closed. Otherwise
// the callback is an ordinary outbound call to that person: PlanOutboundCall decides its ticket
// (OB-1 …, or TB-1 … under the agent's team ticket entry). now is the time of the request.
//
// Refusals are *Error: ErrNotFound for an unknown call; ErrInvalid on "id" for a call with
// nobody to call back (an anonymous caller, a call without a requester); and whatever
// PlanOutboundCall refuses on the ordinary path.
func (e *Engine) PlanCallback(ctx context.Context, callID string, entry TicketEntry, now time.Time) (OutboundPlan, error) {
	s := e.store
	var (
		direction             string
		from, to, line        *string
		requester, ticket     *int64
		duration              int64
		endedAt               *time.Time
		placeholder, isEndUsr bool
		entered               bool
	)
	err := s.pool.QueryRow(ctx, `SELECT c.direction, c.from_number, c.to_number, c.line, c.requester_id, c.ticket_id,
			c.duration, c.ended_at, coalesce(u.placeholder, false), coalesce(u.role = 'end-user', false), c.entered_number
		FROM calls c LEFT JOIN users u ON u.id = c.requester_id WHERE c.id = $1`, callID).
		Scan(&direction, &from, &to, &line, &requester, &ticket, &duration, &endedAt, &placeholder, &isEndUsr, &entered)
	if errors.Is(err, pgx.ErrNoRows) {
		return OutboundPlan{}, notFound("call %s not found", callID)
	}
	if err != nil {
		return OutboundPlan{}, dbError("callback: call", err)
	}
	number := deref(from)
	if direction == "outbound" {
		number = deref(to)
	}
	if requester == nil || placeholder || number == "" {
		return OutboundPlan{}, invalidField("id", "call %s has no number to call back (an anonymous caller, or a call not yet resolved to a person)", callID)
	}
	contact, err := liveRequester(ctx, s.pool, *requester)
	if err != nil {
		return OutboundPlan{}, err
	}
	global, err := s.Settings(ctx)
	if err != nil {
		return OutboundPlan{}, fmt.Errorf("ticketing: plan callback: settings: %w", err)
	}
	st := e.lineSettings()[deref(line)].Apply(global)
	// A number the agent typed in for the earlier call (OB-5) is still one: called back only
	// while allow_entered_number is on, and noted on the ticket again (CD-8); otherwise the
	// ordinary rules below refuse it (403).
	enteredOK := !entered || global.Outbound.AllowEnteredNumber
	if ticket != nil && isEndUsr && enteredOK && st.AppendToOpenTicket && callbackJoins(st, duration, endedAt, now) {
		live, err := liveTicketID(ctx, s.pool, *ticket)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return OutboundPlan{}, err
		}
		var status string
		if err == nil {
			if err := s.pool.QueryRow(ctx, `SELECT status FROM tickets WHERE id = $1`, live).Scan(&status); err != nil {
				return OutboundPlan{}, dbError("callback: ticket", err)
			}
		}
		if err == nil && status != StatusClosed {
			// The number is the call's own: the caller's (held by the requester, PM rules) or
			// the one the agent dialled.
			return OutboundPlan{To: number, ContactID: contact, TicketID: &live, TicketChoice: TicketChoiceExisting,
				EnteredNumber: entered, CallbackLine: deref(line)}, nil
		}
	}
	p, err := s.PlanOutboundCall(ctx, OutboundCall{To: number, ContactID: contact, EnteredNumber: entered}, entry)
	if err != nil {
		return OutboundPlan{}, err
	}
	p.CallbackLine = deref(line)
	return p, nil
}

// callbackJoins reports whether a callback at now of a call that lasted duration seconds and
// ended at endedAt (nil: still live) joins its ticket (TU-3, TU-4).
func callbackJoins(st Settings, duration int64, endedAt *time.Time, now time.Time) bool {
	if endedAt == nil {
		return true // TU-3: hang up and call back
	}
	if st.CallbackAppendWindow <= 0 || time.Duration(duration)*time.Second >= st.CallbackAppendWindow.Duration() {
		return false
	}
	return st.CallbackMaxDelay == 0 || now.Sub(*endedAt) <= st.CallbackMaxDelay.Duration()
}
