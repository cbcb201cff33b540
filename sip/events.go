package sip

import (
	"sync"
	"sync/atomic"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// eventQueue is a call's ordered event queue. push appends under the lock and never blocks or
// drops: a sink that stalls (PostgreSQL slow, the spool busy) only makes the queue longer, and
// what bounds it is the call itself — it ends, pushEnded appends call.ended, pushLast appends
// what follows the end (call.recording_ready) and closes the queue, and what is left is
// delivered. Seq numbers are assigned under the same lock as the append, so the sink sees them
// in order with no gap, and the call's sequence has this one writer.
//
// Delivery runs on a goroutine started on demand (drain): one at a time per queue, started by
// the push that finds none running and ending when the queue is empty, so a call holds no
// goroutine between its events (until session 7 every call held an emitter goroutine for its
// whole life: 13–15 KiB of stack a call at 500 calls). deliver is called with no lock held.
// done is closed once the queue is closed and everything in it delivered.
type eventQueue struct {
	mu       sync.Mutex
	pending  []callevent.Event
	ended    bool // call.ended is queued: only pushLast may follow
	closed   bool
	deliver  func([]callevent.Event) // set by start; nil: events wait
	running  bool                    // a drain goroutine runs
	finished bool                    // done is closed
	done     chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{done: make(chan struct{})} }

// start sets how events are delivered (a batch of events in seq order at a time) and returns
// the channel closed once the queue is closed and drained. Events pushed before start wait.
func (q *eventQueue) start(deliver func([]callevent.Event)) <-chan struct{} {
	q.mu.Lock()
	q.deliver = deliver
	run := q.runLocked()
	q.mu.Unlock()
	if run {
		go q.drain()
	}
	return q.done
}

// push gives e the next seq and queues it; it reports false (and queues nothing) once
// call.ended is queued: the events of the call's life come before its end.
func (q *eventQueue) push(e callevent.Event, seq *atomic.Int64) bool {
	return q.add(e, seq, false, false)
}

// pushEnded queues call.ended; after it only pushLast is taken.
func (q *eventQueue) pushEnded(e callevent.Event, seq *atomic.Int64) bool {
	return q.add(e, seq, true, false)
}

// pushLast queues e (an event about the ended call, such as call.recording_ready) and closes
// the queue; a zero e only closes it.
func (q *eventQueue) pushLast(e callevent.Event, seq *atomic.Int64) bool {
	return q.add(e, seq, true, true)
}

func (q *eventQueue) add(e callevent.Event, seq *atomic.Int64, end, last bool) bool {
	q.mu.Lock()
	if q.closed || (q.ended && !last) {
		q.mu.Unlock()
		return false
	}
	if e.Type != "" {
		e.Seq = seq.Add(1)
		q.pending = append(q.pending, e)
	}
	q.ended = q.ended || end
	q.closed = last
	run := q.runLocked()
	q.mu.Unlock()
	if run {
		go q.drain()
	}
	return true
}

// runLocked reports whether a drain goroutine must start now (and marks it running): there is
// something to do — events to deliver, or done to close — and none runs.
func (q *eventQueue) runLocked() bool {
	if q.running || q.deliver == nil || q.finished || (len(q.pending) == 0 && !q.closed) {
		return false
	}
	q.running = true
	return true
}

// drain delivers queued events in seq order until the queue is empty, then ends; it closes
// done when the queue is also closed. At most one runs per queue (running).
func (q *eventQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			fin := q.closed && !q.finished
			q.finished = q.finished || fin
			q.mu.Unlock()
			if fin {
				close(q.done)
			}
			return
		}
		batch, deliver := q.pending, q.deliver
		q.pending = nil
		q.mu.Unlock()
		deliver(batch)
	}
}
