package sip

import (
	"sync"
	"sync/atomic"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// eventQueue is a call's ordered event queue. push appends under the lock and never blocks or
// drops: a sink that stalls (PostgreSQL slow, the spool busy) only makes the queue longer, and
// what bounds it is the call itself — it ends, pushLast appends call.ended and closes the queue,
// and the call's emitter goroutine (Call.runEmitter, the only reader) drains what is left.
// Seq numbers are assigned under the same lock as the append, so the sink sees them in order
// with no gap.
type eventQueue struct {
	mu      sync.Mutex
	pending []callevent.Event
	closed  bool
	wake    chan struct{} // capacity 1: "something was pushed or the queue closed"
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

// push gives e the next seq and queues it; it reports false (and queues nothing) once the
// queue is closed: call.ended was the call's last event.
func (q *eventQueue) push(e callevent.Event, seq *atomic.Int64) bool {
	return q.add(e, seq, false)
}

// pushLast queues e (call.ended) and closes the queue.
func (q *eventQueue) pushLast(e callevent.Event, seq *atomic.Int64) bool {
	return q.add(e, seq, true)
}

func (q *eventQueue) add(e callevent.Event, seq *atomic.Int64, last bool) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	e.Seq = seq.Add(1)
	q.pending = append(q.pending, e)
	q.closed = last
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// next returns every queued event in seq order, waiting for one when none is queued; ok is
// false once the queue is closed and empty. Only the emitter goroutine calls it.
func (q *eventQueue) next() (batch []callevent.Event, ok bool) {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			batch, q.pending = q.pending, nil
			q.mu.Unlock()
			return batch, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.wake
	}
}
