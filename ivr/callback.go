package ivr

import (
	"context"
	"errors"
	"sync"
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
// into the queue between attempts (behind the calls waiting then); after the last attempt the
// callback is dropped (call.callback_dropped, emitted by the dialer on that attempt's call).
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

// callbacks are the ACD's running callbacks.
type callbacks struct {
	dialer CallbackDialer
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
	a.cb.mu.Lock()
	if a.cb.closed || a.cb.dialer == nil {
		a.cb.mu.Unlock()
		return false
	}
	if a.cb.ctx == nil {
		a.cb.ctx, a.cb.cancel = context.WithCancel(context.Background())
	}
	ctx, d := a.cb.ctx, a.cb.dialer
	a.cb.wg.Add(1)
	a.cb.mu.Unlock()
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
		a.callbackRun(ctx, d, w, st)
	}()
	return true
}

// callbackRun serves one callback: offers to agents, the attempts, the retries.
func (a *ACD) callbackRun(ctx context.Context, d CallbackDialer, w *waiter, st waitStore) {
	c, q := w.c, w.q
	max := q.Callback.attempts()
	bg := context.WithoutCancel(ctx)
	for attempt := 1; attempt <= max; attempt++ {
		id, leg, ok := a.callbackOffer(ctx, w, st)
		if !ok {
			return // the ACD is closing: the entry left its queue
		}
		req := CallbackRequest{CallID: c.id, Queue: q.Name, To: c.info.From, Line: c.info.Line, Language: c.Language(),
			AgentID: id, Attempt: attempt, Attempts: max}
		err := d.DialCallback(ctx, req, leg)
		a.hangupAgent(bg, leg)
		a.agentFree(id, q)
		if err == nil {
			a.log.Info("ivr: queue callback answered", "call_id", c.id, "queue", q.Name, "agent_id", id, "attempt", attempt)
			return
		}
		if attempt == max {
			a.log.Info("ivr: queue callback dropped: the caller did not answer", "call_id", c.id, "queue", q.Name,
				"attempts", attempt, "error", err)
			return
		}
		a.log.Info("ivr: queue callback not answered; retrying", "call_id", c.id, "queue", q.Name, "attempt", attempt,
			"retry_in", q.Callback.retryDelay(), "error", err)
		t := a.clock.NewTimer(q.Callback.retryDelay())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		// Back in the queue: a fresh waiter for the same call, behind the calls waiting now.
		w = &waiter{c: c, q: q, enqueued: a.clock.Now(), claims: make(chan Claim, 1), retry: make(chan struct{}, 1), tried: map[int64]bool{}}
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
			offer := Offer{CallID: c.id, AgentID: cl.AgentID, Queue: q.Name, From: c.info.From, CallerName: c.info.CallerName,
				Line: c.info.Line, Language: c.Language(), MenuPath: c.MenuPath(), Node: a.offerNode(cl.Node), Callback: true}
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

// ringOnce offers o to its agent for ring, and returns the agent's leg when they accepted.
func (a *ACD) ringOnce(ctx context.Context, o Offer, ring time.Duration) (AgentLeg, error) {
	t := a.clock.NewTimer(ring)
	defer t.Stop()
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan offerResult, 1)
	go func() {
		leg, err := a.offer(octx, o)
		results <- offerResult{leg, err}
	}()
	var r offerResult
	select {
	case r = <-results:
	case <-t.C():
		cancel()
		r = <-results
	}
	if r.err == nil && r.leg == nil {
		r.err = ErrNoAnswer
	}
	if r.err != nil && r.leg != nil {
		a.hangupAgent(context.WithoutCancel(ctx), r.leg)
		r.leg = nil
	}
	return r.leg, r.err
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
	if key == "" {
		return nil, ""
	}
	return c.digits, key
}
