package web

import (
	"context"
	"errors"
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

// ConferenceACD tells who is on which call and adds another agent to a call; *ivr.ACD
// satisfies it.
type ConferenceACD interface {
	Agents() []ivr.AgentStatus
	// ConferenceAgent reserves agent id for the call and rings them; joined is told whether
	// they joined (ivr.ACD.ConferenceAgent).
	ConferenceAgent(callID string, id int64, joined func(error)) error
}

// e164 is the shape of a number a conference may dial: "+" and 7 to 15 digits (ITU-T E.164).
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// ConferenceHandler serves POST /api/v2/calls/{id}/conference: an agent on call {id} adds a
// party, either an external number {"conference":{"to":"+E164"}} or another agent
// {"conference":{"agent_id":N}} (exactly one of the two: 422 naming them otherwise).
//
// A number is dialled through the trunk under the same dial plan as the agent's outbound calls
// (the Guard: destinations allowed and denied, the agent's calls at once and per minute; 403 or
// 429 as POST /calls answers); 202 {"conference":{"call_id","to","party_call_id"}} once the
// dial started: the party joins when it answers, and leaves by hanging up.
//
// An agent is reserved at once and rung as the queue rings them (their page, else their SIP
// phone): 202 {"conference":{"call_id","agent_id"}}; 422 naming agent_id for an unknown agent,
// 409 for one not available (or the agent on the call). They join when they answer.
//
// 404 when the caller is not an agent on that call. In a cluster acd and dial may relay a
// call another node owns to that node (sip.ClusterACD, sip.Server.DialConference): the checks
// above are made here, where the agent asked, and the refusals come back as on one node.
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
			To      *string `json:"to"`
			AgentID *int64  `json:"agent_id"`
		}
		if err := decodeWrapped(raw, "conference", &body); err != nil {
			writeAPIError(w, err)
			return
		}
		both := "name exactly one party: to (an E.164 number) or agent_id (an agent's id)"
		switch {
		case body.To != nil && body.AgentID != nil:
			writeAPIError(w, &ticketing.Error{Kind: ticketing.ErrInvalid, Description: "to, agent_id: " + both,
				Details: map[string][]string{"to": {both}, "agent_id": {both}}})
			return
		case body.To == nil && body.AgentID == nil:
			writeAPIError(w, &ticketing.Error{Kind: ticketing.ErrInvalid, Description: "to, agent_id: " + both,
				Details: map[string][]string{"to": {both}, "agent_id": {both}}})
			return
		case body.AgentID != nil && *body.AgentID <= 0:
			writeAPIError(w, invalid("agent_id", "must be an agent's id (a positive integer)"))
			return
		case body.To != nil && !e164.MatchString(*body.To):
			writeAPIError(w, invalid("to", "must be an E.164 number such as +15551234567"))
			return
		}
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
		if body.AgentID != nil {
			o.conferenceAgent(w, acd, id, callID, *body.AgentID)
			return
		}
		to := *body.To
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

// conferenceAgent reserves and rings agent target for the call (ConferenceHandler).
func (o *Outbound) conferenceAgent(w http.ResponseWriter, acd ConferenceACD, by int64, callID string, target int64) {
	log := o.Log
	joined := func(err error) {
		if err != nil && log != nil {
			log.Info("web: conference: the agent did not join", "call_id", callID, "agent_id", target, "by", by, "err", err)
		}
	}
	err := acd.ConferenceAgent(callID, target, joined)
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, map[string]any{"conference": map[string]any{"call_id": callID, "agent_id": target}})
	case errors.Is(err, ivr.ErrUnknownAgent):
		writeAPIError(w, invalid("agent_id", "no agent has id %d", target))
	case errors.Is(err, ivr.ErrAgentUnavailable):
		writeAPIError(w, &ticketing.Error{Kind: ticketing.ErrConflict, Description: fmt.Sprintf("agent %d cannot be added now: not available, or already on the call", target),
			Details: map[string][]string{"agent_id": {"is not available"}}})
	case errors.Is(err, ivr.ErrNoCall):
		writeAPIError(w, &ticketing.Error{Kind: ticketing.ErrNotFound, Description: fmt.Sprintf("no call %q is connected to an agent on this gateway node", callID)})
	default:
		id := logInternal(log, "web: conference an agent", err, "call_id", callID, "agent_id", target)
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "the agent could not be added (error id " + id + ")"})
	}
}
