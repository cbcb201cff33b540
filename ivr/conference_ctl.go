package ivr

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Hold and transfer in a conference (issue 21), on the call's goroutine (talk), while the
// caller and the agent are both in it.
//
// Hold: the agent leaves the mix — nobody hears them, they hear nobody — and the caller and
// the added parties talk on with each other (as Zendesk Talk keeps the other participants
// connected). No music: the caller is not alone. call.held and call.resumed are emitted as for
// a two-way hold, and the time held counts once, as the call's hold time (CD-3). Resume puts
// the agent back in the mix. When the conference ends while the agent holds it (its last party
// left), the caller is alone: the hold goes on as a two-way one, with the queue's music, and
// resume bridges the caller and the agent again. When the caller leaves while the agent holds,
// the agent is put back with the parties (the hold was the caller's: call.resumed).
//
// Transfer: a blind transfer hands the agent's place over to another agent (to.AgentID) or to
// the longest-idle available agent of a queue (to.Queue): the agent leaves at once (wrap-up),
// the caller and the parties talk on, and the target is rung as a blind transfer rings
// (offerReserved, the queue's ring timeout). Answering, the target takes the agent's place in
// the mix and the call (call.transferred, TU-7: the ticket is theirs; then their call.answered).
// Not answered, the conference goes on without an agent, as when the agent hangs up. When the
// conference ended during the ring (its last party left), the caller hears the transfer's music
// until the target answers (then a two-way call) or not (back to the queue, as a blind
// transfer not answered). An outside number and a consult transfer are refused
// (ErrConferenceNumber, ErrConferenceConsult): add the number or the agent to the call instead.

// More refusals of a conference. Each wraps ErrConferenced.
var (
	// ErrConferenceConsult is returned by Consult in a conference.
	ErrConferenceConsult = fmt.Errorf("%w: a consult transfer cannot start from a conference (transfer your place blind to an agent or a queue, or add them to the call)", ErrConferenced)
	// ErrConferenceNumber is returned by a transfer to an outside number in a conference.
	ErrConferenceNumber = fmt.Errorf("%w: your place in it cannot be transferred to an outside number (add the number to the call, then hang up)", ErrConferenced)
	// ErrConferenceCallerLeft is returned by hold and transfers once the caller left the
	// conference (the agent and the parties talk on).
	ErrConferenceCallerLeft = fmt.Errorf("%w: the caller left it, so there is no caller to hold or transfer (hang up to leave the parties)", ErrConferenced)
	// ErrConferenceAgentLeft is returned by hold and transfers once the agent left the
	// conference (the caller and the parties talk on).
	ErrConferenceAgentLeft = fmt.Errorf("%w: its agent left it", ErrConferenced)
)

// RecordingFollower is implemented by a Leg whose call's recording can go on from another
// endpoint: when the caller leaves a conference, the recording follows the agent (what the agent
// says on its left channel, what the agent hears — the parties — on its right).
type RecordingFollower interface {
	RecordFrom(ep *media.Endpoint)
}

// confCtl is talk's state that a conference's hold and transfer change (pointers to talk's
// own variables: all on the call's goroutine).
type confCtl struct {
	ctx       context.Context
	c         *Call
	q         *queueRec
	s         *session
	cf        *conference
	ep        *media.Endpoint // the caller's
	music     *Prompt
	agentID   *int64
	leg       *AgentLeg
	stop      *func()      // undoes the caller's bridge to the agent
	held      **conference // the conference the agent holds, nil when not holding
	holdStart *time.Time
	unhold    func() // ends a hold (two-way or conference), counting its time
	release   func() // drops the agent: bridge, hold, leg, wrap-up
	out       *talkOutcome
}

// conferenceOf returns the call's conference while it lasts, else nil.
func (a *ACD) conferenceOf(s *session) *conference {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cf := s.conf; cf != nil && !cf.closed {
		return cf
	}
	return nil
}

// conferenceControl serves req for a call that is a conference with the caller and the agent
// in it. done: the call is over (talk returns r); handled false: the conference ended before
// anything changed, and req is to be served as a two-way call's.
func (a *ACD) conferenceControl(cc confCtl, req ctlReq) (r talkOutcome, done, handled bool) {
	switch req.op {
	case opHold:
		if *cc.held == nil {
			// Out of the mix: heard by nobody, hearing nothing (the bridge to the caller goes
			// too). A conference that ended meanwhile: Set does nothing, and talk's heldOver
			// turns this into a two-way hold with music.
			cc.cf.agent.Set(media.MemberOptions{HeardBy: media.HeardByNobody})
			(*cc.stop)()
			*cc.held = cc.cf
			*cc.holdStart = a.clock.Now()
			cc.c.emit(callevent.Event{Type: callevent.EventHeld})
		}
		req.reply <- nil
		return *cc.out, false, true
	case opResume:
		if *cc.held == nil {
			req.reply <- nil
			return *cc.out, false, true
		}
		cc.unhold()
		// Back in the mix first (nothing of the bridge alone is heard), then the bridge under
		// it, which carries the call on should the conference end.
		cc.cf.agent.Set(media.MemberOptions{Send: true})
		st, err := (*cc.leg).Bridge(cc.ep)
		cc.c.emit(callevent.Event{Type: callevent.EventResumed})
		req.reply <- err
		if err != nil {
			// The agent's leg cannot take the call any more: as if they hung up.
			return a.agentLost(cc, fmt.Errorf("ivr: bridge after a conference's hold: %w", err))
		}
		*cc.stop = st
		return *cc.out, false, true
	case opConsult:
		req.reply <- ErrConferenceConsult
		return *cc.out, false, true
	case opConsultComplete, opConsultCancel:
		req.reply <- ErrNoConsult
		return *cc.out, false, true
	case opTransfer:
		if req.to.Number != "" {
			req.reply <- ErrConferenceNumber
			return *cc.out, false, true
		}
		return a.transferConference(cc, req)
	}
	req.reply <- fmt.Errorf("ivr: unknown control %d", req.op)
	return *cc.out, false, true
}

