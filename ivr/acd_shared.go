package ivr

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"
)

// The ACD of a cluster (ACDOptions.Shared). The store holds the truth — agents' states and
// attachments, queue membership, waiting calls and their order, the claims pairing a call with
// an agent — and this node keeps only what is its own: the goroutines of the calls it runs
// (their waiters, by call id), their offers and conversations, and the wrap-up timers of the
// agents whose calls ended here.
//
// Who owns what:
//   - The shared loop goroutine (sharedLoop, from NewACD to Close) joins the store, then on
//     every wake-up of the store, every kick of this node and every Recheck: dispatches,
//     hands this node's claims to its waiters, and tells OnAgentState (through the notifier)
//     the agent changes it had not seen. It alone owns sh.seen and sh.joined.
//   - ACD.mu guards sh.waiters, sh.wraps and each waiter's offering and claimSeq.
//   - Each call's goroutine talks to the store for its own call (enqueue, answered, missed,
//     leave), never with ACD.mu held.

// sharedState is the ACD's part of a cluster.
type sharedState struct {
	waiters map[string]*waiter  // call id → this node's waiting call (ACD.mu)
	wraps   map[int64]wrapTimer // agent → wrap-up of a call that ended here (ACD.mu)
	seen    map[int64]uint64    // agent → newest Seq told (the loop's)
	cache   []AgentStatus       // last agents read (ACD.mu), shown when the store is away
	kick    chan struct{}       // capacity 1
	stop    chan struct{}
	done    chan struct{}
	phones  []phoneChange // attachments of SIP phones to apply, in order (ACD.mu)
}

type wrapTimer struct {
	t   Timer
	seq uint64 // the agent's state seq when the wrap-up began
}

type phoneChange struct {
	id int64
	on bool
}

// joinBudget bounds the first Join, in NewACD: the store must know the node's roster, and
// forget the node's previous run, before the node's pages attach. A database that does not
// answer by then is left to the loop, which retries.
const joinBudget = 2 * time.Second

func (a *ACD) startShared() {
	a.sh = sharedState{waiters: map[string]*waiter{}, wraps: map[int64]wrapTimer{}, seen: map[int64]uint64{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), joinBudget)
	err := a.sharedJoin(ctx)
	cancel()
	if err != nil {
		a.log.Warn("ivr: joining the cluster's shared queues failed; retrying", "err", err)
	}
	go a.sharedLoop(err == nil)
}

func (a *ACD) stopShared() {
	if a.opts.Shared == nil {
		return
	}
	select {
	case <-a.sh.stop:
	default:
		close(a.sh.stop)
	}
	<-a.sh.done
}

// kickShared asks the loop for a round now (a call queued, an agent freed).
func (a *ACD) kickShared() {
	select {
	case a.sh.kick <- struct{}{}:
	default:
	}
}

// offerNode is Offer.Node for an agent attached to node: empty for this node (the local dialer).
func (a *ACD) offerNode(node string) string {
	if node == a.opts.Node {
		return ""
	}
	return node
}

func (a *ACD) sharedCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), sharedTimeout)
}

func (a *ACD) sharedLoop(joined bool) {
	defer close(a.sh.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.sh.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		if !joined {
			if err := a.sharedJoin(ctx); err != nil {
				if ctx.Err() == nil {
					a.log.Warn("ivr: joining the cluster's shared queues failed; retrying", "err", err)
				}
			} else {
				joined = true
			}
		}
		if joined {
			a.sharedRound(ctx)
		}
		t := a.clock.NewTimer(a.opts.Recheck)
		select {
		case <-a.sh.stop:
			t.Stop()
			return
		case <-a.opts.Shared.Wake():
		case <-a.sh.kick:
		case <-t.C():
		}
		t.Stop()
	}
}

func (a *ACD) sharedJoin(ctx context.Context) error {
	a.mu.Lock()
	roster := make([]Agent, 0, len(a.agents))
	for _, ag := range a.agents {
		roster = append(roster, ag.Agent)
	}
	a.mu.Unlock()
	jctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	return a.opts.Shared.Join(jctx, a.opts.Node, roster)
}

