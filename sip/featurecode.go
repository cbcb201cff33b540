package sip

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Agents on SIP phones change their queue state from the phone by dialling a feature code:
// by default *60 available, *61 away, *62 offline (Options.FeatureCodes; the configuration's
// sip.feature_codes). The INVITE is authenticated by digest with the
// agent's SIP credentials, exactly like the phone's REGISTER (challenge, backoff after
// failures, nonce bound to the source), the state is set in the ACD, and the INVITE gets a
// final response whose reason phrase the phone shows: "603 Agent available" (or away,
// offline). No session is set up and no call or ticket is made of it. 6xx because it is a
// global answer (RFC 3261 §21.6): a proxy in front (Kamailio) must not try another node.
//
// Feature codes rather than registration: a phone registers whenever it boots or refreshes,
// at any hour, which says nothing about the agent being at the desk, and registration has no
// "away". The phone's registration does not change the agent's state.

// Default feature codes: the Request-URI user an agent's phone dials to set its state.
const (
	FeatureAvailable = "*60"
	FeatureAway      = "*61"
	FeatureOffline   = "*62"
	// FeaturePickup picks up the longest-waiting call ringing an agent of the dialling agent's
	// queues (pickup.go; Asterisk's default pickup code).
	FeaturePickup = "*8"
)

// FeatureCodes are the codes agents' SIP phones dial to set their queue state, and to pick up
// a ringing call (pickup.go). An empty field takes its default (FeatureAvailable, FeatureAway,
// FeatureOffline, FeaturePickup); the codes must be distinct and each a ValidFeatureCode.
type FeatureCodes struct {
	Available string
	Away      string
	Offline   string
	// Pickup is the call pickup code (Options.Pickup; pickup.go).
	Pickup string
}

// DefaultFeatureCodes returns *60, *61, *62 and *8.
func DefaultFeatureCodes() FeatureCodes {
	return FeatureCodes{Available: FeatureAvailable, Away: FeatureAway, Offline: FeatureOffline, Pickup: FeaturePickup}
}

// withDefaults fills the empty codes.
func (f FeatureCodes) withDefaults() FeatureCodes {
	d := DefaultFeatureCodes()
	if f.Available == "" {
		f.Available = d.Available
	}
	if f.Away == "" {
		f.Away = d.Away
	}
	if f.Offline == "" {
		f.Offline = d.Offline
	}
	if f.Pickup == "" {
		f.Pickup = d.Pickup
	}
	return f
}

// Bounds of a feature code.
const (
	MinFeatureCode = 2
	MaxFeatureCode = 8
)

// ValidFeatureCode reports whether code can be a feature code: MinFeatureCode to
// MaxFeatureCode of the keys of a phone's keypad, 0-9, '*' and '#' (what any desk phone can
// dial; a phone sends '#' escaped as %23 in the Request-URI, RFC 3261 §19.1.2).
func ValidFeatureCode(code string) bool {
	if len(code) < MinFeatureCode || len(code) > MaxFeatureCode {
		return false
	}
	for _, r := range code {
		if !('0' <= r && r <= '9' || r == '*' || r == '#') {
			return false
		}
	}
	return true
}

// validate refuses codes that would shadow each other.
func (f FeatureCodes) validate() error {
	codes := []string{f.Available, f.Away, f.Offline, f.Pickup}
	for i, c := range codes {
		if !ValidFeatureCode(c) {
			return fmt.Errorf("sip: feature code %q: want %d to %d of 0-9, * and #", c, MinFeatureCode, MaxFeatureCode)
		}
		for _, d := range codes[:i] {
			if c == d {
				return fmt.Errorf("sip: feature code %q is given twice", c)
			}
		}
	}
	return nil
}

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
	user := req.Recipient.User
	if u, err := url.PathUnescape(user); err == nil {
		user = u // "%2371" is what a phone sends for #71 (RFC 3261 §19.1.2)
	}
	switch codes := s.opts.FeatureCodes; user {
	case codes.Available:
		return ivr.StateAvailable, true
	case codes.Away:
		return ivr.StateAway, true
	case codes.Offline:
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
