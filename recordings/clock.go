package recordings

import (
	"sync"
	"sync/atomic"
	"time"
)

// The Service's clock and sync worker: the disk work of every live recording, batched.
//
// One timer (time.AfterFunc, so no goroutine waits between visits) visits every live
// recording every commitInterval, one after the other on the timer's goroutine: it places
// each recording's queue and, every writeInterval, writes its audio (Writer.onTick); every
// Options.SyncInterval it rewrites the header and queues the file for the sync worker.
// It is armed while any recording lives and stops with the last. Until session 7 every
// recording had a timer of its own, and every tick a goroutine, a write(2) and every second
// an fsync(2) on the clock's path: at 500 calls about 30% of the gateway's core.
//
// The fsyncs, which wait on the disk (milliseconds each, seconds when the disk is busy), are
// not the clock's: a due recording is queued (once: Writer.syncQueued) for the sync worker,
// at most maxSyncers goroutines started on demand that fsync the queued files one after the
// other and end when the queue is empty. So a slow disk delays what a power loss keeps (the
// queue simply waits longer), never the placing and writing of audio, and every recording is
// in the queue at most once, whatever the backlog.
type diskClock struct {
	mu     sync.Mutex
	timer  *time.Timer // created by New, stopped; armed while live is not empty
	armed  bool
	live   []*Writer
	kicked atomic.Bool

	tickMu sync.Mutex // serialises the timer's callbacks (a Reset may start one while one runs)
	visit  []*Writer  // the visit's copy of live, under tickMu

	syncMu  sync.Mutex
	syncQ   []*Writer
	syncers int // sync worker goroutines running
}

// maxSyncers bounds the goroutines fsyncing recordings at once. An fsync took 1–3 ms on this
// machine's idle disk and 4–6 ms while other jobs used it (BENCHMARKS.md, session 7): 1,000
// recordings every 5 s are 200 fsyncs a second, a second's work for one goroutine on the
// busy disk. Four keep up with twice that, and concurrent fsyncs share the filesystem's
// journal commits; a goroutine waiting in fsync costs a thread, not CPU.
const maxSyncers = 4

// startClock adds w to the recordings the clock visits and arms the clock if it was idle.
func (w *Writer) startClock() {
	c := &w.s.clock
	c.mu.Lock()
	c.live = append(c.live, w)
	if !c.armed {
		c.armed = true
		c.timer.Reset(commitInterval)
	}
	c.mu.Unlock()
}

// kick brings the clock's next visit forward (a recording's queue filled a chunk: packets
// come faster than real time). At most one kick waits for the visit that answers it.
func (s *Service) kick() {
	if s.clock.kicked.CompareAndSwap(false, true) {
		s.clock.timer.Reset(0)
	}
}

// onClock is the timer's callback: it visits every live recording, drops those that ended and
// re-arms the timer while any is left.
func (s *Service) onClock() {
	c := &s.clock
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	c.kicked.Store(false) // a chunk filling from now on asks for another visit
	c.mu.Lock()
	c.visit = append(c.visit[:0], c.live...)
	c.mu.Unlock()
	now := s.now()
	var ended []*Writer
	for _, w := range c.visit {
		if !w.onTick(now) {
			ended = append(ended, w)
		}
	}
	clear(c.visit) // no ended Writer is kept reachable from here
	c.mu.Lock()
	if len(ended) > 0 {
		c.live = removeWriters(c.live, ended)
	}
	if len(c.live) > 0 {
		c.timer.Reset(commitInterval)
	} else {
		c.armed = false
	}
	c.mu.Unlock()
}

// removeWriters removes ended from live in place.
func removeWriters(live, ended []*Writer) []*Writer {
	gone := make(map[*Writer]bool, len(ended))
	for _, w := range ended {
		gone[w] = true
	}
	n := 0
	for _, w := range live {
		if !gone[w] {
			live[n] = w
			n++
		}
	}
	clear(live[n:])
	return live[:n]
}

// queueSync queues w's fsync for the sync worker, starting a worker goroutine when fewer than
// maxSyncers run.
func (s *Service) queueSync(w *Writer) {
	c := &s.clock
	c.syncMu.Lock()
	c.syncQ = append(c.syncQ, w)
	start := c.syncers < maxSyncers
	if start {
		c.syncers++
	}
	c.syncMu.Unlock()
	if start {
		go s.runSyncs()
	}
}

// runSyncs is a sync worker: it fsyncs queued recordings until the queue is empty.
func (s *Service) runSyncs() {
	c := &s.clock
	for {
		c.syncMu.Lock()
		if len(c.syncQ) == 0 {
			c.syncQ = c.syncQ[:0]
			c.syncers--
			c.syncMu.Unlock()
			return
		}
		w := c.syncQ[0]
		c.syncQ[0] = nil
		c.syncQ = c.syncQ[1:]
		c.syncMu.Unlock()
		w.syncFile()
	}
}
