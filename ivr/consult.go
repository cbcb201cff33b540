package ivr

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Transfers whose target must answer first: a consult (warm) transfer to an agent, a queue or
// an outside number, and a blind transfer to an outside number. They run on the call's
// goroutine inside talk (queue.go), which hands over the agent's leg and takes back what the
// transfer left: the caller back with the agent, the caller with a new agent, or a call that
// is over.
//
// Events (docs/events.md): call.transfer_started when the target is being reached (the caller
// hears the transfer prompt and the queue's music; transfer time counts, CD-3); then either
// call.resumed (given up: cancelled, not answered, the target left — the caller is back with
// the agent), or call.transferred followed by the target's call.answered (completed: TU-7
// reassigns the ticket to an agent target).

// More sentinel errors of transfers.
var (
	// ErrNoTrunk is returned when a transfer names an outside number and the call cannot dial
	// one (its leg has no ExternalDialer: no trunk to call through).
	ErrNoTrunk = errors.New("ivr: this call cannot dial an outside number")
	// ErrNoConsult is returned by CompleteConsult and CancelConsult when no consult transfer
	// of the call has a target on the line (none started, or it ended: the caller is back).
	ErrNoConsult = errors.New("ivr: no consult transfer in progress")
	// ErrTransferBusy is returned when a transfer is asked for while another one of the same
	// call is in progress.
	ErrTransferBusy = errors.New("ivr: a transfer of this call is in progress")
	// ErrTransferFailed is returned by Consult, and by Transfer to an outside number, when the
	// target did not answer (or was cancelled): the caller is back with the agent.
	ErrTransferFailed = errors.New("ivr: the transfer target did not answer")
	// ErrNoAgentFree is returned by a consult to a queue none of whose agents is available.
	ErrNoAgentFree = errors.New("ivr: no agent of the queue is available")
)

// ExternalDialer is implemented by a Leg whose call can dial an outside number through the
// trunk (sip's carrier leg). DialExternal returns once the number answered (a leg ready to
// bridge, its Endpoint the far end's RTP) or failed; ctx's end cancels the attempt. The
// number was checked against the dial plan by whoever asked for the transfer (web).
type ExternalDialer interface {
	DialExternal(ctx context.Context, number string) (*MediaAgentLeg, error)
}

// EndpointPairer is implemented by a Leg that can make two RTP endpoints sending to each
// other: the way two agents' legs that only bridge to an endpoint (two browser softphones)
// talk during a consult. closePair frees both.
type EndpointPairer interface {
	EndpointPair() (x, y *media.Endpoint, closePair func(), err error)
}

// ConsultEnd says how a consult transfer that reached its target ended (Consult's onEnd).
type ConsultEnd string

// Ends of a consult transfer.
const (
	ConsultCompleted  ConsultEnd = "completed"   // the caller and the target are bridged
	ConsultCancelled  ConsultEnd = "cancelled"   // the agent went back to the caller
	ConsultTargetLeft ConsultEnd = "target_left" // the target hung up: the caller is back with the agent
	ConsultCallerLeft ConsultEnd = "caller_left" // the caller hung up meanwhile
	ConsultAgentLeft  ConsultEnd = "agent_left"  // the agent hung up before completing: the call ended
)

// Consult starts a consult (warm) transfer of a connected call to an agent (to.AgentID), the
// first available agent of a queue (to.Queue) or an outside number (to.Number, E.164, already
// allowed by the dial plan): the caller is held with music, the target is rung, and Consult
// returns nil once the target answered and talks with the agent, or an error (ErrTransferFailed
// when it did not answer: the caller is back with the agent; ErrNoCall, ErrAgentUnavailable,
// ErrUnknownAgent, ErrUnknownQueue, ErrNoAgentFree, ErrNoTrunk, ErrTransferBusy without
// changing anything). Then CompleteConsult bridges the caller and the target and releases the
// agent; CancelConsult returns the agent to the caller. onEnd, when set, is told once how a
// consult that reached its target ended, on the call's goroutine with no lock held.
func (a *ACD) Consult(ctx context.Context, callID string, to TransferTo, onEnd func(ConsultEnd)) error {
	return a.ConsultOn(ctx, callID, to, nil, onEnd)
}

