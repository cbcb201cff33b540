package ivr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Queue callbacks: a caller waiting in a queue whose Callback.Key is set hears, after please
// hold, how to ask for a callback (the callback_offer prompt); pressing the key ends their wait
// on the line but not in the queue. The waiting entry keeps its place (the same waiter, in the
// ACD's memory or the cluster's shared store); the caller hears callback_confirm, the call
// emits call.callback_requested and ends with outcome callback. From then on a goroutine of the
// ACD (callbackRun), not the call's, owns the waiter: when dispatch pairs it with an agent, the
// agent is offered the callback (Offer.Callback: the page says so); once the agent accepts, the
// CallbackDialer calls the caller through the trunk and bridges them to the agent. A caller who
// does not answer is tried again, Attempts times in all, RetryDelay apart, the entry going back
// into the queue between attempts at the place the caller first had (ahead of the calls that
// came after the request); after the last attempt the callback is dropped
// (call.callback_dropped, emitted by the dialer on that attempt's call).
//
// With a CallbackStore (SetCallbackStore: PostgreSQL, ivr/acdpg) a pending callback is kept
// outside the node's memory too: saved when it is requested and after every unanswered attempt,
// removed when it is answered or dropped. The node's next start takes its pending callbacks up
// again (ResumeCallbacks), at their place; a surviving node of a cluster takes over those of a
// lost node (TakeOverCallbacks). A callback that cannot be taken up again (its queue is gone,
// its attempts are spent) is dropped with call.callback_dropped and a reason (CallbackDropper),
// never silently. Before each attempt the node checks the callback is still its own: a node
// cut off from the cluster and counted lost stops, the survivor runs the callback.
//
// Goroutines: the call's goroutine hands the waiter over (startCallback) and returns; each
// callback then runs on its own goroutine until it is done, dropped, or the ACD closes
// (CloseCallbacks cancels them and waits). Nothing is called with ACD.mu held; callbacks.mu
// guards only the set of running callbacks.

// Defaults of QueueCallback.
const (
	DefaultCallbackAttempts   = 3
	DefaultCallbackRetryDelay = 60 * time.Second
	// MaxCallbackAttempts bounds Attempts.
	MaxCallbackAttempts = 10
)

// Prompts of queue callbacks (built in, English and French; the built-in callback_offer says
// "press 1": a queue with another key needs its own callback_offer prompt).
const (
	PromptCallbackOffer   = "callback_offer"
	PromptCallbackConfirm = "callback_confirm"
)

// QueueCallback configures a queue's callbacks. The zero value is off.
type QueueCallback struct {
	// Key is the key (0-9, *, #) a waiting caller presses to be called back ("" off).
	Key string
	// Attempts is how many times the caller is dialled before the callback is dropped
	// (0: DefaultCallbackAttempts; at most MaxCallbackAttempts).
	Attempts int
	// RetryDelay is the pause after an unanswered attempt before the callback is offered to an
	// agent again (0: DefaultCallbackRetryDelay).
	RetryDelay time.Duration
}

func (cb QueueCallback) attempts() int {
	switch {
	case cb.Attempts <= 0:
		return DefaultCallbackAttempts
	case cb.Attempts > MaxCallbackAttempts:
		return MaxCallbackAttempts
	}
	return cb.Attempts
}

func (cb QueueCallback) retryDelay() time.Duration {
	if cb.RetryDelay <= 0 {
		return DefaultCallbackRetryDelay
	}
	return cb.RetryDelay
}

// CallbackRequest is one attempt at calling a caller back.
type CallbackRequest struct {
	// CallID is the call whose caller asked to be called back (call.started's callback_of).
	CallID string
	Queue  string
	// To is the caller's number, Line the line they called (the callback's caller ID).
	To, Line string
	Language string
	// AgentID is the agent who accepted the callback.
	AgentID int64
	// Attempt is this attempt's number (from 1), Attempts the most there will be: the dialer
	// emits call.callback_dropped when the last one is not answered.
	Attempt, Attempts int
	// Connected, set by the ACD, is how the dialer hands over the caller once they answered:
	// caller is their leg on the callback's own call (its CallID that call's id), events that
	// call's event sequence. The ACD bridges them to the agent and serves the call as any
	// queued call — hold, resume, blind and consult transfers, conference, supervision — until
	// it is over, and returns what it ended with (hold time, outcome). The agent's leg is then
	// the ACD's: hung up and freed by it. A dialer that leaves Connected unused bridges the
	// agent itself (the callback is then reachable by nothing of call control).
	Connected func(ctx context.Context, caller Leg, events Events) Result
}

