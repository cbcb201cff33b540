package ivr

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Call pickup: an agent takes a queued call that is ringing another agent (RFC 3891's call
// pickup, an agent's SIP phone sending INVITE with Replaces; or a feature code picking up the
// oldest ringing call of the agent's queues). The offer ringing the other agent is withdrawn
// (its dialer's context cancelled: a SIP phone gets CANCEL, a page stops ringing) without
// counting a miss, and the picking agent is connected to the caller as if they had answered
// the offer: busy on the call, call.answered names them (the ticket is theirs), and the call
// goes on as any queued call (hold, transfers, wrap-up).
//
// Only a call waiting in a queue of this ACD and being offered at that moment can be picked
// up, and only by an agent of that queue who is on no other call and being offered no other
// call. With a shared store (a cluster) pickup is not built: it answers ErrNotRinging.

// ErrNotRinging is returned by Pickup when the call is not ringing an agent of this ACD at
// that moment (not queued here, between two offers, answered meanwhile, or over).
var ErrNotRinging = errors.New("ivr: no such call ringing")

// pickupReq asks a waiting call's goroutine to connect agentID on leg instead of the agent
// being offered the call.
type pickupReq struct {
	agentID int64
	leg     AgentLeg
	reply   chan error
}

// Pickup connects agent agentID, on leg (the agent's phone, answered by the caller of Pickup
// once it returns nil), to the call callID that rings another agent now, withdrawing that
// offer. It returns ErrNotRinging (see it), ErrUnknownAgent, or ErrAgentUnavailable (the
// agent is not in the call's queue, or on or being offered another call), and changes
// nothing then: leg is the caller's to end. On nil the call is the agent's and leg is the
// ACD's (hung up when the call ends).
func (a *ACD) Pickup(ctx context.Context, callID string, agentID int64, leg AgentLeg) error {
	if a.opts.Shared != nil {
		return fmt.Errorf("%w: pickup is not available with shared queues", ErrNotRinging)
	}
	a.mu.Lock()
	w := a.waiterLocked(callID)
	a.mu.Unlock()
	if w == nil || w.pickups == nil {
		return fmt.Errorf("%w: %s", ErrNotRinging, callID)
	}
	req := pickupReq{agentID: agentID, leg: leg, reply: make(chan error, 1)}
	select {
	case w.pickups <- req:
	case <-w.done:
		return fmt.Errorf("%w: %s", ErrNotRinging, callID)
	case <-ctx.Done():
		return ctx.Err()
	}
	// The waiting call's goroutine always answers a request it took.
	return <-req.reply
}

// RingingCall returns the call longest waiting among those ringing an agent now in the queues
// of agent agentID (the feature code's pickup), and whether there is one.
func (a *ACD) RingingCall(agentID int64) (string, bool) {
	if a.opts.Shared != nil {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ag := a.agents[agentID]
	if ag == nil {
		return "", false
	}
	var best *waiter
	for _, qn := range ag.Queues {
		q := a.queues[qn]
		if q == nil {
			continue
		}
		for _, w := range q.waiting {
			if w.offering != 0 && w.offering != agentID && w.pickups != nil && (best == nil || w.enqueued.Before(best.enqueued)) {
				best = w
			}
		}
	}
	if best == nil {
		return "", false
	}
	return best.c.id, true
}

// waiterLocked returns the call callID waiting in a queue of this ACD, or nil (ACD.mu held).
func (a *ACD) waiterLocked(callID string) *waiter {
	for _, q := range a.queues {
		for _, w := range q.waiting {
			if w.c.id == callID {
				return w
			}
		}
	}
	return nil
}

// canPickUpLocked says why agent id cannot pick up w, or nil (ACD.mu held).
func (a *ACD) canPickUpLocked(w *waiter, id int64) error {
	ag := a.agents[id]
	if ag == nil || ag.removed {
		return fmt.Errorf("%w: %d", ErrUnknownAgent, id)
	}
	if !slices.Contains(ag.Queues, w.q.Name) {
		return fmt.Errorf("%w: agent %d is not in queue %s", ErrAgentUnavailable, id, w.q.Name)
	}
	if ag.callID != "" || ag.state == StateBusy || (ag.offering != "" && ag.offering != w.c.id) {
		return fmt.Errorf("%w: agent %d is on or being offered another call", ErrAgentUnavailable, id)
	}
	return nil
}

// pickedUp settles a pickup on w once the offer to the ringing agent was withdrawn (its
// dialer returned): that agent is free again with no miss counted; the picking agent, when
// still able to (canPickUpLocked), is busy on the call and w out of its queue. On an error the
// call waits on (dispatch offers it again).
func (m memWait) pickedUp(w *waiter, ringing, by int64) error {
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	w.offering = 0
	if ag := a.agents[ringing]; ag != nil && ag.offering == w.c.id {
		ag.offering = ""
		a.dropIfRemovedLocked(ag)
	}
	if err := a.canPickUpLocked(w, by); err != nil {
		a.dispatchLocked()
		return err
	}
	a.removeLocked(w)
	select { // dispatch may have handed the call an agent meanwhile: not any more
	case cl := <-w.claims:
		if ag := a.agents[cl.AgentID]; ag != nil && ag.offering == w.c.id {
			ag.offering = ""
			a.dropIfRemovedLocked(ag)
		}
	default:
	}
	ag := a.agents[by]
	ag.offering = ""
	ag.missed = 0
	if ag.state == StateAway || ag.state == StateOffline { // back to it after this call
		ag.after = ag.state
	}
	ag.callID = w.c.id // before the change: OnAgentState's busy status names the call
	a.setStateLocked(ag, StateBusy)
	a.dispatchLocked()
	return nil
}
