package ivr

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AgentState is an agent's availability (docs/api.md, PUT /agents/{id}/state).
type AgentState string

// Agent states.
const (
	StateOffline   AgentState = "offline"   // logged out: never offered calls
	StateAvailable AgentState = "available" // offered calls, longest idle first
	StateBusy      AgentState = "busy"      // on a call
	StateWrapUp    AgentState = "wrap_up"   // after a call, for the queue's wrap-up time
	StateAway      AgentState = "away"      // logged in, not taking calls (also after missed offers)
)

// AgentStates lists every state, in the order the API and metrics show them.
var agentStates = [...]AgentState{StateAvailable, StateBusy, StateWrapUp, StateAway, StateOffline}

// Defaults of Queue.
const (
	DefaultRingTimeout   = 15 * time.Second
	DefaultMaxWait       = 120 * time.Second
	DefaultAnnounceEvery = 30 * time.Second
	DefaultRetryDelay    = 2 * time.Second
)

// Agent is one agent of the roster: a ticketing user id (agents exist in the ticketing
// database) and the queues the agent takes calls from.
type Agent struct {
	ID     int64
	Email  string
	Name   string
	Queues []string
	// Priority is the agent's priority in each of its queues (queue name → 1 first … 100
	// last; missing or 0 is DefaultPriority): a call is offered to the available agents of
	// the best priority first, the longest idle of them first.
	Priority map[string]int
}

// DefaultPriority is an agent's priority in a queue that sets none (Agent.Priority).
const DefaultPriority = 1

// priorityIn is the agent's priority in queue q.
func (ag Agent) priorityIn(q string) int {
	if p := ag.Priority[q]; p > 0 {
		return p
	}
	return DefaultPriority
}

// Queue configures one ACD queue.
type Queue struct {
	Name string
	// RingTimeout is how long each agent is offered the call before the next. It cannot be
	// off: 0 takes DefaultRingTimeout (15 s).
	RingTimeout time.Duration
	// MaxWait is the longest a call waits before Overflow. It cannot be off: 0 takes
	// DefaultMaxWait (120 s).
	MaxWait time.Duration
	// Overflow is where a call goes after MaxWait (unset: voicemail).
	Overflow Target
	// Music is played to waiting callers, looped (nil: the built-in music).
	Music *Prompt
	// WrapUp keeps an agent in wrap_up this long after each call (0: none).
	WrapUp time.Duration
	// MaxMissedOffers sets an agent away after this many offers in a row went unanswered
	// (0: never).
	MaxMissedOffers int
	// AnnouncePosition tells waiting callers their place in the queue on entry and every
	// AnnounceEvery (default 30 s).
	AnnouncePosition bool
	AnnounceEvery    time.Duration
	// RetryDelay: a call that every eligible agent missed is offered again after this pause
	// (default 2 s), so an agent whose phone fails at once is not rung in a tight loop.
	RetryDelay time.Duration
	// Callback lets a waiting caller press a key to be called back instead of waiting, keeping
	// their place (callback.go). The zero value is off.
	Callback QueueCallback
}

// ACDOptions configure NewACD.
type ACDOptions struct {
	Queues []Queue
	// Agents is the roster; every agent starts offline.
	Agents []Agent
	// Dialer offers calls to agents (softphone or SIP phone). Required, here or through
	// SetDialer before the first call is queued (the dialers are built from the ACD).
	Dialer AgentDialer
	// Prompts holds please_hold, music, position and num_N (default: the built-in set).
	Prompts *Prompts
	// Clock drives every ACD timer and timestamp (default the real clock).
	Clock Clock
	// Registerer receives switchboard_queue_calls_waiting, switchboard_queue_wait_seconds and
	// switchboard_agents; nil registers nothing.
	Registerer prometheus.Registerer
	// Authorizer authenticates the HTTP API (required for Register).
	Authorizer Authorizer
	// OnAgentState, when set, is told every agent state change (the softphone page shows it,
	// e.g. the automatic away after missed offers). It is called on the ACD's notifier
	// goroutine, never with a lock of the ACD held, one change at a time and in the order the
	// changes happened (AgentStatus.Seq grows from one to the next): it may call the ACD and
	// take its own locks, but it should return promptly, since later changes wait for it.
	OnAgentState func(AgentStatus)
	// Logger; nil discards.
	Logger *slog.Logger

	// Shared, when set, keeps agents, their states and attachments, queue membership and
	// waiting calls in a store the nodes of a cluster share (ivr/acdpg on PostgreSQL) instead
	// of this ACD's memory: a call waiting on this node is offered to an agent attached to any
	// node (Offer.Node), in arrival order across the cluster, to the longest-idle agent of the
	// cluster. Nil: one node, everything in memory.
	Shared SharedStore
	// Node names this node in the shared store (required with Shared).
	Node string
	// Recheck is how often a node with Shared dispatches and reads the shared state when
	// nothing woke it (default DefaultRecheck).
	Recheck time.Duration
}

