package ivr

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// offerResult is what an AgentDialer.Offer came back with.
type offerResult struct {
	leg AgentLeg
	err error
}

type waitOutcome int

const (
	waitAbandoned waitOutcome = iota // the caller hung up
	waitOverflow                     // MaxWait passed
	waitConnected                    // an agent answered
	waitCallback                     // the caller asked to be called back (callback.go)
)

// maxQueueHops bounds transfers from queue to queue within one call.
const maxQueueHops = 16

// hangupBudget bounds hanging up an agent's leg once the call is over.
const hangupBudget = 5 * time.Second

// serve runs the call through queue name: wait, offers, the conversation, transfers. It
// returns either a final Result or the next target (overflow).
func (a *ACD) serve(ctx context.Context, c *Call, name string) (Result, *Target) {
	return a.serveFrom(ctx, c, name, nil)
}

// connected is an agent connected to a call already when serveFrom starts: a queue callback
// whose caller answered (callback.go). call.answered was emitted for it by the call's owner.
type connected struct {
	agentID int64
	leg     AgentLeg
}

// serveFrom is serve, starting with the agent conn talking to the caller when conn is set.
func (a *ACD) serveFrom(ctx context.Context, c *Call, name string, conn *connected) (Result, *Target) {
	var from int64
	var hold time.Duration
	answered := false
	for range maxQueueHops {
		a.mu.Lock()
		q, ok := a.queues[name]
		a.mu.Unlock()
		if !ok {
			err := fmt.Errorf("%w: %s", ErrUnknownQueue, name)
			a.log.Error("ivr: transfer to an unknown queue", "call_id", c.ID(), "error", err)
			return Result{Kind: ResultHangup, Err: err}, nil
		}
		var (
			kind    waitOutcome
			agentID int64
			leg     AgentLeg
		)
		announced := conn != nil
		if conn != nil {
			kind, agentID, leg = waitConnected, conn.agentID, conn.leg
			conn = nil
		} else {
			kind, agentID, leg = a.wait(ctx, c, q)
		}
		switch kind {
		case waitAbandoned:
			if answered { // back in a queue after a transfer: the call was answered already
				return Result{Kind: ResultHangup, Outcome: callevent.OutcomeAnswered, HoldTime: hold}, nil
			}
			return c.abandon(callevent.WhereQueue), nil
		case waitOverflow:
			t := q.Overflow
			return Result{}, &t
		case waitCallback:
			res := c.callbackChosen(ctx, q)
			if answered {
				res.Outcome, res.HoldTime = callevent.OutcomeAnswered, hold
			}
			return res, nil
		}
		answered = true
		out := a.talk(ctx, c, q, agentID, leg, from, announced)
		hold += out.hold
		if out.toQueue == "" {
			return Result{Kind: ResultHangup, Outcome: callevent.OutcomeAnswered, HoldTime: hold, Err: out.err}, nil
		}
		name, from = out.toQueue, out.fromAgent
	}
	return Result{Kind: ResultHangup, Outcome: callevent.OutcomeAnswered, HoldTime: hold,
		Err: fmt.Errorf("ivr: more than %d transfers between queues", maxQueueHops)}, nil
}

func (a *ACD) music(q *queueRec) *Prompt {
	if q.Music != nil {
		return q.Music
	}
	p, _ := a.opts.Prompts.Get("", PromptMusic)
	return p
}

// positionPrompts are "you are caller number" and the number, or "more than twenty".
func (a *ACD) positionPrompts(pos int) []string {
	if pos <= 0 {
		return nil
	}
	if _, ok := a.opts.Prompts.Get("", promptNumber+strconv.Itoa(pos)); ok {
		return []string{PromptPosition, promptNumber + strconv.Itoa(pos)}
	}
	return []string{PromptPositionMany}
}

