package ivr

import (
	"fmt"
	"time"
)

// ExtendWrapUp lengthens agent id's running wrap-up: it now ends d from now (the agent page's
// Extend button), instead of when the queue's wrap-up time runs out. The agent stays in
// wrap_up, offered no calls, until then or until they choose a state (available ends it at
// once, as before). It refuses with ErrBadState when the agent is not in a wrap-up this node
// times (with shared queues, the node where the call ended times it) and ErrUnknownAgent for
// an unknown id. d must be positive.
func (a *ACD) ExtendWrapUp(id int64, d time.Duration) (AgentStatus, error) {
	if d <= 0 {
		return AgentStatus{}, fmt.Errorf("%w: a wrap-up extension must be positive, got %s", ErrBadState, d)
	}
	if a.opts.Shared != nil {
		return a.sharedExtendWrapUp(id, d)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ag, ok := a.agents[id]
	if !ok {
		return AgentStatus{}, fmt.Errorf("%w: %d", ErrUnknownAgent, id)
	}
	if ag.state != StateWrapUp || ag.wrap == nil || a.closed {
		return AgentStatus{}, fmt.Errorf("%w: agent %d is %s, not in wrap-up", ErrBadState, id, ag.state)
	}
	ag.wrap.Stop()
	var t Timer
	t = a.clock.AfterFunc(d, func() { // as callEndedLocked's: end the wrap-up unless replaced
		a.mu.Lock()
		defer a.mu.Unlock()
		if ag.wrap != t || ag.state != StateWrapUp {
			return
		}
		ag.wrap = nil
		a.setStateLocked(ag, StateAvailable)
		a.dispatchLocked()
	})
	ag.wrap = t
	return ag.status(), nil
}

// sharedExtendWrapUp restarts the wrap-up timer this node keeps for id (sharedAgentFree's).
func (a *ACD) sharedExtendWrapUp(id int64, d time.Duration) (AgentStatus, error) {
	a.mu.Lock()
	w, ok := a.sh.wraps[id]
	if !ok || a.closed {
		a.mu.Unlock()
		return AgentStatus{}, fmt.Errorf("%w: agent %d has no wrap-up timed on this node", ErrBadState, id)
	}
	w.t.Stop()
	seq := w.seq
	var t Timer
	t = a.clock.AfterFunc(d, func() {
		a.mu.Lock()
		mine := a.sh.wraps[id].t == t
		if mine {
			delete(a.sh.wraps, id)
		}
		a.mu.Unlock()
		if !mine {
			return
		}
		ctx, cancel := a.sharedCtx()
		defer cancel()
		if err := a.opts.Shared.WrapUpEnded(ctx, id, seq); err != nil {
			a.log.Warn("ivr: end the extended wrap-up in the shared store", "agent_id", id, "err", err)
		}
		a.kickShared()
	})
	a.sh.wraps[id] = wrapTimer{t: t, seq: seq}
	a.mu.Unlock()
	return a.Agent(id)
}
