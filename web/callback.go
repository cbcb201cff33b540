package web

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// CallbackPlanner plans an agent's callback of a call: the number, the contact, and the ticket
// the callback joins (docs/rules.md TU-3, TU-4); *ticketing.Engine satisfies it.
type CallbackPlanner interface {
	PlanCallback(ctx context.Context, callID string, entry ticketing.TicketEntry, now time.Time) (ticketing.OutboundPlan, error)
}

// CallbackHandler serves POST /api/v2/calls/{id}/callback: the agent (agentID, as for Handler)
// calls back the other party of call {id} — the caller of an inbound call, the callee of an
// outbound one. While that call is live this is "hang up and call back" (the page hangs up
// first); the callback joins the call's ticket under TU-3/TU-4 (planner), else it is an ordinary
// outbound call under the OB (or the agent's team's TB) rules. The body is empty or {}; the
// answer is POST /calls's, with "callback_of": {id}. now is the clock (nil: time.Now).
func (o *Outbound) CallbackHandler(planner CallbackPlanner, now func() time.Time, agentID func(*http.Request) (int64, bool)) http.Handler {
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := agentID(r)
		if !ok {
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
			return
		}
		callID := r.PathValue("id")
		if callID == "" || len(callID) > 200 || strings.IndexFunc(callID, unicode.IsControl) >= 0 {
			writeAPIError(w, invalid("id", "must be a call id (at most 200 characters, no control characters)"))
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<10))
		if err != nil {
			writeAPIError(w, invalid("body", "is larger than 1 KiB or cannot be read"))
			return
		}
		if b := strings.TrimSpace(string(raw)); b != "" && b != "{}" {
			writeAPIError(w, invalid("body", "must be empty or {}: a callback takes everything from the call"))
			return
		}
		te, err := o.entry(r.Context(), id)
		if err != nil {
			o.writeError(w, err)
			return
		}
		p, err := planner.PlanCallback(r.Context(), callID, te, now())
		if err != nil {
			o.writeError(w, err)
			return
		}
		// The callback goes out on the line of the call called back when that line can place
		// outbound calls (OB-7: the person sees the number they know), else on the agent's
		// default line, as a POST /calls without from_line.
		line, ok := o.lines().line(p.CallbackLine)
		if !ok {
			line, _ = o.defaultLine(id)
		}
		d := Dial{AgentID: id, To: p.To, ContactID: p.ContactID, TicketID: p.TicketID,
			TicketChoice: p.TicketChoice, EnteredNumber: p.EnteredNumber, Line: line}
		o.place(w, r, id, d, map[string]any{"callback_of": callID})
	})
}
