package ivr

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// BusyOnOwnCall marks agent id busy on callID, a call of their own that the ACD does not
// serve (an outbound call placed from the agent's SIP phone: sip), from its start: no queue
// offer rings them while it lasts, and the wallboard and supervisors see them busy on it.
// end, called once the call is over, frees them as a queue call's end does, without wrap-up:
// back to away or offline when they were so, else available — or to the state they chose
// meanwhile (SetState during the call applies after it). end is idempotent.
//
// It refuses (ErrAgentUnavailable) an agent already on a call or being offered one, and
// answers ErrUnknownAgent for an id the roster does not hold (the caller may place the call
// anyway: such a user has no queue state). With shared queues (a cluster, ACDOptions.Shared)
// the agent's state is the store's: it refuses an agent the store shows on or offered a call
// (a phone's consult call that reached another node than the phone's reads as its own call
// there), and otherwise marks nothing: end does nothing (not built).
func (a *ACD) BusyOnOwnCall(id int64, callID string) (end func(), err error) {
	if a.opts.Shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		st, err := a.opts.Shared.Agent(ctx, id)
		switch {
		case errors.Is(err, ErrUnknownAgent):
			return nil, err
		case err == nil && (st.State == StateBusy || st.Offering != ""):
			return nil, fmt.Errorf("%w: agent %d is on or being offered another call", ErrAgentUnavailable, id)
		}
		return func() {}, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ag, ok := a.agents[id]
	if !ok || ag.removed {
		return nil, fmt.Errorf("%w: %d", ErrUnknownAgent, id)
	}
	if ag.callID != "" || ag.state == StateBusy || ag.offering != "" {
		return nil, fmt.Errorf("%w: agent %d is on or being offered another call", ErrAgentUnavailable, id)
	}
	if ag.state == StateAway || ag.state == StateOffline { // back to it after this call
		ag.after = ag.state
	}
	ag.callID = callID // before the change: OnAgentState's busy status names the call
	a.setStateLocked(ag, StateBusy)
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.agents[id] != ag || ag.callID != callID || ag.state != StateBusy {
				return
			}
			a.callEndedLocked(ag, nil) // no queue: no wrap-up
		})
	}, nil
}