// agentLost ends the agent's part when their leg failed: released, and the conference goes on
// without them (or, over, the call ends with err).
func (a *ACD) agentLost(cc confCtl, err error) (talkOutcome, bool, bool) {
	if cf, ok := a.leaveConference(cc.s, false); ok {
		cc.release()
		a.conferenceRest(cc.s, cf, cc.ctx.Done(), ErrConferenceAgentLeft)
		return *cc.out, true, true
	}
	cc.release()
	cc.out.err = err
	return *cc.out, true, true
}

// transferConference hands the agent's place in the conference over to another agent, blind.
func (a *ACD) transferConference(cc confCtl, req ctlReq) (talkOutcome, bool, bool) {
	cf, s, from := cc.cf, cc.s, *cc.agentID
	// The agent is out of the conference's count first, so that nothing takes the place
	// meanwhile; put back when the target cannot be reserved.
	a.mu.Lock()
	if cf.closed || s.conf != cf || !cf.callerIn || !cf.agentIn {
		a.mu.Unlock()
		return *cc.out, false, false
	}
	cf.agentIn = false
	s.agentID = 0
	a.mu.Unlock()
	var (
		to   int64
		node string
		err  error
	)
	switch {
	case req.to.Queue != "":
		to, node, err = a.reserveFromQueue(cc.c, req.to.Queue, from)
	case req.to.AgentID == from:
		err = fmt.Errorf("%w: agent %d is the one on the call", ErrAgentUnavailable, from)
	default:
		to = req.to.AgentID
		node, err = a.reserve(cc.c, to)
	}
	if err != nil {
		a.mu.Lock()
		cf.agentIn = true
		s.agentID = from
		a.mu.Unlock()
		req.reply <- err
		return *cc.out, false, true
	}
	req.reply <- nil
	held := *cc.held != nil
	cf.agent.Remove()
	cc.release() // the bridge, a hold (its time counted), the agent's leg, their wrap-up
	if held {
		// The caller is on hold no more: they talk with the parties while the target rings.
		cc.c.emit(callevent.Event{Type: callevent.EventResumed})
	}
	return a.ringIntoConference(cc, from, to, node)
}

// ringIntoConference rings agent to (reserved, attached to node) for the agent's place in the
// conference while the caller and the parties talk on; see the top of this file.
func (a *ACD) ringIntoConference(cc confCtl, from, to int64, node string) (talkOutcome, bool, bool) {
	cf, s, c := cc.cf, cc.s, cc.c
	rctx, cancel := context.WithCancel(cc.ctx)
	defer cancel()
	results := make(chan offerResult, 1)
	go func() {
		leg, err := a.offerReserved(rctx, c, cc.q, to, node)
		results <- offerResult{leg, err}
	}()
	var (
		r    offerResult
		pl   *player
		over = cf.over
	)
	for waiting := true; waiting; {
		select {
		case r = <-results:
			waiting = false
		case <-over:
			// The last party left: the caller is alone until the target answers.
			over = nil
			pl = c.startAudio(cc.ctx, cc.music, PromptTransfer)
		case <-cc.ctx.Done():
			cancel()
			r = <-results
			waiting = false
		case req := <-s.ctl:
			req.reply <- ErrTransferBusy
		}
	}
	if pl != nil {
		pl.halt()
	}
	if r.leg != nil && (r.err != nil || cc.ctx.Err() != nil) {
		// Answered as the caller left: nothing to join.
		a.hangupAgent(cc.ctx, r.leg)
		a.agentFree(to, cc.q)
		r.leg = nil
	}
	if r.leg == nil {
		if cc.ctx.Err() != nil {
			return *cc.out, true, true // the caller left with no agent in: the call is over
		}
		if a.conferenceOf(s) == cf {
			// Not answered: the conference goes on without an agent, as when the agent
			// hangs up.
			a.conferenceRest(s, cf, cc.ctx.Done(), ErrConferenceAgentLeft)
			return *cc.out, true, true
		}
		// The conference ended, then the target did not answer: back to the queue, as a
		// blind transfer not answered.
		cc.out.toQueue, cc.out.fromAgent = cc.q.Name, from
		return *cc.out, true, true
	}
	nl := r.leg
	a.mu.Lock()
	live := !cf.closed && s.conf == cf
	if live {
		cf.agentIn = true
	}
	s.agentID = to
	a.mu.Unlock()
	*cc.agentID, *cc.leg = to, nl
	c.emit(callevent.Event{Type: callevent.EventTransferred, FromAgentID: from, ToAgentID: to})
	st, err := nl.Bridge(cc.ep)
	if err != nil {
		*cc.stop = func() {}
		if live {
			return a.agentLost(cc, err)
		}
		cc.release()
		cc.out.err = fmt.Errorf("ivr: bridge caller to agent %d after a conference's transfer: %w", to, err)
		return *cc.out, true, true
	}
	*cc.stop = st
	if live {
		// The new agent's side of the bridge joins the mix in the old agent's place. A
		// conference that ended meanwhile (ErrMixerClosed) leaves the bridge: a two-way call.
		if m, err := cf.mixer.Add(media.BridgedTo(cc.ep), media.MemberOptions{Send: true}); err == nil {
			a.mu.Lock()
			cf.agent = m
			a.mu.Unlock()
		}
	}
	c.emit(callevent.Event{Type: callevent.EventAnswered, AgentID: to, Channel: legChannel(nl)})
	return *cc.out, false, true
}
