package ivr

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// checkRoster applies the queues' defaults and checks a roster: queues named once, agents
// once, every agent's queue known, priorities within 1…100.
func checkRoster(queues []Queue, agents []Agent) ([]Queue, []Agent, error) {
	qs := make([]Queue, 0, len(queues))
	names := map[string]bool{}
	for _, q := range queues {
		if q.Name == "" {
			return nil, nil, fmt.Errorf("a queue without a name")
		}
		if names[q.Name] {
			return nil, nil, fmt.Errorf("queue %s twice", q.Name)
		}
		names[q.Name] = true
		if q.RingTimeout <= 0 {
			q.RingTimeout = DefaultRingTimeout
		}
		if q.MaxWait <= 0 {
			q.MaxWait = DefaultMaxWait
		}
		if q.Overflow.Kind == TargetNone {
			q.Overflow = VoicemailTarget()
		}
		if q.AnnounceEvery <= 0 {
			q.AnnounceEvery = DefaultAnnounceEvery
		}
		if q.RetryDelay <= 0 {
			q.RetryDelay = DefaultRetryDelay
		}
		if q.MaxMissedOffers < 0 {
			q.MaxMissedOffers = 0
		}
		if q.Overflow.Kind == TargetQueue && q.Overflow.Name == q.Name {
			return nil, nil, fmt.Errorf("queue %s overflows into itself", q.Name)
		}
		if k := q.Callback.Key; k != "" && (len(k) != 1 || !strings.ContainsAny(k, "0123456789*#")) {
			return nil, nil, fmt.Errorf("queue %s: callback key %q is not one of 0-9, * and #", q.Name, k)
		}
		qs = append(qs, q)
	}
	ags := make([]Agent, 0, len(agents))
	ids := map[int64]bool{}
	for _, ag := range agents {
		if ids[ag.ID] {
			return nil, nil, fmt.Errorf("agent %d twice", ag.ID)
		}
		ids[ag.ID] = true
		for _, qn := range ag.Queues {
			if !names[qn] {
				return nil, nil, fmt.Errorf("agent %d: %w: %s", ag.ID, ErrUnknownQueue, qn)
			}
		}
		for qn, p := range ag.Priority {
			if p < 0 || p > 100 {
				return nil, nil, fmt.Errorf("agent %d: priority %d in queue %s: want 1 to 100", ag.ID, p, qn)
			}
		}
		ag.Queues = slices.Clone(ag.Queues)
		ag.Priority = maps.Clone(ag.Priority)
		ags = append(ags, ag)
	}
	return qs, ags, nil
}

// Apply replaces the ACD's queues and roster while it runs (the admin API changed them): it
// takes effect at once, with no restart and no call dropped.
//
//   - A new queue takes calls at once; a queue whose settings changed serves the calls that
//     enter it from now on with the new settings (a call already waiting keeps the ring
//     timeout and maximum wait it entered with, but is offered to the new members at once).
//     A removed queue takes no new calls; calls waiting in it stay until their maximum wait,
//     then overflow.
//   - A new agent starts offline (its page or SIP phone makes it available); an agent's
//     queues and priorities change at once; a removed agent is offered nothing more and is
//     forgotten once off its call.
//
// With a shared store the new roster is written to it too (SharedStore.SetRoster). The
// agents' states are untouched. It returns an error, changing nothing, when the roster is
// inconsistent (an agent in an unknown queue, a name twice).
func (a *ACD) Apply(ctx context.Context, queues []Queue, agents []Agent) error {
	qs, ags, err := checkRoster(queues, agents)
	if err != nil {
		return fmt.Errorf("ivr: apply roster: %w", err)
	}
	a.mu.Lock()
	keep := map[string]bool{}
	for _, q := range qs {
		keep[q.Name] = true
		old := a.queues[q.Name]
		switch {
		case old == nil:
			a.queues[q.Name] = &queueRec{Queue: q}
			a.m.waiting.WithLabelValues(q.Name).Set(0)
			a.m.wait.WithLabelValues(q.Name)
		case !sameQueue(old.Queue, q):
			// A new record, not an update in place: the goroutines of the calls waiting read
			// their queue's settings without the lock.
			nq := &queueRec{Queue: q, waiting: old.waiting}
			for _, w := range nq.waiting {
				w.q = nq
			}
			a.queues[q.Name] = nq
		}
	}
	for name := range a.queues {
		if !keep[name] {
			delete(a.queues, name) // its waiting calls keep their record (w.q) until they leave
		}
	}
	now := a.clock.Now()
	inRoster := map[int64]bool{}
	for _, ag := range ags {
		inRoster[ag.ID] = true
		if rec := a.agents[ag.ID]; rec != nil {
			rec.Agent, rec.removed = ag, false
			continue
		}
		a.agents[ag.ID] = &agentRec{Agent: ag, state: StateOffline, since: now}
	}
	for id, rec := range a.agents {
		if inRoster[id] {
			continue
		}
		if a.opts.Shared != nil { // states are the store's: SetRoster takes the agent off
			delete(a.agents, id)
			continue
		}
		rec.removed, rec.Queues, rec.Priority = true, nil, nil
		if rec.state != StateOffline && rec.state != StateBusy && rec.offering == "" {
			a.setStateLocked(rec, StateOffline) // told to its page before it goes
		}
		a.dropIfRemovedLocked(rec)
	}
	if a.opts.Shared == nil {
		a.publishLocked()
		a.dispatchLocked() // new members, new queues
	}
	a.mu.Unlock()
	if a.opts.Shared != nil {
		sctx, cancel := context.WithTimeout(ctx, sharedTimeout)
		defer cancel()
		if err := a.opts.Shared.SetRoster(sctx, ags); err != nil {
			return fmt.Errorf("ivr: apply roster: %w", err)
		}
		a.kickShared()
	}
	return nil
}

// dropIfRemovedLocked forgets an agent taken off the roster once it rings for and talks on
// no call.
func (a *ACD) dropIfRemovedLocked(ag *agentRec) {
	if ag == nil || !ag.removed || ag.offering != "" || ag.callID != "" || ag.state == StateBusy {
		return
	}
	if ag.wrap != nil {
		ag.wrap.Stop()
		ag.wrap = nil
	}
	delete(a.agents, ag.ID)
	a.publishLocked()
}

// sameQueue reports whether two queues' settings are equal.
func sameQueue(x, y Queue) bool {
	return x.Name == y.Name && x.RingTimeout == y.RingTimeout && x.MaxWait == y.MaxWait && x.Overflow == y.Overflow &&
		x.Music == y.Music && x.WrapUp == y.WrapUp && x.MaxMissedOffers == y.MaxMissedOffers &&
		x.AnnouncePosition == y.AnnouncePosition && x.AnnounceEvery == y.AnnounceEvery && x.RetryDelay == y.RetryDelay
}