// sharedRound dispatches, hands this node's claims to its waiters, applies SIP phones'
// attachments, and tells the agent changes it had not seen.
func (a *ACD) sharedRound(ctx context.Context) {
	st := a.opts.Shared
	rctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	a.mu.Lock()
	phones := a.sh.phones
	a.sh.phones = nil
	a.mu.Unlock()
	for _, p := range phones {
		if _, _, err := st.Attach(rctx, p.id, ViaPhone, a.opts.Node, p.on); err != nil {
			a.log.Warn("ivr: record the SIP phone's attachment", "agent_id", p.id, "registered", p.on, "err", err)
		}
	}
	if _, err := st.Dispatch(rctx); err != nil && ctx.Err() == nil {
		a.log.Warn("ivr: shared dispatch", "err", err)
	}
	claims, err := st.Claims(rctx, a.opts.Node)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("ivr: shared claims", "err", err)
	}
	var stale []string
	a.mu.Lock()
	for _, cl := range claims {
		w := a.sh.waiters[cl.CallID]
		switch {
		case w == nil:
			// Claimed for a call this node no longer waits on (its Leave failed, or a previous
			// run's): released so the agent is free.
			stale = append(stale, cl.CallID)
		case w.offering == 0 && cl.Seq > w.claimSeq:
			w.offering, w.claimSeq = cl.AgentID, cl.Seq
			w.claims <- cl // capacity 1, empty while offering is 0
		}
	}
	a.mu.Unlock()
	for _, id := range stale {
		if err := st.Leave(rctx, id); err != nil {
			a.log.Warn("ivr: release a stale claim", "call_id", id, "err", err)
		}
	}
	as, err := st.Agents(rctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("ivr: shared agents", "err", err)
		}
		return
	}
	a.mu.Lock()
	a.sh.cache = as
	counts := map[AgentState]int{}
	for _, s := range as {
		counts[s.State]++
		if s.Seq > a.sh.seen[s.ID] {
			a.sh.seen[s.ID] = s.Seq
			a.noteLocked(s)
		}
	}
	for _, s := range agentStates {
		a.m.agents.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
	a.mu.Unlock()
}

// noteLocked queues a state change for OnAgentState (see notify).
func (a *ACD) noteLocked(s AgentStatus) {
	if a.opts.OnAgentState == nil {
		return
	}
	a.notes = append(a.notes, s)
	if a.notifying == nil {
		done := make(chan struct{})
		a.notifying = done
		go a.notify(done)
	}
}

func (a *ACD) sharedAgents() ([]AgentStatus, error) {
	ctx, cancel := a.sharedCtx()
	defer cancel()
	as, err := a.opts.Shared.Agents(ctx)
	if err != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		return slices.Clone(a.sh.cache), err
	}
	return as, nil
}