// waitStore is where a waiting call is queued and paired with agents: this ACD's memory
// (memWait) or the cluster's shared store (sharedWaitStore, acd_shared.go). wait runs the
// same loop — timers, offers, announcements, music — over either. Its methods run on the
// call's goroutine and take ACD.mu themselves where they need it (never held by wait).
type waitStore interface {
	// enqueue puts w at the end of its queue, starts dispatch, and returns w's 1-based
	// position when announce (0 otherwise or unknown).
	enqueue(ctx context.Context, w *waiter, announce bool) int
	// answered records that agent id answered w: busy on it, w out of the queue.
	answered(ctx context.Context, w *waiter, id int64)
	// missed records that the offer of w to agent id ended unanswered. callerLeft: the caller
	// hung up meanwhile, which is not the agent's miss (nothing is counted). It reports
	// whether only agents who missed the call are free (retry after the queue's RetryDelay).
	missed(ctx context.Context, w *waiter, id int64, callerLeft bool) (retry bool)
	// retry lets the agents who missed w be offered it again.
	retry(ctx context.Context, w *waiter)
	// position is w's 1-based place in its queue (0 unknown).
	position(ctx context.Context, w *waiter) int
	// leave takes w out of its queue and frees an agent claimed for it (no offer is in flight).
	leave(ctx context.Context, w *waiter)
}