// ErrCallbackNotAnswered is what a CallbackDialer returns (wrapped or not) when the caller did
// not answer the callback; any other error counts as a failed attempt all the same.
var ErrCallbackNotAnswered = errors.New("ivr: the caller did not answer the callback")

// CallbackDialer calls callers back. sip implements it over the trunk (an outbound call, its
// own call id and events, joining the caller's ticket).
type CallbackDialer interface {
	// DialCallback calls r.To and bridges the answer to agent (the agent accepted already). It
	// returns once the callback is over: nil when the caller answered (the conversation has
	// ended), an error when they did not. Cancelling ctx ends the attempt (a CANCEL or a BYE).
	DialCallback(ctx context.Context, r CallbackRequest, agent AgentLeg) error
}

// CallbackChecker is optionally implemented by a CallbackDialer that refuses some numbers (the
// outbound trunk's destination rules: a caller ID can be forged, and a callback must not dial a
// premium-rate number for whoever forged it). A refused caller's key press is ignored: they
// wait on the line as before.
type CallbackChecker interface {
	CallbackAllowed(to string) error
}

// callbackNumber reports whether n looks like an E.164 number (a callback needs one: an
// anonymous or malformed caller ID cannot be called back).
func callbackNumber(n string) bool {
	if len(n) < 3 || len(n) > 16 || n[0] != '+' {
		return false
	}
	for _, r := range n[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// PendingCallback is a callback waiting for an agent or for its next attempt, as a
// CallbackStore keeps it.
type PendingCallback struct {
	CallID, Queue string
	// Node is the node that runs the callback.
	Node string
	// From is the caller's number (E.164), CallerName their name, Line the line they called.
	From, CallerName, Line string
	Language, MenuPath     string
	// Place orders the callback in its queue (lower first): the place the caller's waiting
	// entry had, kept across retries, restarts and take-overs.
	Place uint64
	// Enqueued is when the caller joined the queue.
	Enqueued time.Time
	// Attempt is how many attempts were made.
	Attempt int
}

// ErrCallbackTaken is what CallbackStore.Save returns when another node took the callback over
// (this node was counted lost): this node stops running it.
var ErrCallbackTaken = errors.New("ivr: the callback was taken over by another node")

// CallbackStore keeps pending callbacks outside the node's memory (ivr/acdpg on PostgreSQL).
// Every method talks to the database; the ACD never calls one with a lock held.
type CallbackStore interface {
	// Save records p as p.Node's: a new callback, or one whose attempts changed. It returns the
	// callback's place: with queues shared in the cluster, the place of the caller's waiting
	// entry there (the store's order), else p.Place. ErrCallbackTaken when the callback is
	// another node's now.
	Save(ctx context.Context, p PendingCallback) (uint64, error)
	// Done removes a callback answered or dropped.
	Done(ctx context.Context, callID string) error
	// Pending returns node's callbacks, by place.
	Pending(ctx context.Context, node string) ([]PendingCallback, error)
	// TakeOver makes the callbacks of the lost node node's own and returns them, by place.
	TakeOver(ctx context.Context, lost, node string) ([]PendingCallback, error)
}

// CallbackDropper is optionally implemented by a CallbackDialer: it reports a callback dropped
// without an attempt to carry the event (call.callback_dropped on the caller's call, with the
// reason: callevent.CallbackDrop*).
type CallbackDropper interface {
	DropCallback(ctx context.Context, r CallbackRequest, reason string) error
}

// callbacks are the ACD's running callbacks.
type callbacks struct {
	dialer CallbackDialer
	store  CallbackStore // nil: callbacks live in memory only
	node   string
	mu     sync.Mutex
	ctx    context.Context // nil until the first callback; cancelled by CloseCallbacks
	cancel context.CancelFunc
	closed bool
	wg     sync.WaitGroup
}

// SetCallbackDialer sets the dialer of queue callbacks. Without one, no caller is offered a
// callback (the key does nothing and the prompt is not played). Call it before calls arrive.
func (a *ACD) SetCallbackDialer(d CallbackDialer) {
	a.cb.mu.Lock()
	a.cb.dialer = d
	a.cb.mu.Unlock()
}

// SetCallbackStore keeps pending callbacks in st as node's (see ResumeCallbacks). Call it
// before calls arrive.
func (a *ACD) SetCallbackStore(st CallbackStore, node string) {
	a.cb.mu.Lock()
	a.cb.store, a.cb.node = st, node
	a.cb.mu.Unlock()
}

// callbackKey is the key the caller of q may press, "" when callbacks are off there.
func (a *ACD) callbackKey(q *queueRec) string {
	a.cb.mu.Lock()
	defer a.cb.mu.Unlock()
	if a.cb.dialer == nil || a.cb.closed {
		return ""
	}
	return q.Callback.Key
}

// CloseCallbacks ends the running callbacks (an attempt in progress is hung up) and waits for
// their goroutines. A later key press is ignored.
func (a *ACD) CloseCallbacks() {
	a.cb.mu.Lock()
	a.cb.closed = true
	cancel := a.cb.cancel
	a.cb.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	a.cb.wg.Wait()
}

// startCallback hands the waiter w (still in its queue) to a goroutine of its own, which
// serves the callback from there. It reports false when the ACD is closing (the call then
// waits on as before).
func (a *ACD) startCallback(w *waiter, st waitStore) bool {
	ctx, d, ok := a.cbBegin()
	if !ok {
		return false
	}
	refuse := ""
	if !callbackNumber(w.c.info.From) {
		refuse = "the caller's number cannot be called back (anonymous or not E.164)"
	} else if ch, ok := d.(CallbackChecker); ok {
		if err := ch.CallbackAllowed(w.c.info.From); err != nil {
			refuse = err.Error()
		}
	}
	if refuse != "" {
		a.cb.wg.Done()
		a.log.Info("ivr: callback key ignored; the caller waits on", "call_id", w.c.id, "queue", w.q.Name, "reason", refuse)
		return false
	}
	go func() {
		defer a.cb.wg.Done()
		if w.place == 0 {
			w.place = w.seq // in memory: the order the call was given
		}
		a.cbSave(ctx, w, 0, true)
		a.callbackRun(ctx, d, w, st, 1)
	}()
	return true
}

// cbBegin counts a callback goroutine in (the caller runs it, then calls a.cb.wg.Done) and
// returns the context and dialer of callbacks; ok is false when the ACD is closing or has no
// dialer.
func (a *ACD) cbBegin() (context.Context, CallbackDialer, bool) {
	a.cb.mu.Lock()
	defer a.cb.mu.Unlock()
	if a.cb.closed || a.cb.dialer == nil {
		return nil, nil, false
	}
	if a.cb.ctx == nil {
		a.cb.ctx, a.cb.cancel = context.WithCancel(context.Background())
	}
	a.cb.wg.Add(1)
	return a.cb.ctx, a.cb.dialer, true
}

func (a *ACD) cbStore() (CallbackStore, string) {
	a.cb.mu.Lock()
	defer a.cb.mu.Unlock()
	return a.cb.store, a.cb.node
}

// pendingOf is w's callback as the store keeps it, attempts made.
func (a *ACD) pendingOf(w *waiter, node string, attempts int) PendingCallback {
	c := w.c
	return PendingCallback{CallID: c.id, Queue: w.q.Name, Node: node, From: c.info.From, CallerName: c.info.CallerName,
		Line: c.info.Line, Language: c.Language(), MenuPath: c.MenuPath(), Place: w.place, Enqueued: w.enqueued, Attempt: attempts}
}

// cbSave records w's callback (attempts made) in the store, if any. first: the request, whose
// place the store gives (the shared queue's). It returns ErrCallbackTaken when another node runs
// the callback now; any other failure is logged (the callback runs on in memory).
func (a *ACD) cbSave(ctx context.Context, w *waiter, attempts int, first bool) error {
	store, node := a.cbStore()
	if store == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	place, err := store.Save(sctx, a.pendingOf(w, node, attempts))
	switch {
	case errors.Is(err, ErrCallbackTaken):
		return err
	case err != nil:
		a.log.Warn("ivr: keep the queue callback in the database failed; it lives in this node's memory until it is saved again",
			"call_id", w.c.id, "queue", w.q.Name, "err", err)
	case first && place != 0:
		w.place = place
	}
	return nil
}

// cbDone removes w's callback from the store (answered or dropped).
func (a *ACD) cbDone(ctx context.Context, callID string) {
	store, _ := a.cbStore()
	if store == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	if err := store.Done(sctx, callID); err != nil {
		a.log.Error("ivr: remove the finished queue callback from the database failed; the next start would call the caller again",
			"call_id", callID, "err", err)
	}
}

// ResumeCallbacks takes up this node's pending callbacks (SetCallbackStore) from the store: a
// restart keeps them, at their places. Call it once at start, after SetCallbackDialer and
// before calls arrive, so that they keep their places ahead of the calls that come next.
func (a *ACD) ResumeCallbacks(ctx context.Context) error {
	store, node := a.cbStore()
	if store == nil {
		return nil
	}
	ps, err := store.Pending(ctx, node)
	if err != nil {
		return fmt.Errorf("ivr: resume the queue callbacks: %w", err)
	}
	if len(ps) > 0 {
		a.log.Info("ivr: queue callbacks taken up again after the restart", "callbacks", len(ps))
	}
	for _, p := range ps {
		a.resumeCallback(p, "")
	}
	return nil
}

// TakeOverCallbacks makes the pending callbacks of the lost node this node's and runs them, at
// their places (the cluster's node-loss handling calls it on the one surviving node that swept
// the loss).
func (a *ACD) TakeOverCallbacks(ctx context.Context, lost string) error {
	store, node := a.cbStore()
	if store == nil || lost == node {
		return nil
	}
	ps, err := store.TakeOver(ctx, lost, node)
	if err != nil {
		return fmt.Errorf("ivr: take over the queue callbacks of node %s: %w", lost, err)
	}
	if len(ps) > 0 {
		a.log.Warn("ivr: node lost: its queue callbacks are taken over here", "lost_node", lost, "callbacks", len(ps))
	}
	for _, p := range ps {
		a.resumeCallback(p, lost)
	}
	return nil
}

// resumeCallback runs a callback read from the store: back in its queue at its place, the
// attempts it has left. One that cannot be run is dropped with a reason.
func (a *ACD) resumeCallback(p PendingCallback, lost string) {
	a.mu.Lock()
	q := a.queues[p.Queue]
	a.mu.Unlock()
	ctx, d, ok := a.cbBegin()
	if !ok {
		return // closing: the store keeps it for the next start
	}
	defer a.cb.wg.Done()
	c := &Call{id: p.CallID, info: CallInfo{From: p.From, CallerName: p.CallerName, Line: p.Line}, lang: p.Language,
		digits: make(chan rune)}
	if p.MenuPath != "" {
		c.path = strings.Split(p.MenuPath, ">")
	}
	reason := ""
	switch {
	case q == nil:
		reason = callevent.CallbackDropQueueGone
	case p.Attempt >= q.Callback.attempts():
		reason = callevent.CallbackDropNotAnswered
	}
	if reason != "" {
		a.dropCallback(ctx, d, p, reason)
		return
	}
	var st waitStore = memWait{a}
	if a.opts.Shared != nil {
		st = sharedWaitStore{a}
	}
	w := &waiter{c: c, q: q, place: p.Place, enqueued: p.Enqueued, claims: make(chan Claim, 1), retry: make(chan struct{}, 1),
		tried: map[int64]bool{}}
	a.log.Info("ivr: queue callback taken up", "call_id", p.CallID, "queue", p.Queue, "attempts_made", p.Attempt,
		"from_node", lost)
	a.cb.wg.Add(1)
	go func() {
		defer a.cb.wg.Done()
		st.enqueue(context.WithoutCancel(ctx), w, false)
		a.callbackRun(ctx, d, w, st, p.Attempt+1)
	}()
}

// dropCallback gives up a pending callback that cannot be run: the dialer emits
// call.callback_dropped with the reason on the caller's call, and the store forgets it.
func (a *ACD) dropCallback(ctx context.Context, d CallbackDialer, p PendingCallback, reason string) {
	a.log.Warn("ivr: queue callback dropped", "call_id", p.CallID, "queue", p.Queue, "reason", reason, "attempts_made", p.Attempt)
	if dr, ok := d.(CallbackDropper); ok {
		r := CallbackRequest{CallID: p.CallID, Queue: p.Queue, To: p.From, Line: p.Line, Language: p.Language,
			Attempt: max(p.Attempt, 1), Attempts: max(p.Attempt, 1)}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
		err := dr.DropCallback(sctx, r, reason)
		cancel()
		if err != nil {
			a.log.Error("ivr: report the dropped queue callback", "call_id", p.CallID, "reason", reason, "err", err)
		}
	}
	a.cbDone(ctx, p.CallID)
}

// callbackRun serves one callback from attempt first on: offers to agents, the attempts, the
// retries. A callback cut short by the ACD's close stays in the store for the next start.
func (a *ACD) callbackRun(ctx context.Context, d CallbackDialer, w *waiter, st waitStore, first int) {
	c, q := w.c, w.q
	max := q.Callback.attempts()
	bg := context.WithoutCancel(ctx)
	for attempt := first; attempt <= max; attempt++ {
		id, leg, ok := a.callbackOffer(ctx, w, st)
		if !ok {
			return // the ACD is closing: the entry left its queue
		}
		if err := a.cbSave(ctx, w, attempt-1, false); err != nil {
			// Counted lost while it ran: the survivor that took it over calls the caller.
			a.log.Warn("ivr: queue callback taken over by another node; this node stops it", "call_id", c.id, "queue", q.Name)
			a.hangupAgent(bg, leg)
			a.agentFree(id, q)
			return
		}
		req := CallbackRequest{CallID: c.id, Queue: q.Name, To: c.info.From, Line: c.info.Line, Language: c.Language(),
			AgentID: id, Attempt: attempt, Attempts: max}
		var served atomic.Bool // set on the dialer's goroutine; read once DialCallback returned
		req.Connected = func(cctx context.Context, caller Leg, ev Events) Result {
			served.Store(true)
			return a.serveCallback(cctx, w, caller, ev, id, leg)
		}
		err := d.DialCallback(ctx, req, leg)
		if !served.Load() {
			a.hangupAgent(bg, leg)
			a.agentFree(id, q)
		}
		if err == nil {
			a.log.Info("ivr: queue callback answered", "call_id", c.id, "queue", q.Name, "agent_id", id, "attempt", attempt)
			a.cbDone(ctx, c.id)
			return
		}
		if ctx.Err() != nil {
			return // closing: the attempt was cut short, not counted; the next start tries again
		}
		if attempt == max {
			a.log.Info("ivr: queue callback dropped: the caller did not answer", "call_id", c.id, "queue", q.Name,
				"attempts", attempt, "error", err)
			a.cbDone(ctx, c.id)
			return
		}
		a.log.Info("ivr: queue callback not answered; retrying", "call_id", c.id, "queue", q.Name, "attempt", attempt,
			"retry_in", q.Callback.retryDelay(), "error", err)
		if err := a.cbSave(ctx, w, attempt, false); err != nil {
			a.log.Warn("ivr: queue callback taken over by another node; this node stops it", "call_id", c.id, "queue", q.Name)
			return
		}
		t := a.clock.NewTimer(q.Callback.retryDelay())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		// Back in the queue: a fresh waiter for the same call, at the place the caller had
		// (ahead of the calls that came after the request).
		w = &waiter{c: c, q: q, place: w.place, enqueued: w.enqueued, claims: make(chan Claim, 1), retry: make(chan struct{}, 1),
			tried: map[int64]bool{}}
		st.enqueue(bg, w, false)
	}
}

// callbackOffer waits for the callback's turn and offers it to agents until one accepts: it
// returns the agent and their answered leg, the waiter out of its queue and the agent busy on
// it. ok is false when ctx ended first (the waiter left its queue).
func (a *ACD) callbackOffer(ctx context.Context, w *waiter, st waitStore) (int64, AgentLeg, bool) {
	c, q := w.c, w.q
	bg := context.WithoutCancel(ctx)
	var retry Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	armRetry := func() {
		if retryC == nil {
			retry = a.clock.NewTimer(q.RetryDelay)
			retryC = retry.C()
		}
	}
	// The call's goroutine may have been waiting to retry agents who missed the call: their
	// second chance comes after the queue's RetryDelay here as well.
	armRetry()
	for range 1 << 20 { // bounded: every turn is an event of this callback
		select {
		case <-ctx.Done():
			st.leave(bg, w)
			return 0, nil, false
		case <-w.retry:
			armRetry()
		case <-retryC:
			retryC = nil
			st.retry(bg, w)
		case cl := <-w.claims:
			offer := c.offerTo(q, cl.AgentID, a.offerNode(cl.Node))
			offer.Callback = true
			leg, err := a.ringOnce(ctx, offer, q.RingTimeout)
			if err == nil && ctx.Err() == nil {
				st.answered(bg, w, cl.AgentID)
				return cl.AgentID, leg, true
			}
			if leg != nil {
				a.hangupAgent(bg, leg) // accepted as the ACD closed
			}
			if st.missed(bg, w, cl.AgentID, false) {
				armRetry()
			}
		}
	}
	st.leave(bg, w)
	return 0, nil, false
}

// ringOnce offers o to its agent for ring (ringAgent), and returns the agent's leg when they
// accepted; a leg that came with an error is hung up.
func (a *ACD) ringOnce(ctx context.Context, o Offer, ring time.Duration) (AgentLeg, error) {
	r := a.ringAgent(ctx, o, ring)
	if r.err == nil && r.leg == nil {
		r.err = ErrNoAnswer
	}
	if r.err != nil && r.leg != nil {
		a.hangupAgent(context.WithoutCancel(ctx), r.leg)
		r.leg = nil
	}
	return r.leg, r.err
}

// serveCallback serves a queue callback whose caller answered (CallbackRequest.Connected): the
// caller's leg on the callback's own call, connected to agent id (leg), as a call of w's queue
// — the talk loop of every queued call, so hold, resume, transfers, consults, conferences and
// supervision reach it, by the callback call's id or by the id of the call called back. A
// transfer to a queue that overflows ends the callback (the ACD runs no IVR targets: the
// caller is hung up, logged).
func (a *ACD) serveCallback(ctx context.Context, w *waiter, caller Leg, ev Events, id int64, leg AgentLeg) Result {
	orig := w.c
	orig.mu.Lock()
	lang, path := orig.lang, slices.Clone(orig.path)
	orig.mu.Unlock()
	e := &Engine{opts: Options{Prompts: a.opts.Prompts, Clock: a.clock, Events: noEvents{}}, log: a.log}
	c := &Call{e: e, leg: caller, id: caller.CallID(), callbackOf: orig.id, lang: lang, path: path,
		info:   CallInfo{From: orig.info.From, CallerName: orig.info.CallerName, Line: orig.info.Line, Events: ev},
		digits: make(chan rune, defaultDigitBuffer)}
	res, next := a.serveFrom(ctx, c, w.q.Name, &connected{agentID: id, leg: leg})
	if next != nil {
		a.log.Warn("ivr: queue callback transferred to a queue that overflowed; the caller is hung up (no IVR target runs for a callback)",
			"call_id", c.id, "callback_of", orig.id, "overflow", next.String())
		res = Result{Kind: ResultHangup, Outcome: callevent.OutcomeAnswered}
	}
	return res
}

// callbackChosen ends the call's wait by a callback: the confirmation, call.callback_requested,
// and the result the call ends with (outcome callback).
func (c *Call) callbackChosen(ctx context.Context, q *queueRec) Result {
	c.emit(callevent.Event{Type: callevent.EventCallbackRequested, Queue: q.Name})
	_ = c.playAll(ctx, PromptCallbackConfirm)
	return Result{Kind: ResultHangup, Outcome: callevent.OutcomeCallback}
}

// callbackDigit reads a key from the call's digit stream for a waiting caller: the stream when
// q takes callbacks, nil (never ready) otherwise.
func (a *ACD) callbackDigits(c *Call, q *queueRec) (<-chan rune, string) {
	key := a.callbackKey(q)
	if key == "" || c.callbackOf != "" { // a callback transferred to a queue: no digits reach it
		return nil, ""
	}
	return c.digits, key
}
