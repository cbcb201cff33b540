package ticketing

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Queue callbacks (docs/rules.md TU-4): a caller waiting in a queue presses the queue's
// callback key (call.callback_requested), their call ends with outcome callback, and when their
// turn comes the gateway calls them back — an outbound call whose call.started names the
// waiting call in callback_of. The callback always joins the waiting call's ticket (whatever
// callback_append_window and callback_max_delay say: the caller asked for it), unless that
// ticket was closed since, when it is an ordinary outbound call (OB-1).

// onCallbackRequested gives the waiting call its ticket at once (the callback joins it) and
// tags it callback_requested.
func (e *Engine) onCallbackRequested(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event, at time.Time) error {
	if c.Queue == nil && ev.Queue != "" {
		q := ev.Queue
		c.Queue = &q
	}
	c.State = "callback"
	c.enterPhase(phaseQueue, at)
	if c.Direction != "inbound" || c.NoTicket {
		return nil
	}
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil {
		return err
	}
	if c.TicketID == nil {
		if err := e.ensureInboundTicket(ctx, tx, c, st, ticketReasonCall); err != nil {
			return err
		}
	}
	if c.TicketID == nil {
		return nil // an anonymous caller without a ticket policy (PM-3): the call record stays
	}
	return e.withLiveTicket(ctx, tx, c, func(id int64) error { return addTag(ctx, tx, id, "callback_requested") })
}

// callbackTicket points a callback attempt (call.started with callback_of) at the ticket and
// requester of the call it calls back (TU-4). Nothing changes when that call is unknown or had
// no ticket: the attempt is then an ordinary outbound call.
func (e *Engine) callbackTicket(ctx context.Context, tx *applyTx, c *callRow, ev callevent.Event) error {
	if ev.CallbackOf == "" || ev.Direction != "outbound" || ev.TicketID > 0 {
		return nil
	}
	var ticket, requester *int64
	err := tx.QueryRow(ctx, `SELECT ticket_id, requester_id FROM calls WHERE id = $1`, ev.CallbackOf).Scan(&ticket, &requester)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return dbError("callback: the call called back", err)
	}
	if ticket != nil {
		choice := "existing"
		c.ChosenTicketID, c.TicketChoice = ticket, &choice
	}
	if requester != nil && c.RequesterID == nil {
		c.RequesterID = requester
	}
	return nil
}

// onCallbackDropped tags the caller's ticket callback_dropped: every attempt went unanswered.
func (e *Engine) onCallbackDropped(ctx context.Context, tx *applyTx, ev callevent.Event) error {
	var ticket *int64
	err := tx.QueryRow(ctx, `SELECT ticket_id FROM calls WHERE id = $1`, ev.CallbackOf).Scan(&ticket)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && ticket == nil) {
		return nil
	}
	if err != nil {
		return dbError("callback dropped: the call called back", err)
	}
	live, err := liveTicketID(ctx, tx, *ticket)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return addTag(ctx, tx, live, "callback_dropped")
}