func (a *ACD) sharedQueues() ([]QueueStatus, error) {
	ctx, cancel := a.sharedCtx()
	defer cancel()
	as, err := a.opts.Shared.Agents(ctx)
	if err != nil {
		return nil, err
	}
	ws, err := a.opts.Shared.Waiting(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	a.mu.Lock()
	names := make([]string, 0, len(a.queues))
	for n := range a.queues {
		names = append(names, n)
	}
	a.mu.Unlock()
	sort.Strings(names)
	out := make([]QueueStatus, 0, len(names))
	for _, n := range names {
		s := QueueStatus{Name: n, Agents: map[AgentState]int{}}
		for _, st := range agentStates {
			s.Agents[st] = 0
		}
		for _, w := range ws { // oldest first
			if w.Queue != n {
				continue
			}
			if s.Waiting == 0 {
				s.LongestWait = max(now.Sub(w.Enqueued), 0)
			}
			s.Waiting++
		}
		for _, ag := range as {
			if slices.Contains(ag.Queues, n) {
				s.Agents[ag.State]++
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func (a *ACD) sharedSetState(id int64, st AgentState) (AgentStatus, error) {
	ctx, cancel := a.sharedCtx()
	defer cancel()
	s, err := a.opts.Shared.SetState(ctx, id, st)
	if err != nil {
		return AgentStatus{}, err
	}
	if st != StateWrapUp {
		a.mu.Lock()
		if w, ok := a.sh.wraps[id]; ok { // a chosen state ends a wrap-up this node timed
			w.t.Stop()
			delete(a.sh.wraps, id)
		}
		a.mu.Unlock()
	}
	a.kickShared()
	return s, nil
}

// AgentAttached records that the agent's page (ViaPage) or SIP phone (ViaPhone) is attached to
// this node, so that calls of other nodes are offered to it here (Offer.Node). Without a shared
// store it does nothing: on one node every agent is attached here. A SIP phone's change is
// applied by the shared loop, in order, since the registrar must not wait.
func (a *ACD) AgentAttached(id int64, via Via) {
	a.attach(id, via, true)
}

// AgentDetached records that the agent's page or SIP phone left this node. The page's leaving
// sets the agent offline — unless, with a shared store, the page reconnected to another node
// meanwhile (its attachment there stands). It returns the agent's status.
func (a *ACD) AgentDetached(id int64, via Via) (AgentStatus, error) {
	if a.opts.Shared == nil {
		if via == ViaPage {
			return a.SetState(id, StateOffline)
		}
		return a.Agent(id)
	}
	return a.attach(id, via, false)
}

func (a *ACD) attach(id int64, via Via, on bool) (AgentStatus, error) {
	if a.opts.Shared == nil {
		return AgentStatus{}, nil
	}
	if via == ViaPhone {
		a.mu.Lock()
		a.sh.phones = append(a.sh.phones, phoneChange{id, on})
		a.mu.Unlock()
		a.kickShared()
		return AgentStatus{}, nil
	}
	ctx, cancel := a.sharedCtx()
	defer cancel()
	s, _, err := a.opts.Shared.Attach(ctx, id, via, a.opts.Node, on)
	if err != nil {
		a.log.Warn("ivr: record the page's attachment", "agent_id", id, "attached", on, "err", err)
		return AgentStatus{}, err
	}
	a.kickShared()
	return s, nil
}

// NodeLost clears what a lost node held in the shared store: its agents go offline until their
// pages reconnect to another node, agents on its calls are freed, its waiting calls leave.
// Without a shared store it does nothing.
func (a *ACD) NodeLost(ctx context.Context, node string) error {
	if a.opts.Shared == nil || node == a.opts.Node {
		return nil
	}
	if err := a.opts.Shared.NodeLost(ctx, node); err != nil {
		return fmt.Errorf("ivr: node %s lost: %w", node, err)
	}
	a.kickShared()
	return nil
}

// sharedWaitStore queues a call of this node in the cluster's shared store (wait's
// waitStore): the shared loop hands the waiter the claims that pair it with an agent of any
// node.
type sharedWaitStore struct{ a *ACD }

func (s sharedWaitStore) enqueue(ctx context.Context, w *waiter, announce bool) int {
	a, c := s.a, w.c
	a.mu.Lock()
	if cur := a.queues[w.q.Name]; cur != nil {
		w.q = cur // Apply may have replaced the record since serve read it
	}
	w.q.waiting = append(w.q.waiting, w)
	a.sh.waiters[c.id] = w
	a.m.waiting.WithLabelValues(w.q.Name).Set(float64(len(w.q.waiting)))
	name := w.q.Name
	a.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	var err error
	if w.place != 0 {
		// A callback back in its queue: at the place the caller had.
		err = a.opts.Shared.Requeue(sctx, c.id, name, a.opts.Node, w.place, w.enqueued)
	} else {
		err = a.opts.Shared.Enqueue(sctx, c.id, name, a.opts.Node)
	}
	if err != nil {
		// The caller waits with music and overflows at MaxWait: no agent can be claimed.
		a.log.Error("ivr: queue the call in the shared store", "call_id", c.id, "queue", name, "err", err)
	}
	pos := 0
	if announce {
		pos, _ = a.opts.Shared.Position(sctx, c.id)
	}
	a.kickShared()
	return pos
}

// forget drops the waiter from this node's memory.
func (s sharedWaitStore) forget(w *waiter) {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	w.offering = 0
	if a.sh.waiters[w.c.id] == w {
		delete(a.sh.waiters, w.c.id)
	}
	a.removeLocked(w)
}

func (s sharedWaitStore) answered(ctx context.Context, w *waiter, id int64) {
	a := s.a
	sctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	if _, err := a.opts.Shared.Answered(sctx, id, w.c.id); err != nil {
		// The agent is on the call all the same; the store learns when it returns.
		a.log.Error("ivr: record the answer in the shared store", "call_id", w.c.id, "agent_id", id, "err", err)
	}
	s.forget(w)
	a.kickShared()
}

func (s sharedWaitStore) missed(ctx context.Context, w *waiter, id int64, callerLeft bool) bool {
	if callerLeft {
		return false // the next turn leaves, releasing the claim
	}
	a, mx := s.a, w.q.MaxMissedOffers
	sctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	st, again, err := a.opts.Shared.Missed(sctx, id, w.c.id, mx)
	cancel()
	if err != nil {
		a.log.Warn("ivr: record the missed offer in the shared store", "call_id", w.c.id, "agent_id", id, "err", err)
	}
	a.mu.Lock()
	w.offering = 0
	a.mu.Unlock()
	if err == nil && st.State == StateAway && mx > 0 && st.MissedOffers >= mx {
		a.log.Info("ivr: agent missed offers in a row; now away", "agent_id", id, "missed", st.MissedOffers)
	}
	a.kickShared()
	return again
}

func (s sharedWaitStore) retry(ctx context.Context, w *waiter) {
	a := s.a
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	if err := a.opts.Shared.ClearTried(sctx, w.c.id); err != nil {
		a.log.Warn("ivr: shared retry", "call_id", w.c.id, "err", err)
	}
	cancel()
	a.kickShared()
}

func (s sharedWaitStore) position(ctx context.Context, w *waiter) int {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	pos, _ := s.a.opts.Shared.Position(sctx, w.c.id)
	return pos
}

func (s sharedWaitStore) leave(ctx context.Context, w *waiter) {
	a := s.a
	lctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	if err := a.opts.Shared.Leave(lctx, w.c.id); err != nil {
		a.log.Warn("ivr: take the call out of the shared queue (the next round releases it)", "call_id", w.c.id, "err", err)
	}
	cancel()
	s.forget(w)
	a.kickShared()
}

// sharedAgentFree frees an agent after a call of this node: wrap-up timed here.
func (a *ACD) sharedAgentFree(id int64, q *queueRec) {
	a.mu.Lock()
	wrap := q != nil && q.WrapUp > 0 && !a.closed
	a.mu.Unlock()
	ctx, cancel := a.sharedCtx()
	s, err := a.opts.Shared.CallEnded(ctx, id, a.opts.Node, wrap)
	cancel()
	if err != nil {
		a.log.Error("ivr: free the agent in the shared store", "agent_id", id, "err", err)
		return
	}
	a.kickShared()
	if s.State != StateWrapUp {
		return
	}
	seq := s.Seq
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed { // Close came first: nobody times this wrap-up, so it ends now
		go func() {
			ctx, cancel := a.sharedCtx()
			defer cancel()
			if err := a.opts.Shared.WrapUpEnded(ctx, id, seq); err != nil {
				a.log.Warn("ivr: end a wrap-up at close", "agent_id", id, "err", err)
			}
		}()
		return
	}
	if old, ok := a.sh.wraps[id]; ok {
		old.t.Stop()
	}
	var t Timer
	t = a.clock.AfterFunc(q.WrapUp, func() {
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
			a.log.Warn("ivr: end the wrap-up in the shared store", "agent_id", id, "err", err)
		}
		a.kickShared()
	})
	a.sh.wraps[id] = wrapTimer{t: t, seq: seq}
}

// sharedOfferEnded records the end of a direct offer (a transfer to an agent).
func (a *ACD) sharedOfferEnded(ctx context.Context, c *Call, q *queueRec, id int64, r offerResult) (AgentLeg, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	defer a.kickShared()
	if r.err == nil && r.leg != nil && ctx.Err() == nil {
		if _, err := a.opts.Shared.Answered(sctx, id, c.id); err != nil {
			a.log.Error("ivr: record the answer in the shared store", "call_id", c.id, "agent_id", id, "err", err)
		}
		return r.leg, nil
	}
	if r.leg != nil {
		go a.hangupAgent(ctx, r.leg)
	}
	maxMissed := q.MaxMissedOffers
	if ctx.Err() != nil {
		maxMissed = -1 // the caller left: not the agent's miss
	}
	if _, _, err := a.opts.Shared.Missed(sctx, id, c.id, maxMissed); err != nil {
		a.log.Warn("ivr: record the missed offer in the shared store", "call_id", c.id, "agent_id", id, "err", err)
	}
	if r.err == nil {
		r.err = ctx.Err()
	}
	return nil, fmt.Errorf("ivr: transfer to agent %d: %w", id, r.err)
}