// ACD is the automatic call distributor: queues of waiting calls and the agents who take them.
// All of its state — agents' states and timestamps, the waiting calls of every queue, the
// offers in flight and the connected calls — is owned by one mutex (mu); calls wait on their
// own goroutines and are handed agents by dispatch, which runs under mu whenever an agent frees
// up or a call arrives. Calls of a queue are served in arrival order (FIFO) and each is offered
// to the longest-idle available agent of its queue.
//
// Nothing outside the ACD is called with mu held: under mu it changes its own fields, sends
// on channels that have room (never blocking), reads and arms timers through the Clock (whose
// contract forbids calling back) and sets its own Prometheus series. The dialer, the agents'
// legs, the event sink, the logger and OnAgentState are called after mu is released — state
// changes through the notifier (notify), which delivers them in order on its own goroutine.
type ACD struct {
	dialer atomic.Pointer[AgentDialer] // Options.Dialer or SetDialer's
	opts   ACDOptions
	clock  Clock
	log    *slog.Logger
	m      *metrics

	mu     sync.Mutex
	agents map[int64]*agentRec
	queues map[string]*queueRec
	seq    uint64
	live   map[string]*session // call id → call connected to an agent
	closed bool

	// stateSeq numbers agent state changes (AgentStatus.Seq).
	stateSeq uint64
	// notes are state changes not yet told to OnAgentState, oldest first; notifying is set
	// while a notifier goroutine delivers them and closed when it exits (see notify).
	notes     []AgentStatus
	notifying chan struct{}

	sh sharedState // with Options.Shared
	cb callbacks   // queue callbacks (callback.go)
}

type agentRec struct {
	Agent
	state     AgentState
	since     time.Time
	seq       uint64 // stateSeq of the last change
	idleSince time.Time
	missed    int
	offering  string     // call being offered to the agent ("" none)
	callID    string     // connected call ("" none)
	after     AgentState // state asked for while busy, applied when the call ends
	wrap      Timer
	// removed: taken off the roster (Apply) while ringing or on a call; the record goes once
	// the agent is free (dropIfRemovedLocked).
	removed bool
}

type queueRec struct {
	Queue
	waiting []*waiter // FIFO by seq
}

// waiter is a call waiting in a queue. Its goroutine (the call's) owns the offer in flight;
// dispatch, under ACD.mu, hands it an agent through assign.
type waiter struct {
	c *Call
	// q is the queue the call waits in (guarded by ACD.mu: Apply moves waiters to the
	// queue's new record when its settings change; the call's goroutine keeps the settings it
	// entered with).
	q   *queueRec
	seq uint64
	// place, when set, is the place a queue callback keeps in its queue (the seq in memory,
	// the shared store's order in a cluster): enqueue puts it back there, not at the end.
	place    uint64
	enqueued time.Time
	retry    chan struct{} // dispatch → waiter: only agents who missed this call are free
	offering int64         // agent being offered (guarded by ACD.mu)
	tried    map[int64]bool

	// claims hands the waiter the agent to offer (capacity 1, at most one in flight): the
	// in-memory dispatch, or with a shared store the loop's claims; claimSeq is the newest
	// shared claim handed (guarded by ACD.mu), so a claim read before it was released is
	// never carried out twice.
	claims   chan Claim
	claimSeq uint64
	// pickups takes the pickups of the call (pickup.go) while it waits, until done closes;
	// both nil for a waiter that is not served by wait.
	pickups chan pickupReq
	done    chan struct{}
}

// SetDialer sets the agent dialer when it could not be given to NewACD: the softphone server
// and the SIP layer that reach agents are themselves built from the ACD. Call it before the
// first call is queued.
func (a *ACD) SetDialer(d AgentDialer) { a.dialer.Store(&d) }