// wait puts the call in queue q and waits for an agent to answer it, the caller to hang up, or
// MaxWait. Meanwhile the caller hears please_hold (and their position), then the queue's
// music, looped, on one continuous RTP stream. The queue and its pairing of calls with agents
// are this ACD's memory, or the cluster's shared store (ACDOptions.Shared).
func (a *ACD) wait(ctx context.Context, c *Call, q *queueRec) (waitOutcome, int64, AgentLeg) {
	var st waitStore = memWait{a}
	if a.opts.Shared != nil {
		st = sharedWaitStore{a}
	}
	w := &waiter{c: c, q: q, enqueued: a.clock.Now(), claims: make(chan Claim, 1), retry: make(chan struct{}, 1), tried: map[int64]bool{},
		pickups: make(chan pickupReq), done: make(chan struct{})}
	defer close(w.done)
	maxWait := a.clock.NewTimer(q.MaxWait)
	defer maxWait.Stop()
	var (
		announce  Timer
		announceC <-chan time.Time
	)
	if q.AnnouncePosition {
		announce = a.clock.NewTimer(q.AnnounceEvery)
		announceC = announce.C()
	}
	defer func() {
		if announce != nil {
			announce.Stop()
		}
	}()
	pos := st.enqueue(ctx, w, q.AnnouncePosition)
	c.emit(callevent.Event{Type: callevent.EventQueued, Queue: q.Name})

	music := a.music(q)
	intro := []string{PromptPleaseHold}
	if q.AnnouncePosition {
		intro = append(intro, a.positionPrompts(pos)...)
	}
	keys, cbKey := a.callbackDigits(c, q)
	if cbKey != "" {
		intro = append(intro, PromptCallbackOffer)
	}
	cbPending := false // the key came while an agent was being offered the call
	pl := c.startAudio(ctx, music, intro...)
	defer func() { pl.halt() }()

	var (
		offered     int64 // agent being offered, 0 none
		offerCancel context.CancelFunc
		results     chan offerResult
		ring, retry Timer
		ringC       <-chan time.Time
		retryC      <-chan time.Time
	)
	defer func() {
		if ring != nil {
			ring.Stop()
		}
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
	// leave withdraws the call: an offer in flight is cancelled (an agent who answered it
	// anyway is hung up), the agent freed, the call taken out of the queue.
	leave := func() {
		if offerCancel != nil {
			offerCancel()
			if r := <-results; r.leg != nil {
				a.hangupAgent(ctx, r.leg)
			}
		}
		st.leave(context.WithoutCancel(ctx), w)
	}
	for range 1 << 20 { // bounded: every turn is an event of this call
		select {
		case <-ctx.Done():
			leave()
			return waitAbandoned, 0, nil
		case <-maxWait.C():
			leave()
			return waitOverflow, 0, nil
		case cl := <-w.claims:
			offered = cl.AgentID
			offer := c.offerTo(q, cl.AgentID, a.offerNode(cl.Node))
			ring = a.clock.NewTimer(q.RingTimeout)
			ringC = ring.C()
			c.emit(callevent.Event{Type: callevent.EventOffered, AgentID: cl.AgentID})
			octx, cancel := context.WithCancel(ctx)
			offerCancel = cancel
			results = make(chan offerResult, 1)
			go func() {
				leg, err := a.offer(octx, offer)
				results <- offerResult{leg, err}
			}()
		case <-ringC:
			ringC = nil
			offerCancel() // Offer returns with the context's error: a missed offer
		case r := <-results:
			offerCancel()
			offerCancel = nil
			ring.Stop()
			ringC = nil
			id := offered
			offered = 0
			if r.err == nil && r.leg != nil && ctx.Err() == nil {
				st.answered(context.WithoutCancel(ctx), w, id)
				pl.halt()
				return waitConnected, id, r.leg
			}
			if r.err == nil && r.leg != nil {
				a.hangupAgent(ctx, r.leg) // answered as the caller left
			}
			if st.missed(context.WithoutCancel(ctx), w, id, ctx.Err() != nil) {
				armRetry()
			}
			if cbPending && ctx.Err() == nil && a.startCallback(w, st) {
				pl.halt()
				return waitCallback, 0, nil
			}
			cbPending = false
		case pr := <-w.pickups:
			if offered == 0 || a.opts.Shared != nil {
				pr.reply <- fmt.Errorf("%w: %s (no agent is being offered it)", ErrNotRinging, c.ID())
				continue
			}
			a.mu.Lock()
			err := a.canPickUpLocked(w, pr.agentID)
			a.mu.Unlock()
			if err != nil {
				pr.reply <- err // the offer rings on
				continue
			}
			// Withdraw the offer (the dialer returns at once, or within its cancel grace).
			offerCancel()
			r := <-results
			offerCancel, results = nil, nil
			ring.Stop()
			ringC = nil
			id := offered
			offered = 0
			if r.err == nil && r.leg != nil && ctx.Err() == nil {
				// The ringing agent answered as the pickup came: the call is theirs.
				pr.reply <- fmt.Errorf("%w: %s (agent %d answered it)", ErrNotRinging, c.ID(), id)
				st.answered(context.WithoutCancel(ctx), w, id)
				pl.halt()
				return waitConnected, id, r.leg
			}
			if r.leg != nil {
				a.hangupAgent(ctx, r.leg) // answered as the caller left
			}
			if ctx.Err() != nil {
				pr.reply <- fmt.Errorf("%w: %s (the caller hung up)", ErrNotRinging, c.ID())
				continue // the next turn leaves
			}
			if err := (memWait{a}).pickedUp(w, id, pr.agentID); err != nil {
				pr.reply <- err // the call waits on: dispatch offers it again
				continue
			}
			pr.reply <- nil
			pl.halt()
			return waitConnected, pr.agentID, pr.leg
		case k := <-keys:
			if string(k) != cbKey {
				continue
			}
			if offered != 0 {
				// An agent is ringing: the caller talks to them if they answer, else is
				// called back once the offer ends.
				cbPending = true
				continue
			}
			if a.startCallback(w, st) {
				pl.halt()
				return waitCallback, 0, nil
			}
		case <-w.retry:
			armRetry()
		case <-retryC:
			retryC = nil
			st.retry(ctx, w)
		case <-announceC:
			pos := st.position(ctx, w)
			pl.halt()
			pl = c.startAudio(ctx, music, a.positionPrompts(pos)...)
			announce = a.clock.NewTimer(q.AnnounceEvery)
			announceC = announce.C()
		}
	}
	leave()
	return waitAbandoned, 0, nil
}

// memWait queues calls in the ACD's memory (one node).
type memWait struct{ a *ACD }

func (m memWait) enqueue(_ context.Context, w *waiter, _ bool) int {
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.queues[w.q.Name]; cur != nil {
		w.q = cur // Apply may have replaced the record since serve read it
	}
	if w.place != 0 {
		// A callback back in its queue (a retry, a restart): at its place, ahead of the calls
		// that came after it; the calls that come next go behind it.
		w.seq = w.place
		a.seq = max(a.seq, w.place)
	} else {
		a.seq++
		w.seq = a.seq
	}
	i := len(w.q.waiting)
	for i > 0 && w.q.waiting[i-1].seq > w.seq {
		i--
	}
	w.q.waiting = slices.Insert(w.q.waiting, i, w)
	a.m.waiting.WithLabelValues(w.q.Name).Set(float64(len(w.q.waiting)))
	pos := a.positionLocked(w)
	a.dispatchLocked()
	return pos
}

func (m memWait) answered(_ context.Context, w *waiter, id int64) {
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	w.offering = 0
	a.removeLocked(w)
	ag := a.agents[id]
	if ag == nil {
		return
	}
	ag.offering = ""
	ag.missed = 0
	if ag.state != StateAvailable { // chose away/offline while ringing: after this call
		ag.after = ag.state
	}
	ag.callID = w.c.id // before the change: OnAgentState's busy status names the call
	a.setStateLocked(ag, StateBusy)
}

func (m memWait) missed(_ context.Context, w *waiter, id int64, callerLeft bool) bool {
	a := m.a
	a.mu.Lock()
	w.offering = 0
	away := 0 // missed offers that sent the agent away (logged after the unlock)
	if ag := a.agents[id]; ag != nil {
		ag.offering = ""
		if !callerLeft {
			ag.missed++
			if mx := w.q.MaxMissedOffers; mx > 0 && ag.missed >= mx && ag.state == StateAvailable {
				away = ag.missed
				a.setStateLocked(ag, StateAway)
			}
		}
		a.dropIfRemovedLocked(ag)
	}
	a.dispatchLocked()
	a.mu.Unlock()
	if away > 0 {
		a.log.Info("ivr: agent missed offers in a row; now away", "agent_id", id, "missed", away)
	}
	return false // dispatch says so through w.retry
}

func (m memWait) retry(_ context.Context, w *waiter) {
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(w.tried)
	a.dispatchLocked()
}

func (m memWait) position(_ context.Context, w *waiter) int {
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	return m.a.positionLocked(w)
}

func (m memWait) leave(_ context.Context, w *waiter) {
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	// The agent dispatch claimed for the call, whether or not its claim was received.
	if ag := a.agents[w.offering]; ag != nil && ag.offering == w.c.id {
		ag.offering = ""
		a.dropIfRemovedLocked(ag)
	}
	w.offering = 0
	a.removeLocked(w)
	select { // dispatch may have handed us an agent just before we took the lock
	case cl := <-w.claims:
		if ag := a.agents[cl.AgentID]; ag != nil && ag.offering == w.c.id {
			ag.offering = ""
			a.dropIfRemovedLocked(ag)
		}
	default:
	}
	a.dispatchLocked()
}

func (a *ACD) hangupAgent(ctx context.Context, leg AgentLeg) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hangupBudget)
	defer cancel()
	if err := leg.Hangup(hctx); err != nil {
		a.log.Debug("ivr: agent hang-up", "error", err)
	}
}

