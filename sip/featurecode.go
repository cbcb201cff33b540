package sip

import (
	"errors"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Agents on SIP phones change their queue state from the phone by dialling a feature code:
// *60 available, *61 away, *62 offline. The INVITE is authenticated by digest with the
// agent's SIP credentials, exactly like the phone's REGISTER (challenge, backoff after
// failures, nonce bound to the source), the state is set in the ACD, and the INVITE gets a
// final response whose reason phrase the phone shows: "603 Agent available" (or away,
// offline). No session is set up and no call or ticket is made of it. 6xx because it is a
// global answer (RFC 3261 §21.6): a proxy in front (Kamailio) must not try another node.
//
// Feature codes rather than registration: a phone registers whenever it boots or refreshes,
// at any hour, which says nothing about the agent being at the desk, and registration has no
// "away". The phone's registration does not change the agent's state.

// Feature codes: the Request-URI user an agent's phone dials to set its state.
const (
	FeatureAvailable = "*60"
	FeatureAway      = "*61"
	FeatureOffline   = "*62"
)

// AgentStates sets an agent's chosen state; ivr.ACD satisfies it. SetState is called with no
// lock of sip held.
type AgentStates interface {
	SetState(agentID int64, st ivr.AgentState) (ivr.AgentStatus, error)
}

// featureCode returns the state an INVITE's feature code sets, when it is one and the gateway
// takes feature codes (Options.AgentStates and Options.Agents set).
func (s *Server) featureCode(req *sip.Request) (ivr.AgentState, bool) {
	if s.opts.AgentStates == nil || s.opts.Agents == nil || req.Method != sip.INVITE {
		return "", false
	}
	switch req.Recipient.User {
	case FeatureAvailable:
		return ivr.StateAvailable, true
	case FeatureAway:
		return ivr.StateAway, true
	case FeatureOffline:
		return ivr.StateOffline, true
	}
	return "", false
}

// handleFeatureCode authenticates the agent's INVITE and sets the state.
func (s *Server) handleFeatureCode(req *sip.Request, tx sip.ServerTransaction, st ivr.AgentState) {
	acct, src, ok := s.reg.authenticate(req, tx, nil)
	if !ok {
		return
	}
	status, err := s.opts.AgentStates.SetState(acct.ID, st)
	switch {
	case errors.Is(err, ivr.ErrUnknownAgent):
		s.reply(req, tx, 404, "Not Found (the agent is in no queue)")
		return
	case err != nil:
		s.log.Warn("sip: agent state from the phone", "agent_id", acct.ID, "state", string(st), "error", err)
		s.reply(req, tx, 500, "Server Internal Error")
		return
	}
	s.log.Info("sip: agent state set from the phone", "agent_id", acct.ID, "state", string(st),
		"now", string(status.State), "source", src.String())
	reason := "Agent " + string(st)
	if status.State != st {
		// On a call: the state applies when the call ends (ACD.SetState).
		reason += " after the call"
	}
	s.reply(req, tx, 603, reason)
}