// offer rings one agent through the dialer.
func (a *ACD) offer(ctx context.Context, o Offer) (AgentLeg, error) {
	d := a.dialer.Load()
	if d == nil || *d == nil {
		return nil, fmt.Errorf("ivr: no agent dialer: %w", ErrNoAnswer)
	}
	return (*d).Offer(ctx, o)
}

// NewACD builds the ACD over the roster (every agent offline) and registers its metrics.
func NewACD(opts ACDOptions) (*ACD, error) {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Prompts == nil {
		p, err := NewPrompts(PromptOptions{})
		if err != nil {
			return nil, err
		}
		opts.Prompts = p
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ivr: metrics: %w", err)
	}
	a := &ACD{
		opts: opts, clock: opts.Clock, log: opts.Logger, m: m,
		agents: map[int64]*agentRec{}, queues: map[string]*queueRec{}, live: map[string]*session{},
	}
	qs, ags, err := checkRoster(opts.Queues, opts.Agents)
	if err != nil {
		return nil, fmt.Errorf("ivr: new ACD: %w", err)
	}
	for _, q := range qs {
		a.queues[q.Name] = &queueRec{Queue: q}
		// Every queue's series exist from start at 0 (docs/metrics.md): a dashboard of a
		// fresh gateway reads 0 waiting and an empty histogram, not "no data".
		a.m.waiting.WithLabelValues(q.Name).Set(0)
		a.m.wait.WithLabelValues(q.Name)
	}
	now := a.clock.Now()
	for _, ag := range ags {
		a.agents[ag.ID] = &agentRec{Agent: ag, state: StateOffline, since: now}
	}
	a.publishLocked()
	if opts.Dialer != nil {
		a.SetDialer(opts.Dialer)
	}
	if opts.Shared != nil {
		if opts.Node == "" {
			return nil, fmt.Errorf("ivr: new ACD: a shared store needs the node's name")
		}
		if opts.Recheck <= 0 {
			a.opts.Recheck = DefaultRecheck
		}
		a.startShared()
	}
	return a, nil
}

func (a *ACD) hasQueue(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.queues[name]
	return ok
}

// Close stops wrap-up timers and waits until OnAgentState has been told every state change
// made before it (so it must not be called from OnAgentState). Calls still waiting are not
// affected.
func (a *ACD) Close() {
	a.mu.Lock()
	a.closed = true
	for _, ag := range a.agents {
		if ag.wrap != nil {
			ag.wrap.Stop()
			ag.wrap = nil
		}
	}
	// A wrap-up this node timed ends now in the shared store: no node would end it otherwise
	// (this node's next start would).
	wraps := map[int64]uint64{}
	for id, w := range a.sh.wraps {
		w.t.Stop()
		wraps[id] = w.seq
		delete(a.sh.wraps, id)
	}
	done := a.notifying
	a.mu.Unlock()
	for id, seq := range wraps {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := a.opts.Shared.WrapUpEnded(ctx, id, seq); err != nil {
			a.log.Warn("ivr: end a wrap-up at close", "agent_id", id, "err", err)
		}
		cancel()
	}
	a.CloseCallbacks()
	a.stopShared()
	if done != nil {
		<-done
	}
}

// AgentStatus is a snapshot of one agent.
type AgentStatus struct {
	Agent
	State AgentState
	Since time.Time
	// CallID is the call the agent is on ("" none); Offering the call ringing the agent.
	CallID   string
	Offering string
	// MissedOffers counts offers missed in a row.
	MissedOffers int
	// Node is the gateway node the agent is attached to (its page, else its SIP phone) when
	// the ACD's state is shared by a cluster; empty otherwise.
	Node string
	// CallNode is the node that owns the call the agent is on or is offered (its caller's
	// media: where a supervisor's audio is mixed in) when the ACD's state is shared by a
	// cluster; empty otherwise.
	CallNode string
	// Seq orders snapshots of one agent: every state change gets a larger one, so of two
	// statuses of the same agent the one with the larger Seq is the newer (a reader that gets
	// statuses by several paths — OnAgentState, Agent, SetState — keeps the largest).
	Seq uint64
}

