package ticketing

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ScreenPop is what an agent offered a call sees before answering (PM-11, PM-13): the call,
// every user matching the number (direct owner first, then shared holders), the requester the
// rules picked, the ticket the call went to or will go to, and the requester's other unsolved
// tickets.
type ScreenPop struct {
	Call       Call     `json:"call"`
	Candidates []Holder `json:"candidates"`
	// Ambiguous is set when several users match and none owns the number (PM-12): the agent
	// may pick; otherwise the most recently created holder stands (TC-9).
	Ambiguous bool  `json:"ambiguous"`
	Requester *User `json:"requester"`
	// Ticket is the call's ticket; before it exists, the unsolved ticket it will be appended to
	// (TU-1), or null when a new ticket will be made.
	Ticket          *Ticket  `json:"ticket"`
	TicketIsNew     bool     `json:"ticket_is_new"`
	UnsolvedTickets []Ticket `json:"unsolved_tickets"`
	// WaitTime is the seconds the caller has waited in the queue so far (or waited, once answered).
	WaitTime int64 `json:"wait_time"`
}

// ScreenPop returns the screen-pop data of a call.
func (s *Store) ScreenPop(ctx context.Context, callID string, now time.Time) (ScreenPop, error) {
	c, err := loadCallPlain(ctx, s.pool, callID)
	if err != nil {
		return ScreenPop{}, err
	}
	sp := ScreenPop{Call: c.public(), Candidates: []Holder{}, UnsolvedTickets: []Ticket{}}
	number := deref(c.From)
	if c.Direction == "outbound" {
		number = deref(c.To)
	}
	if norm, ok := s.callerNumber(number); ok {
		if hs, err := holders(ctx, s.pool, norm); err == nil {
			sp.Candidates = hs
			sp.Ambiguous = len(hs) > 1 && hs[0].LineType != LineDirect
		}
	}
	if c.RequesterID != nil {
		if u, err := s.LiveUser(ctx, *c.RequesterID); err == nil {
			sp.Requester = &u
			if ts, err := s.UnsolvedTickets(ctx, u.ID); err == nil {
				sp.UnsolvedTickets = ts
			}
		}
	}
	switch {
	case c.TicketID != nil:
		if live, err := s.LiveTicketID(ctx, *c.TicketID); err == nil {
			if t, err := s.Ticket(ctx, live); err == nil {
				sp.Ticket = &t
			}
		}
	case sp.Requester != nil && c.Direction == "inbound":
		// The TU-1 target, as the engine will pick it (same leaf queue, same channel).
		var id int64
		err := s.pool.QueryRow(ctx, `SELECT id FROM tickets WHERE requester_id = $1 AND merged_into_id IS NULL
			AND status IN ('new', 'open', 'pending', 'hold') AND via_channel IN ('voice', 'voicemail')
			AND queue_name IS NOT DISTINCT FROM $2 ORDER BY updated_at DESC, id DESC LIMIT 1`, sp.Requester.ID, c.Queue).Scan(&id)
		if err == nil {
			if t, err := s.Ticket(ctx, id); err == nil {
				sp.Ticket = &t
			}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return ScreenPop{}, dbError("screen pop ticket", err)
		}
	}
	sp.TicketIsNew = sp.Ticket == nil
	if c.QueuedAt != nil {
		end := now
		if c.AnsweredAt != nil {
			end = *c.AnsweredAt
		}
		sp.WaitTime = int64(end.Sub(*c.QueuedAt) / time.Second)
	}
	return sp, nil
}

// SetCallRequester is the agent switching the requester of a live call, normally among the
// matching users of the screen pop (PM-11, PM-12): the call's ticket, if it exists already,
// changes requester too (audited). The user need not hold the call's number — the agent may
// know the caller is someone else (a friend's phone) — and the number is not added to them;
// it must be an end user and not another call's placeholder (PM-3: placeholders are never
// reused).
func (s *Store) SetCallRequester(ctx context.Context, actor Actor, callID string, userID int64) (Call, error) {
	var out Call
	err := s.inTx(ctx, actor, "call_requester", func(tx pgx.Tx) error {
		c, err := loadCall(ctx, tx, callID)
		if err != nil {
			return err
		}
		u, err := liveUser(ctx, tx, userID, false)
		if err != nil {
			return err
		}
		if u.IsStaff() {
			return invalidField("requester_id", "must be an end user, not an agent or admin")
		}
		if u.Placeholder && (c.RequesterID == nil || *c.RequesterID != u.ID) {
			return invalidField("requester_id", "user %d is the placeholder of another anonymous call", u.ID)
		}
		c.RequesterID = &u.ID
		if err := c.save(ctx, tx); err != nil {
			return err
		}
		if c.TicketID != nil {
			live, err := liveTicketID(ctx, tx, *c.TicketID)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE tickets SET requester_id = $2 WHERE id = $1 AND status <> 'closed'`, live, u.ID); err != nil {
				return dbError("ticket requester", err)
			}
		}
		out = c.public()
		return nil
	})
	return out, err
}