// ConsultOn is Consult where the agent talks to the target on a leg of its own, via, instead
// of the call's agent leg: an agent's SIP phone that consults by placing a second call (an
// attended transfer, RFC 5589 §7: the phone holds the caller's call and calls the target
// through the gateway). via is bridged to the target once it answered; via ending before the
// completion gives the consult up (the phone hung up its second call: the caller is back with
// the agent); completing, cancelling or the caller hanging up hangs via up. The call's agent
// leg stays as it is meanwhile (on hold at the phone). nil via is Consult.
func (a *ACD) ConsultOn(ctx context.Context, callID string, to TransferTo, via AgentLeg, onEnd func(ConsultEnd)) error {
	if n := countTargets(to); n != 1 {
		return fmt.Errorf("ivr: consult: name exactly one agent, queue or number")
	}
	return a.control(ctx, callID, ctlReq{op: opConsult, to: to, via: via, onEnd: onEnd})
}

// CompleteConsult completes the call's consult transfer: the caller is bridged to the target,
// the agent released (wrap-up), call.transferred emitted. ErrNoConsult when no target is on
// the line.
func (a *ACD) CompleteConsult(ctx context.Context, callID string) error {
	return a.control(ctx, callID, ctlReq{op: opConsultComplete})
}

// CancelConsult gives up the call's consult transfer (ringing or answered): the target is
// hung up and the caller bridged to the agent again (call.resumed). ErrNoConsult when none is
// in progress.
func (a *ACD) CancelConsult(ctx context.Context, callID string) error {
	return a.control(ctx, callID, ctlReq{op: opConsultCancel})
}

// CallAgent returns the agent connected to a call this ACD serves, and whether it serves it.
func (a *ACD) CallAgent(callID string) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.live[callID]
	if s == nil {
		return 0, false
	}
	return s.agentID, true
}

func countTargets(to TransferTo) int {
	n := 0
	for _, set := range []bool{to.AgentID != 0, to.Queue != "", to.Number != ""} {
		if set {
			n++
		}
	}
	return n
}

type consultKind int

const (
	consultKept    consultKind = iota // refused before anything changed: the bridge stands
	consultBack                       // the caller is back with the agent, bridged again (stop)
	consultAgent                      // completed to an agent, now on leg (busy): bridge and talk on
	consultOver                       // the call is over; released says whether the agent was released
	consultRequeue                    // a blind transfer not answered after the agent left: back to the queue
)

type consultResult struct {
	kind     consultKind
	agentID  int64
	leg      AgentLeg
	released bool
	stop     func() // consultBack: the caller's bridge to the agent, made again
	err      error  // consultOver: the call could not go on
}

