package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// ConferenceDialer calls an external party through the trunk and adds it to the call once it
// answers (the integrator's, with sip.Server.DialConference and ivr.ACD.Conference). It
// returns the party leg's call id; ended is called once that leg is over.
type ConferenceDialer interface {
	DialConference(ctx context.Context, agentID int64, callID, to string, ended func()) (string, error)
}

// ConferenceACD tells who is on which call; *ivr.ACD satisfies it.
type ConferenceACD interface {
	Agents() []ivr.AgentStatus
}

// e164 is the shape of a number a conference may dial: "+" and 7 to 15 digits (ITU-T E.164).
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// ConferenceHandler serves POST /api/v2/calls/{id}/conference {"conference":{"to":"+E164"}}:
// the agent on call {id} adds an external party, dialled through the trunk. The number goes
// through the same dial plan as the agent's outbound calls (the Guard: destinations allowed
// and denied, the agent's calls at once and per minute; 403 or 429 as POST /calls answers);
// 202 {"conference":{"call_id","to","party_call_id"}} once the dial started: the party joins
// when it answers, and leaves by hanging up. 404 when the caller is not the agent on that
// call; 422 naming to.
func (o *Outbound) ConferenceHandler(acd ConferenceACD, dial ConferenceDialer, agentID func(*http.Request) (int64, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := agentID(r)
		if !ok {
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
			return
		}
		callID := r.PathValue("id")
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
		if err != nil {
			writeAPIError(w, invalid("conference", "the body is too large"))
			return
		}
		var body struct {
			To *string `json:"to"`
		}
		if err := decodeWrapped(raw, "conference", &body); err != nil {
			writeAPIError(w, err)
			return
		}
		if body.To == nil || !e164.MatchString(*body.To) {
			writeAPIError(w, invalid("to", "must be an E.164 number such as +15551234567"))
			return
		}
		to := *body.To
		onCall := false
		for _, a := range acd.Agents() {
			if a.ID == id && a.CallID == callID && a.State == ivr.StateBusy {
				onCall = true
			}
		}
		if !onCall {
			writeAPIError(w, &ticketing.Error{Kind: ticketing.ErrNotFound, Description: fmt.Sprintf("you are not on call %q on this gateway node", callID)})
			return
		}
		ended := func() {}
		if g := o.Guard; g != nil {
			if reason := g.Destination(to); reason != "" {
				g.refuse(reason)
				o.logRefusal(id, to, reason)
				apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Reason: reason,
					Description: fmt.Sprintf("%s cannot be dialled through this gateway's trunk (%s)", to, reason),
					Details:     map[string][]string{"to": {"is a destination the trunk refuses (" + reason + ")"}}})
				return
			}
			release, reason, retry := g.acquire(id)
			if reason != "" {
				g.refuse(reason)
				o.logRefusal(id, to, reason)
				e := apierror.Error{Status: http.StatusTooManyRequests, Reason: reason, RetryAfter: retry,
					Description: "you have reached your outbound call limit (" + reason + "): try again later"}
				apierror.Write(w, e)
				return
			}
			g.calls.Inc()
			ended = release
		}
		party, err := dial.DialConference(r.Context(), id, callID, to, ended)
		if err != nil {
			ended()
			o.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"conference": map[string]any{"call_id": callID, "to": to, "party_call_id": party}})
	})
}