// agentFree ends an agent's part in a call (wrap-up per q).
func (a *ACD) agentFree(id int64, q *queueRec) {
	if a.opts.Shared != nil {
		a.sharedAgentFree(id, q)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ag := a.agents[id]; ag != nil {
		a.callEndedLocked(ag, q)
	}
}

// TransferTo names the target of a transfer: an agent (AgentID), a queue (Queue) or an
// outside number dialled through the trunk (Number, E.164; the dial plan was checked by the
// caller of Transfer or Consult).
type TransferTo struct {
	AgentID int64
	Queue   string
	Number  string
}

type ctlOp int

const (
	opHold ctlOp = iota
	opResume
	opTransfer
	opConsult         // consult.go
	opConsultComplete // consult.go
	opConsultCancel   // consult.go
)

type ctlReq struct {
	op    ctlOp
	to    TransferTo
	onEnd func(ConsultEnd) // opConsult
	via   AgentLeg         // opConsult: the agent's own leg to talk to the target on (ConsultOn); nil: the call's
	reply chan error
}

// session is a call connected to an agent; Hold, Resume and Transfer reach its goroutine
// through ctl.
type session struct {
	ctl     chan ctlReq
	done    chan struct{}
	agentID int64           // guarded by ACD.mu
	caller  *media.Endpoint // the caller's endpoint, fixed: supervisors join here (supervise.go)
	conf    *conference     // guarded by ACD.mu: the call's conference, nil when two-party (conference.go)
	// call and q are the call and the queue it was answered from, fixed (an agent added to a
	// conference is rung as the queue rings: conference.go). Both nil for an agent's own call
	// (own: OwnCall), which no goroutine of the ACD serves: ctl is never read.
	call *Call
	q    *queueRec
	own  bool
}

type talkOutcome struct {
	hold      time.Duration
	toQueue   string // transfer to this queue
	fromAgent int64
	err       error
}

// talk bridges the caller to the agent and serves hold, resume and transfers until either
// side hangs up or the call is transferred to a queue. announced: call.answered was emitted
// for this agent already (a queue callback's answer).
func (a *ACD) talk(ctx context.Context, c *Call, q *queueRec, agentID int64, leg AgentLeg, from int64, announced bool) talkOutcome {
	ep := c.leg.Endpoint()
	if from != 0 {
		c.emit(callevent.Event{Type: callevent.EventTransferred, FromAgentID: from, ToAgentID: agentID})
	}
	var out talkOutcome
	stop, err := leg.Bridge(ep)
	if err != nil {
		a.hangupAgent(ctx, leg)
		a.agentFree(agentID, q)
		out.err = fmt.Errorf("ivr: bridge caller to agent %d: %w", agentID, err)
		a.log.Error("ivr: bridge", "call_id", c.ID(), "error", out.err)
		return out
	}
	s := &session{ctl: make(chan ctlReq), done: make(chan struct{}), agentID: agentID, caller: ep, call: c, q: q}
	a.addLive(c, s)
	defer func() {
		a.dropLive(c, s)
		close(s.done)
	}()
	if !announced {
		c.emit(callevent.Event{Type: callevent.EventAnswered, AgentID: agentID, Channel: legChannel(leg)})
	}
	music := a.music(q)
	var (
		pl        *player
		holdStart time.Time
		// confHeld is the conference the agent holds (out of its mix, the others talking on:
		// conference_ctl.go), nil when the agent does not hold one.
		confHeld *conference
	)
	unhold := func() {
		if pl != nil {
			pl.halt()
			pl = nil
			out.hold += a.clock.Now().Sub(holdStart)
		}
		if confHeld != nil {
			confHeld = nil
			out.hold += a.clock.Now().Sub(holdStart)
		}
	}
	// release drops the agent: bridge, hold music, the agent's leg, then wrap-up.
	release := func() {
		stop()
		unhold()
		a.hangupAgent(ctx, leg)
		a.agentFree(agentID, q)
	}
	for range 1 << 20 { // bounded: every turn is an event of this call
		var heldOver <-chan struct{}
		if confHeld != nil {
			heldOver = confHeld.over
		}
		select {
		case <-heldOver:
			// The conference the agent holds is over (its last party left): the caller is
			// alone on hold, so the hold goes on as a two-way one, with music; the time held
			// runs on from the hold (counted once).
			confHeld = nil
			pl = c.startAudio(ctx, music)
		case <-ctx.Done():
			if cf, ok := a.leaveConference(s, true); ok {
				// The caller left a conference: the agent and the parties talk on until the
				// agent or the last party hangs up (conference.go). The bridge to the caller's
				// endpoint goes now: nothing is sent to a caller who left.
				stop()
				if confHeld != nil {
					// The hold was the caller's: with the caller gone the agent is back
					// with the parties.
					unhold()
					cf.agent.Set(media.MemberOptions{Send: true})
					c.emit(callevent.Event{Type: callevent.EventResumed})
				}
				// What is said from now on is recorded from the agent's side.
				if rf, ok := c.leg.(RecordingFollower); ok {
					rf.RecordFrom(cf.agent.Endpoint())
				}
				a.conferenceRest(s, cf, leg.Done(), ErrConferenceCallerLeft)
			}
			release()
			return out
		case <-leg.Done():
			if cf, ok := a.leaveConference(s, false); ok {
				// The agent left a conference: released now (wrap-up); the caller and the
				// parties talk on until the caller or the last party hangs up.
				held := confHeld != nil
				release()
				if held {
					// The caller is on hold no more: they talk with the parties.
					c.emit(callevent.Event{Type: callevent.EventResumed})
				}
				a.conferenceRest(s, cf, ctx.Done(), ErrConferenceAgentLeft)
				return out
			}
			release()
			return out
		case req := <-s.ctl:
			cf := a.conferenceOf(s)
			if cf == nil && confHeld != nil {
				// The conference the agent holds ended a moment ago (heldOver's turn has not
				// come): a two-way hold from now on, with music.
				confHeld = nil
				pl = c.startAudio(ctx, music)
			}
			if cf != nil {
				// A conference (conference_ctl.go): hold takes the agent out of the mix, a
				// blind transfer hands the agent's place over.
				cc := confCtl{ctx: ctx, c: c, q: q, s: s, cf: cf, ep: ep, music: music, agentID: &agentID, leg: &leg, stop: &stop,
					held: &confHeld, holdStart: &holdStart, unhold: unhold, release: release, out: &out}
				r, done, handled := a.conferenceControl(cc, req)
				if done {
					return r
				}
				if handled {
					continue
				}
				// The conference ended meanwhile: the request is a two-way call's.
				if confHeld != nil {
					confHeld = nil
					pl = c.startAudio(ctx, music)
				}
			}
			switch req.op {
			case opHold:
				if pl == nil {
					stop()
					holdStart = a.clock.Now()
					pl = c.startAudio(ctx, music)
					c.emit(callevent.Event{Type: callevent.EventHeld})
				}
				req.reply <- nil
			case opResume:
				if pl == nil {
					req.reply <- nil
					continue
				}
				unhold()
				stop, err = leg.Bridge(ep)
				c.emit(callevent.Event{Type: callevent.EventResumed})
				req.reply <- err
				if err != nil {
					stop = func() {}
					release()
					out.err = fmt.Errorf("ivr: bridge after hold: %w", err)
					return out
				}
			case opConsultComplete, opConsultCancel:
				req.reply <- ErrNoConsult
			case opConsult:
				if r, done := a.runConsultIn(ctx, c, q, s, &agentID, &leg, &stop, unhold, req, &out); done {
					return r
				}
			case opTransfer:
				if req.to.Number != "" { // blind to an outside number: it must answer first (consult.go)
					if r, done := a.runConsultIn(ctx, c, q, s, &agentID, &leg, &stop, unhold, req, &out); done {
						return r
					}
					continue
				}
				if req.to.Queue != "" {
					if !a.hasQueue(req.to.Queue) {
						req.reply <- fmt.Errorf("%w: %s", ErrUnknownQueue, req.to.Queue)
						continue
					}
					req.reply <- nil
					release()
					out.toQueue, out.fromAgent = req.to.Queue, agentID
					return out
				}
				node, err := a.reserve(c, req.to.AgentID)
				if err != nil {
					req.reply <- err
					continue
				}
				req.reply <- nil
				release()
				to := req.to.AgentID
				c.emit(callevent.Event{Type: callevent.EventTransferred, FromAgentID: agentID, ToAgentID: to})
				nl, err := a.offerDirect(ctx, c, q, to, node, music)
				if err != nil {
					if ctx.Err() != nil {
						return out
					}
					// Not answered: back to the queue, ahead of later callers would be fairer
					// but FIFO by arrival keeps the rule simple: the call re-enters at the end.
					out.toQueue, out.fromAgent = q.Name, agentID
					return out
				}
				agentID, leg = to, nl
				a.mu.Lock()
				s.agentID = to
				a.mu.Unlock()
				if stop, err = leg.Bridge(ep); err != nil {
					stop = func() {}
					release()
					out.err = fmt.Errorf("ivr: bridge caller to agent %d: %w", to, err)
					return out
				}
				c.emit(callevent.Event{Type: callevent.EventAnswered, AgentID: to, Channel: legChannel(leg)})
			}
		}
	}
	release()
	return out
}

// addLive makes s the connected call c: under its id, and under the id of the call it calls
// back (a queue callback: the id its agent's page and the wallboard know it by).
func (a *ACD) addLive(c *Call, s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.live[c.ID()] = s
	if c.callbackOf != "" {
		a.live[c.callbackOf] = s
	}
}

// dropLive ends what addLive did, unless another session took the ids since.
func (a *ACD) dropLive(c *Call, s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range []string{c.ID(), c.callbackOf} {
		if id != "" && a.live[id] == s {
			delete(a.live, id)
		}
	}
}

// reserve marks an available agent as being offered c (a blind transfer to that agent) and
// returns the node the agent is attached to (Offer.Node).
func (a *ACD) reserve(c *Call, id int64) (string, error) {
	if a.opts.Shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		cl, err := a.opts.Shared.Reserve(ctx, id, c.id, a.opts.Node)
		if err != nil {
			return "", err
		}
		a.kickShared()
		return a.offerNode(cl.Node), nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ag, ok := a.agents[id]
	if !ok {
		return "", fmt.Errorf("%w: %d", ErrUnknownAgent, id)
	}
	if ag.state != StateAvailable || ag.offering != "" {
		return "", fmt.Errorf("%w: agent %d is %s", ErrAgentUnavailable, id, ag.state)
	}
	ag.offering = c.id
	return "", nil
}

// offerDirect offers c to one reserved agent for the queue's ring timeout, the caller hearing
// the transfer prompt and music meanwhile.
func (a *ACD) offerDirect(ctx context.Context, c *Call, q *queueRec, id int64, node string, music *Prompt) (AgentLeg, error) {
	pl := c.startAudio(ctx, music, PromptTransfer)
	defer pl.halt()
	c.emit(callevent.Event{Type: callevent.EventOffered, AgentID: id})
	return a.offerReserved(ctx, c, q, id, node)
}

// offerTo is the offer of c, waiting in or answered from q, to agent id attached to node ("":
// this node).
func (c *Call) offerTo(q *queueRec, id int64, node string) Offer {
	return Offer{CallID: c.ID(), AgentID: id, Queue: q.Name, From: c.info.From, CallerName: c.info.CallerName,
		Line: c.info.Line, Language: c.Language(), MenuPath: c.MenuPath(), Node: node}
}

// ringAgent offers o to its agent for ring at most and returns what the dialer came back
// with: the offer is withdrawn (its context cancelled, and the dialer awaited) when ring
// passes or ctx ends first. The one ring of an agent that was picked for a call already — a
// blind or consult transfer to them, an agent added to a conference (offerReserved), a queue
// callback (ringOnce); the waiting loop of a queued call runs its own, among its other events.
func (a *ACD) ringAgent(ctx context.Context, o Offer, ring time.Duration) offerResult {
	t := a.clock.NewTimer(ring)
	defer t.Stop()
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan offerResult, 1)
	go func() {
		leg, err := a.offer(octx, o)
		results <- offerResult{leg, err}
	}()
	select {
	case r := <-results:
		return r
	case <-t.C():
	case <-ctx.Done():
	}
	cancel()
	return <-results
}