// consultRun runs a transfer whose target must answer first (req: opConsult, or opTransfer to
// a number, blind) on the call's goroutine. unbridge stops the agent's bridge to the caller
// (and a hold), once the target is known to be reachable. It answers req itself — after the
// caller is back with the agent when the transfer is given up, so that whoever asked finds
// the call as it was told — and serves the session's other requests until it returns.
func (a *ACD) consultRun(ctx context.Context, c *Call, q *queueRec, s *session, agentID int64, leg AgentLeg, req ctlReq, unbridge func()) consultResult {
	blind := req.op == opTransfer
	to := req.to
	ep := c.leg.Endpoint()
	// talkLeg is where the agent talks to the target: the agent's leg, or the phone's own
	// consult call (ConsultOn). via is hung up whenever the consult ends.
	talkLeg, via := leg, req.via
	var viaGone <-chan struct{}
	if via != nil {
		talkLeg, viaGone = via, via.Done()
	}
	hangupVia := func() {
		if via != nil {
			a.hangupAgent(ctx, via)
		}
	}
	// The target: reserved before anything is said, so a refusal changes nothing.
	var (
		targetAgent int64
		node        string
		dialer      ExternalDialer
	)
	switch {
	case to.Number != "":
		d, ok := c.leg.(ExternalDialer)
		if !ok {
			req.reply <- ErrNoTrunk
			return consultResult{kind: consultKept}
		}
		dialer = d
	case to.Queue != "":
		id, n, err := a.reserveFromQueue(c, to.Queue, agentID)
		if err != nil {
			req.reply <- err
			return consultResult{kind: consultKept}
		}
		targetAgent, node = id, n
	default:
		if to.AgentID == agentID {
			req.reply <- fmt.Errorf("%w: agent %d is the one on the call", ErrAgentUnavailable, to.AgentID)
			return consultResult{kind: consultKept}
		}
		n, err := a.reserve(c, to.AgentID)
		if err != nil {
			req.reply <- err
			return consultResult{kind: consultKept}
		}
		targetAgent, node = to.AgentID, n
	}
	unbridge()
	mode := callevent.TransferConsult
	if blind {
		mode = callevent.TransferBlind
	}
	c.emit(callevent.Event{Type: callevent.EventTransferStarted, FromAgentID: agentID, ToAgentID: to.AgentID,
		Queue: to.Queue, ToNumber: to.Number, TransferMode: mode})
	pl := c.startAudio(ctx, a.music(q), PromptTransfer)
	defer func() {
		if pl != nil {
			pl.halt()
		}
	}()

	// Ring the target on its own goroutine: the agent may cancel meanwhile.
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	results := make(chan offerResult, 1)
	go func() {
		if dialer != nil {
			l, err := dialer.DialExternal(dctx, to.Number)
			if err != nil || l == nil {
				results <- offerResult{nil, err}
				return
			}
			results <- offerResult{l, nil}
			return
		}
		l, err := a.offerReserved(dctx, c, q, targetAgent, node)
		results <- offerResult{l, err}
	}()
	var (
		target    AgentLeg
		targetEnd <-chan struct{}
		stopAT    = func() {}
		agentGone <-chan struct{}
		pending   = &req // the request waiting for the target's answer (Consult's, Transfer's)
		onEnd     = req.onEnd
	)
	// A blind transfer gives up the agent only once the target answered: a number that does
	// not answer returns the caller to the agent, who waits meanwhile.
	agentGone = leg.Done()
	agentLeft := false
	answer := func(err error) {
		if pending != nil {
			pending.reply <- err
			pending = nil
		}
	}
	tell := func(e ConsultEnd) {
		if onEnd != nil {
			onEnd(e)
			onEnd = nil
		}
	}
	// giveUp hangs up or stops ringing the target and takes the caller back to the agent.
	giveUp := func() {
		stopAT()
		hangupVia()
		if target != nil {
			a.hangupAgent(ctx, target)
			if targetAgent != 0 {
				a.agentFree(targetAgent, q)
			}
			target = nil
		} else {
			dcancel()
			if r := <-results; r.leg != nil {
				a.hangupAgent(ctx, r.leg)
				if targetAgent != 0 {
					a.agentFree(targetAgent, q)
				}
			}
			results = nil
		}
	}
	// rejoin bridges the caller to the agent again (the transfer given up) and emits
	// call.resumed: the transfer time ends.
	rejoin := func() consultResult {
		if pl != nil {
			pl.halt()
			pl = nil
		}
		st, err := leg.Bridge(ep)
		c.emit(callevent.Event{Type: callevent.EventResumed})
		if err != nil {
			return consultResult{kind: consultOver, err: fmt.Errorf("ivr: bridge caller to agent %d after a transfer: %w", agentID, err)}
		}
		return consultResult{kind: consultBack, stop: st}
	}
	// complete bridges the caller to the target and lets the agent go.
	complete := func() consultResult {
		stopAT()
		hangupVia()
		pl.halt()
		pl = nil
		if targetAgent != 0 {
			// talk goes on with the new agent (busy since the offer was answered): it bridges
			// the caller and emits call.answered.
			if !agentLeft {
				a.hangupAgent(ctx, leg)
			}
			a.agentFree(agentID, q)
			c.emit(callevent.Event{Type: callevent.EventTransferred, FromAgentID: agentID, ToAgentID: targetAgent})
			return consultResult{kind: consultAgent, agentID: targetAgent, leg: target, released: true}
		}
		stop, err := target.Bridge(ep)
		if err != nil {
			a.hangupAgent(ctx, target)
			return consultResult{kind: consultOver, err: fmt.Errorf("ivr: bridge caller to the transfer target: %w", err)}
		}
		defer stop()
		if !agentLeft {
			a.hangupAgent(ctx, leg)
		}
		a.agentFree(agentID, q)
		c.emit(callevent.Event{Type: callevent.EventTransferred, FromAgentID: agentID, ToNumber: to.Number})
		c.emit(callevent.Event{Type: callevent.EventAnswered})
		// No agent is on the call any more: hold, transfer and the rest answer ErrNoCall at
		// once (a request that raced the completion gets it from the loop below).
		a.dropLive(c, s)
		for range 1 << 20 { // the caller and the outside number talk until either hangs up
			select {
			case <-ctx.Done():
				a.hangupAgent(ctx, target)
				return consultResult{kind: consultOver, released: true}
			case <-target.Done():
				return consultResult{kind: consultOver, released: true}
			case r := <-s.ctl:
				r.reply <- fmt.Errorf("%w: %s (transferred to an outside number)", ErrNoCall, c.ID())
			}
		}
		a.hangupAgent(ctx, target)
		return consultResult{kind: consultOver, released: true}
	}
	for range 1 << 20 { // bounded: every turn is an event of this call
		select {
		case <-ctx.Done(): // the caller hung up
			giveUp()
			answer(fmt.Errorf("%w: the caller hung up", ErrTransferFailed))
			tell(ConsultCallerLeft)
			return consultResult{kind: consultOver}
		case <-agentGone:
			agentGone = nil
			agentLeft = true
			if target != nil && !blind {
				// The agent hung up while talking with the target: the transfer completes (the
				// usual way to finish an attended transfer on a phone).
				tell(ConsultCompleted)
				return complete()
			}
			if !blind {
				giveUp()
				answer(fmt.Errorf("%w: the agent hung up", ErrTransferFailed))
				tell(ConsultAgentLeft)
				return consultResult{kind: consultOver}
			}
			// Blind: the target is still ringing; the transfer goes on without the agent.
		case r := <-results:
			results = nil
			if r.err != nil || r.leg == nil {
				if r.leg != nil {
					a.hangupAgent(ctx, r.leg)
				}
				if agentLeft {
					c.emit(callevent.Event{Type: callevent.EventResumed})
					answer(fmt.Errorf("%w: %w", ErrTransferFailed, errOr(r.err, ErrNoAnswer)))
					return consultResult{kind: consultRequeue}
				}
				back := rejoin()
				answer(fmt.Errorf("%w: %w", ErrTransferFailed, errOr(r.err, ErrNoAnswer)))
				return back
			}
			target, targetEnd = r.leg, r.leg.Done()
			if blind {
				answer(nil)
				return complete()
			}
			stop, err := a.bridgeLegs(c, talkLeg, target)
			if err != nil {
				a.log.Error("ivr: bridge the agent to the consult target", "call_id", c.ID(), "error", err)
				giveUp()
				back := rejoin()
				answer(fmt.Errorf("%w: %w", ErrTransferFailed, err))
				return back
			}
			stopAT = stop
			answer(nil)
		case <-viaGone:
			// The agent's phone hung up (or cancelled) its consult call: the consult is given
			// up, the caller back with the agent (RFC 5589 §7: the transferor may abandon the
			// consultation and retrieve the held call).
			viaGone = nil
			giveUp()
			back := rejoin()
			answer(fmt.Errorf("%w: the agent hung up the consult call", ErrTransferFailed))
			tell(ConsultCancelled)
			return back
		case <-targetEnd:
			targetEnd = nil
			giveUp()
			back := rejoin()
			tell(ConsultTargetLeft)
			return back
		case r := <-s.ctl:
			switch r.op {
			case opConsultCancel:
				giveUp()
				back := rejoin()
				answer(fmt.Errorf("%w: cancelled", ErrTransferFailed))
				r.reply <- nil
				tell(ConsultCancelled)
				return back
			case opConsultComplete:
				if target == nil || blind {
					r.reply <- fmt.Errorf("%w: the target has not answered yet", ErrNoConsult)
					continue
				}
				r.reply <- nil
				tell(ConsultCompleted)
				return complete()
			default:
				r.reply <- ErrTransferBusy
			}
		}
	}
	giveUp()
	back := rejoin()
	answer(ErrTransferFailed)
	return back
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// bridgeLegs joins two agent-side legs (the agent and a consult target): through the one that
// has a plain RTP endpoint, or through a pair of endpoints sending to each other when neither
// has (two browser softphones).
func (a *ACD) bridgeLegs(c *Call, x, y AgentLeg) (func(), error) {
	if m, ok := y.(*MediaAgentLeg); ok && m.Endpoint != nil {
		return x.Bridge(m.Endpoint)
	}
	if m, ok := x.(*MediaAgentLeg); ok && m.Endpoint != nil {
		return y.Bridge(m.Endpoint)
	}
	p, ok := c.leg.(EndpointPairer)
	if !ok {
		return nil, errors.New("ivr: neither leg has an RTP endpoint and the call cannot pair two")
	}
	ex, ey, closePair, err := p.EndpointPair()
	if err != nil {
		return nil, err
	}
	sx, err := x.Bridge(ex)
	if err != nil {
		closePair()
		return nil, err
	}
	sy, err := y.Bridge(ey)
	if err != nil {
		sx()
		closePair()
		return nil, err
	}
	return func() { sx(); sy(); closePair() }, nil
}

// reserveFromQueue reserves the longest-idle available agent of queue name (not the agent
// on the call) for a consult.
func (a *ACD) reserveFromQueue(c *Call, name string, except int64) (int64, string, error) {
	if !a.hasQueue(name) {
		return 0, "", fmt.Errorf("%w: %s", ErrUnknownQueue, name)
	}
	var free []AgentStatus
	for _, s := range a.Agents() {
		if s.ID == except || s.State != StateAvailable || s.Offering != "" {
			continue
		}
		for _, qn := range s.Queues {
			if qn == name {
				free = append(free, s)
				break
			}
		}
	}
	sort.SliceStable(free, func(i, j int) bool { return free[i].Since.Before(free[j].Since) })
	for _, s := range free {
		if node, err := a.reserve(c, s.ID); err == nil {
			return s.ID, node, nil
		}
	}
	return 0, "", fmt.Errorf("%w: %s", ErrNoAgentFree, name)
}

// runConsultIn runs consultRun from talk's loop and brings talk's state up to date: it
// reports done with talk's outcome when the call is over, else talk goes on serving the
// (possibly new) agent, bridged to the caller.
func (a *ACD) runConsultIn(ctx context.Context, c *Call, q *queueRec, s *session, agentID *int64, leg *AgentLeg,
	stop *func(), unhold func(), req ctlReq, out *talkOutcome) (talkOutcome, bool) {
	unbridge := func() {
		(*stop)()
		*stop = func() {}
		unhold() // a transfer from hold: the hold ends here, the transfer's time begins
	}
	r := a.consultRun(ctx, c, q, s, *agentID, *leg, req, unbridge)
	release := func() {
		if !r.released {
			a.hangupAgent(ctx, *leg)
			a.agentFree(*agentID, q)
		}
	}
	switch r.kind {
	case consultKept:
		return *out, false
	case consultBack:
		*stop = r.stop
		return *out, false
	case consultOver:
		release()
		if r.err != nil {
			out.err = r.err
		}
		return *out, true
	case consultRequeue:
		release()
		out.toQueue, out.fromAgent = q.Name, *agentID
		return *out, true
	}
	// consultAgent: talk goes on with the new agent.
	*agentID, *leg = r.agentID, r.leg
	a.mu.Lock()
	s.agentID = r.agentID
	a.mu.Unlock()
	st, err := r.leg.Bridge(c.leg.Endpoint())
	if err != nil {
		a.hangupAgent(ctx, r.leg)
		a.agentFree(r.agentID, q)
		out.err = fmt.Errorf("ivr: bridge caller to agent %d after a transfer: %w", r.agentID, err)
		return *out, true
	}
	*stop = st
	c.emit(callevent.Event{Type: callevent.EventAnswered, AgentID: r.agentID, Channel: legChannel(r.leg)})
	return *out, false
}
