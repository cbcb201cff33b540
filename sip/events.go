package sip

import (
	"sync"
	"sync/atomic"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// eventQueue is a call's ordered event queue. push appends under the lock and never blocks or
// drops: a sink that stalls (PostgreSQL slow, the spool busy) only makes the queue longer, and
// what bounds it is the call itself — it ends, pushEnded appends call.ended, pushLast appends
// what follows the end (call.recording_ready) and closes the queue, and the call's emitter
// goroutine (Call.runEmitter, the only reader) drains what is left. Seq numbers are assigned
// under the same lock as the append, so the sink sees them in order with no gap, and the
// call's sequence has this one writer.
type eventQueue struct {
	mu      sync.Mutex
	pending []callevent.Event
	ended   bool // call.ended is queued: only pushLast may follow
	closed  bool
	wake    chan struct{} // capacity 1: "something was pushed or the queue closed"
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

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