// offerReserved rings one reserved agent for the queue's ring timeout and settles the agent's
// state: busy on c when answered, else free again (a missed offer unless ctx ended).
func (a *ACD) offerReserved(ctx context.Context, c *Call, q *queueRec, id int64, node string) (AgentLeg, error) {
	r := a.ringAgent(ctx, c.offerTo(q, id, node), q.RingTimeout)
	if a.opts.Shared != nil {
		return a.sharedOfferEnded(ctx, c, q, id, r)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ag := a.agents[id]
	if ag == nil { // never: reserve set offering, which keeps a removed agent's record
		if r.leg != nil {
			go a.hangupAgent(ctx, r.leg)
		}
		return nil, fmt.Errorf("ivr: transfer: %w: %d", ErrUnknownAgent, id)
	}
	ag.offering = ""
	if r.err == nil && r.leg != nil && ctx.Err() == nil {
		ag.missed = 0
		if ag.state != StateAvailable {
			ag.after = ag.state
		}
		ag.callID = c.id // before the change: OnAgentState's busy status names the call
		a.setStateLocked(ag, StateBusy)
		return r.leg, nil
	}
	if r.leg != nil {
		go a.hangupAgent(ctx, r.leg)
	}
	if ctx.Err() == nil {
		ag.missed++
		if q.MaxMissedOffers > 0 && ag.missed >= q.MaxMissedOffers && ag.state == StateAvailable {
			a.setStateLocked(ag, StateAway)
		}
	}
	a.dropIfRemovedLocked(ag)
	a.dispatchLocked()
	if r.err == nil {
		r.err = ctx.Err()
	}
	return nil, fmt.Errorf("ivr: transfer to agent %d: %w", id, r.err)
}

// Hold puts a connected call on hold: the agent's audio is cut, the caller hears the queue's
// music, and hold time counts (call.held). Idempotent. The softphone's hold button and a SIP
// phone's hold re-INVITE both end up here.
func (a *ACD) Hold(ctx context.Context, callID string) error {
	return a.control(ctx, callID, ctlReq{op: opHold})
}

// Resume takes a call off hold and bridges it to the agent again (call.resumed).
func (a *ACD) Resume(ctx context.Context, callID string) error {
	return a.control(ctx, callID, ctlReq{op: opResume})
}

// Transfer blindly transfers a connected call: to an available agent (who is offered it for
// the queue's ring timeout, the caller hearing music; unanswered, the call returns to its
// queue), to a queue, or to an outside number (to.Number: dialled through the trunk while the
// caller hears music and the agent waits; Transfer returns once it answered — the agent is
// released — or with ErrTransferFailed when it did not: the caller is back with the agent). The current agent is released at once (wrap-up). call.transferred
// names the agent the call went to when it is known: at once for an agent, when an agent of
// the new queue answers for a queue. It returns ErrAgentUnavailable, ErrUnknownAgent,
// ErrUnknownQueue or ErrNoCall without changing anything.
func (a *ACD) Transfer(ctx context.Context, callID string, to TransferTo) error {
	if countTargets(to) != 1 {
		return fmt.Errorf("ivr: transfer: name exactly one agent, queue or number")
	}
	return a.control(ctx, callID, ctlReq{op: opTransfer, to: to})
}

func (a *ACD) control(ctx context.Context, callID string, req ctlReq) error {
	a.mu.Lock()
	s := a.live[callID]
	a.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, callID)
	}
	if s.own {
		// Hold and transfers are the queue's: an agent's own call has neither music nor a
		// queue to go back to (the page says so).
		return fmt.Errorf("%w: %s (an agent's own call: hold and transfer are for queue calls)", ErrNoCall, callID)
	}
	req.reply = make(chan error, 1)
	select {
	case s.ctl <- req:
	case <-s.done:
		return fmt.Errorf("%w: %s", ErrNoCall, callID)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// player plays prompts, then loops music, on the caller's endpoint until halted.
type player struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startAudio starts playing names then music (looped; nil: none) to the caller.
func (c *Call) startAudio(ctx context.Context, music *Prompt, names ...string) *player {
	pctx, cancel := context.WithCancel(ctx)
	p := &player{cancel: cancel, done: make(chan struct{})}
	ep := c.leg.Endpoint()
	cd := c.codec()
	r := c.audio(names...)
	if music != nil && len(music.Bytes(cd)) > 0 {
		r = io.MultiReader(r, &loopReader{b: music.Bytes(cd)})
	}
	go func() {
		defer close(p.done)
		if ep != nil {
			_ = ep.Play(pctx, r, cd)
		}
	}()
	return p
}

// halt stops the audio and waits until the endpoint's stream is free again.
func (p *player) halt() {
	p.cancel()
	<-p.done
}

// loopReader repeats b forever.
type loopReader struct {
	b []byte
	i int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.b[l.i:])
		n += k
		l.i = (l.i + k) % len(l.b)
	}
	return n, nil
}