// Agent returns one agent's status.
func (a *ACD) Agent(id int64) (AgentStatus, error) {
	if a.opts.Shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		return a.opts.Shared.Agent(ctx, id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ag, ok := a.agents[id]
	if !ok {
		return AgentStatus{}, fmt.Errorf("%w: %d", ErrUnknownAgent, id)
	}
	return ag.status(), nil
}

func (ag *agentRec) status() AgentStatus {
	s := AgentStatus{Agent: ag.Agent, State: ag.state, Since: ag.since, CallID: ag.callID, Offering: ag.offering, MissedOffers: ag.missed, Seq: ag.seq}
	s.Queues = slices.Clone(ag.Queues)
	s.Priority = maps.Clone(ag.Priority)
	return s
}

// Agents returns every agent's status, by id.
func (a *ACD) Agents() []AgentStatus {
	if a.opts.Shared != nil {
		as, err := a.sharedAgents()
		if err != nil {
			a.log.Warn("ivr: shared agents: showing the last known states", "err", err)
		}
		return as
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AgentStatus, 0, len(a.agents))
	for _, ag := range a.agents {
		out = append(out, ag.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// QueueStatus is a snapshot of one queue.
type QueueStatus struct {
	Name string
	// Waiting is how many calls wait; LongestWait how long the first has.
	Waiting     int
	LongestWait time.Duration
	// Agents counts the queue's agents by state.
	Agents map[AgentState]int
}

// Queues returns every queue's status, by name.
func (a *ACD) Queues() []QueueStatus {
	if a.opts.Shared != nil {
		qs, err := a.sharedQueues()
		if err != nil {
			a.log.Warn("ivr: shared queues", "err", err)
		}
		return qs
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock.Now()
	out := make([]QueueStatus, 0, len(a.queues))
	for _, q := range a.queues {
		s := QueueStatus{Name: q.Name, Waiting: len(q.waiting), Agents: map[AgentState]int{}}
		for _, st := range agentStates {
			s.Agents[st] = 0
		}
		if len(q.waiting) > 0 {
			s.LongestWait = now.Sub(q.waiting[0].enqueued)
		}
		for _, ag := range a.agents {
			if slices.Contains(ag.Queues, q.Name) {
				s.Agents[ag.state]++
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SetState sets an agent's chosen state: available, away or offline (busy and wrap_up are
// the ACD's own: ErrBadState). While the agent is on a call the choice is kept and applied when
// the call ends (instead of wrap-up); during wrap-up it applies at once, so "available" ends
// wrap-up early. Going available resets the missed-offers count and starts the idle time.
// It returns the agent's status after the change.
func (a *ACD) SetState(id int64, st AgentState) (AgentStatus, error) {
	switch st {
	case StateAvailable, StateAway, StateOffline:
	default:
		return AgentStatus{}, fmt.Errorf("%w: %q (choose available, away or offline)", ErrBadState, st)
	}
	if a.opts.Shared != nil {
		return a.sharedSetState(id, st)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ag, ok := a.agents[id]
	if !ok {
		return AgentStatus{}, fmt.Errorf("%w: %d", ErrUnknownAgent, id)
	}
	if ag.state == StateBusy {
		ag.after = st
		return ag.status(), nil
	}
	if ag.state == st {
		return ag.status(), nil
	}
	a.setStateLocked(ag, st)
	if st == StateAvailable {
		a.dispatchLocked()
	}
	return ag.status(), nil
}

// setStateLocked moves an agent to st now.
func (a *ACD) setStateLocked(ag *agentRec, st AgentState) {
	now := a.clock.Now()
	if ag.wrap != nil {
		ag.wrap.Stop()
		ag.wrap = nil
	}
	if st == StateAvailable && ag.state != StateAvailable {
		ag.idleSince = now
		ag.missed = 0
		// Back from away, a call, or wrap-up: offered again to calls it missed before.
		for _, q := range a.queues {
			for _, w := range q.waiting {
				delete(w.tried, ag.ID)
			}
		}
	}
	a.stateSeq++
	ag.state, ag.since, ag.seq = st, now, a.stateSeq
	a.publishLocked()
	if a.opts.OnAgentState != nil {
		a.notes = append(a.notes, ag.status())
		if a.notifying == nil {
			done := make(chan struct{})
			a.notifying = done
			go a.notify(done)
		}
	}
}

// notify tells OnAgentState the queued state changes, oldest first, without holding mu: the
// hook may call the ACD, and may take locks of its own that other goroutines hold while they
// call the ACD (the softphone page's server does both). At most one notifier runs at a time —
// the next is started only after this one found the queue empty under mu — so changes are
// told in the order they happened and a page never ends on a stale state. The goroutine
// exits, closing done, once the queue is empty: an idle ACD runs none.
func (a *ACD) notify(done chan struct{}) {
	defer close(done)
	for {
		a.mu.Lock()
		batch := a.notes
		a.notes = nil
		if len(batch) == 0 {
			a.notifying = nil
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		for _, st := range batch {
			a.opts.OnAgentState(st)
		}
	}
}

// callEndedLocked frees an agent after a call: the state asked for meanwhile, else wrap-up,
// else available.
func (a *ACD) callEndedLocked(ag *agentRec, q *queueRec) {
	ag.callID = ""
	switch {
	case ag.removed: // taken off the roster during the call: gone now
		ag.after = ""
		a.setStateLocked(ag, StateOffline)
		a.dropIfRemovedLocked(ag)
	case ag.after != "":
		st := ag.after
		ag.after = ""
		a.setStateLocked(ag, st)
	case q != nil && q.WrapUp > 0 && !a.closed:
		a.setStateLocked(ag, StateWrapUp)
		var t Timer
		t = a.clock.AfterFunc(q.WrapUp, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if ag.wrap != t || ag.state != StateWrapUp {
				return // stopped, or replaced by a state the agent chose
			}
			ag.wrap = nil
			a.setStateLocked(ag, StateAvailable)
			a.dispatchLocked()
		})
		ag.wrap = t
		return
	default:
		a.setStateLocked(ag, StateAvailable)
	}
	a.dispatchLocked()
}

// dispatchLocked hands free agents to waiting calls: calls in arrival order (across queues),
// each to the longest-idle available agent of its queue that it was not offered to yet in this
// round. A call whose remaining agents all missed it is told to retry after a pause.
func (a *ACD) dispatchLocked() {
	var ws []*waiter
	for _, q := range a.queues {
		for _, w := range q.waiting {
			if w.offering == 0 {
				ws = append(ws, w)
			}
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].seq < ws[j].seq })
	for _, w := range ws {
		var best *agentRec
		triedFree := false
		qn := w.q.Name
		for _, ag := range a.agents {
			if ag.state != StateAvailable || ag.offering != "" || !slices.Contains(ag.Queues, qn) {
				continue
			}
			if w.tried[ag.ID] {
				triedFree = true
				continue
			}
			if best == nil || better(ag, best, qn) {
				best = ag
			}
		}
		if best == nil {
			if triedFree {
				select {
				case w.retry <- struct{}{}:
				default:
				}
			}
			continue
		}
		best.offering = w.c.id
		w.offering = best.ID
		w.tried[best.ID] = true
		w.claims <- Claim{CallID: w.c.id, AgentID: best.ID} // capacity 1 and at most one offer per waiter: never blocks
	}
}

// better reports whether ag is offered a call of queue q before cur: the better priority in
// q, then the longer idle, then the lower id (a stable order).
func better(ag, cur *agentRec, q string) bool {
	if p, c := ag.priorityIn(q), cur.priorityIn(q); p != c {
		return p < c
	}
	if !ag.idleSince.Equal(cur.idleSince) {
		return ag.idleSince.Before(cur.idleSince)
	}
	return ag.ID < cur.ID
}

// positionLocked is w's 1-based place in its queue.
func (a *ACD) positionLocked(w *waiter) int {
	for i, o := range w.q.waiting {
		if o == w {
			return i + 1
		}
	}
	return 0
}

func (a *ACD) removeLocked(w *waiter) {
	q := w.q
	for i, o := range q.waiting {
		if o == w {
			q.waiting = slices.Delete(q.waiting, i, i+1)
			a.m.waiting.WithLabelValues(q.Name).Set(float64(len(q.waiting)))
			a.m.wait.WithLabelValues(q.Name).Observe(a.clock.Now().Sub(w.enqueued).Seconds())
			return
		}
	}
}

// publishLocked sets switchboard_agents{state}.
func (a *ACD) publishLocked() {
	counts := map[AgentState]int{}
	for _, ag := range a.agents {
		counts[ag.state]++
	}
	for _, st := range agentStates {
		a.m.agents.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
}
