//go:build linux

package media

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-voice/switchboard/internal/uring"
)

// Receiving through a multishot io_uring (uring.RecvRing), the default where the kernel has it
// (Linux 6.1 and later) unless SWITCHBOARD_MEDIA_RECEIVE=epoll (ReceiveEnv). Its unwatch waits for the loop to see the cancelled receive end — the socket's port
// stays bound until then — and a cancellation wakes the loop out of its pacing sleep, so that
// wait is a wake-up and one round.
//
// Each watched socket gets one multishot IORING_OP_RECVMSG, armed once; a datagram that
// arrives is received by the kernel into one of the loop's buffers the next time the loop
// enters its ring, and comes back as a completion naming its socket. A round is one
// io_uring_enter(2) for every socket's datagrams at once, where the epoll loop made one
// epoll_wait(2) and one recvmmsg(2) per ready socket — at 1,000 calls about 100 a round, a
// datagram each (BENCHMARKS.md, session 15). The handlers, the latching and source rules, the
// send batch (one io_uring_enter(2) for the round's forwarded packets) are the same as the
// epoll loop's.
//
// Ownership: the loop's goroutine is locked to its OS thread for its whole life (the ring is
// single-issuer: only the thread that created it may enter it) and owns the ring, its buffers,
// the watches' armed flags and the re-arm list. Other goroutines reach it only through its
// request queue (reqMu) and its eventfd: watch queues an arm, unwatch a cancellation — and
// waits for the loop to see the receive's last completion —, the receiver's stop a stop.
// Nothing is called with reqMu held.
//
// Pace, as the epoll loop's (coalesceWindow): a round that carried coalesceMin packets or more
// is followed by a yield to the goroutines waiting for the processor and a raw sleep until a
// window after it began, with the ring's signal off (no datagram wakes anything meanwhile); a
// quieter round parks the goroutine in the runtime's netpoller on the loop's park set: an
// epoll instance holding the loop's sockets (watch adds each, unwatch removes it) and its
// eventfd, which a datagram on any of them, or a request, makes readable at once. Two ways
// that did not work (BENCHMARKS.md, session 17): an eventfd registered with the ring, which
// the kernel signals late with DEFER_TASKRUN (about 10 ms idle, hundreds under load: calls
// lost audio), and a blocking wait in the ring (uring.RecvRing.Wait), which is prompt but
// keeps the runtime's P until sysmon takes it back — on a one-core gateway every other
// goroutine waited behind it (call setup p99 136 ms at 300 calls a second, 36 on epoll).
// The park set costs each datagram an epoll callback in the kernel; a busy loop never reads
// its events (they stay on its ready list, each socket once). (Sleeping with time.Sleep instead, which frees the P for the
// window but hands the locked thread's P over twice a round, read 77 % of the core at 1,000
// calls against 72 % for this, ten runs and nine alternated, before the re-arms were bounded:
// BENCHMARKS.md, session 15.) A loop woken by a request (watch, unwatch) sleeps the rest of
// the window too: the requests of the calls set up and ended meanwhile then share a round;
// serving each at once cost more at 500 calls a second (1.76 ms of CPU a call against
// 1.58, two runs each, alternated).

// ringBufs is a ring loop's receive buffers (a power of two): 1,544 bytes each (a datagram of
// maxPacket, its source address and the kernel's header), 1.5 MiB a loop. An eighth of them is
// an Enter's batch of sockets (uring.RecvRing.Batch): 128, about a round's ready sockets at
// 1,000 calls. Tests make it small.
var ringBufs uint16 = 1024

// parkMax bounds a parked loop's wait on its park set: after it the loop makes a round anyway,
// and counts one that found datagrams nothing woke it for
// (switchboard_media_ring_missed_wakeups_total; a datagram arriving just as the wait ended
// counts too).
const parkMax = 100 * time.Millisecond

const (
	ringEntries = 256  // submissions a round can queue (arms, cancellations) before entering
	ringCQ      = 4096 // completions the kernel can post before the loop reaps them
	reapBatch   = 256  // completions taken from the ring at a time
	maxEnters   = 32   // Enters a round makes at most (a backlog of 32 batches of sockets)

	// user data of the ring's submissions: a receive carries its socket's slot
	tagRecv   = 1 << 62
	tagCancel = 2 << 62
)

// ringReq is a request to a ring loop from another goroutine.
type ringReq struct {
	w      *watch
	cancel bool // else arm w (w nil with cancel false: stop the loop)
}

// ringLoop is the ring's half of a pollLoop.
type ringLoop struct {
	rr    *uring.RecvRing // loop goroutine only
	evfd  int             // closed by the loop when it stops
	reqMu sync.Mutex
	reqs  []ringReq // reqMu
	// parked is set from before the loop's last round ahead of parking until it woke: a
	// request then wakes it through the eventfd; else only a cancellation or a stop does
	// (urgent), which also cuts the loop's sleep between rounds short.
	parked atomic.Bool
	urgent atomic.Bool                 // a cancellation or stop is queued: no coalescing sleep before the round
	work   []ringReq                   // the loop's copy of the requests being handled; loop goroutine only
	toArm  []*watch                    // receives to arm: new watches, and those that ended without a cancellation; loop goroutine only
	epfd   int                         // the park set (epoll): watch adds a socket, unwatchRing removes it
	events [pollEvents]unix.EpollEvent // the park set's ready events; loop goroutine only
	cqes   [reapBatch]uring.Completion
}

// startRingLoop starts a loop receiving through a multishot ring, or says why it cannot (the
// receiver then starts an epoll loop). The ring is set up on the loop's own thread.
func (r *receiver) startRingLoop() (*pollLoop, error) {
	l := &pollLoop{rx: r, exited: make(chan struct{}), tx: newTxBatch(), ring: &ringLoop{}}
	if !r.noRing {
		if ring, err := uring.New(txCap); err == nil {
			l.tx.ring = ring
		}
	}
	ready := make(chan error, 1)
	go l.runRing(ready)
	if err := <-ready; err != nil {
		<-l.exited
		return nil, err
	}
	return l, nil
}

// runRing is a ring loop's goroutine.
func (l *pollLoop) runRing(ready chan<- error) {
	// Never unlocked: the thread ends with the goroutine, and the ring with it.
	runtime.LockOSThread()
	defer close(l.exited)
	defer func() {
		if l.tx.ring != nil {
			l.tx.ring.Close()
		}
	}()
	rl := l.ring
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		ready <- fmt.Errorf("media: eventfd: %w", err)
		return
	}
	rl.evfd = efd
	defer unix.Close(efd)
	// The park set: the loop's sockets (watch adds them) and its eventfd, in an epoll
	// instance that is itself in the runtime's netpoller.
	ep, epfd, err := newEpollFile("media-ring-park")
	if err != nil {
		ready <- err
		return
	}
	rl.epfd = epfd
	defer ep.Close()
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: -1}); err != nil {
		ready <- fmt.Errorf("media: epoll_ctl eventfd: %w", err)
		return
	}
	rc, err := ep.SyscallConn()
	if err != nil {
		ready <- fmt.Errorf("media: epoll descriptor: %w", err)
		return
	}
	if rl.rr, err = uring.NewRecv(ringEntries, ringCQ, ringBufs, maxPacket); err != nil {
		ready <- err
		return
	}
	defer rl.rr.Close()
	ready <- nil
	var last time.Time // the last round's start while busy (zero: parked since); stallCheck
	for {
		round := time.Now()
		stallCheck(last, round)
		last = round
		pkts, stop := l.ringRound()
		if stop {
			return
		}
		if pkts >= coalesceMin {
			runtime.Gosched()
			if rest := coalesceWindow - time.Since(round); rest > 0 && !rl.urgent.Load() {
				rl.sleep(rest)
			}
			continue
		}
		// Park: the park set's old events cleared, then one more round for what came before
		// (and for the requests queued before parked was set: later ones write the eventfd),
		// then the goroutine parks in the netpoller until a socket or the eventfd is ready.
		rl.parked.Store(true)
		rl.readyEvents(uintptr(epfd))
		if pkts, stop = l.ringRound(); stop {
			return
		}
		if pkts == 0 {
			parked := time.Now()
			_ = ep.SetReadDeadline(parked.Add(parkMax))
			if err := rc.Read(rl.readyEvents); err != nil {
				// Nothing for parkMax: a round anyway, and whether it finds datagrams the
				// kernel should have woken the loop for (ringMissedWakeups).
				rl.parked.Store(false)
				n, stop := l.ringRound()
				if stop {
					return
				}
				if n > 0 {
					ringMissedWakeups.Add(1)
				}
				last = time.Time{}
				continue
			}
			if rest := coalesceWindow - time.Since(parked); rest > 0 && !rl.urgent.Load() {
				rl.sleep(rest)
			}
			last = time.Time{} // parked: the wait was for traffic, not a stall
		}
		rl.parked.Store(false)
	}
}

// readyEvents takes the park set's ready events (false: none, park) and clears the eventfd
// when it was among them.
func (rl *ringLoop) readyEvents(epfd uintptr) bool {
	n, _ := epollPoll(int(epfd), rl.events[:])
	for i := range n {
		if rl.events[i].Fd == -1 {
			rl.drain()
		}
	}
	return n > 0
}

// sleep waits d on the loop's thread without releasing its P (rawSleep says why), or less when
// the eventfd is written meanwhile: by a cancellation or a stop (request), which the round
// that follows serves at once.
func (rl *ringLoop) sleep(d time.Duration) {
	fds := [1]unix.PollFd{{Fd: int32(rl.evfd), Events: unix.POLLIN}}
	ts := unix.NsecToTimespec(int64(d))
	n, _, _ := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if n == 1 {
		rl.drain()
	}
}

// drain clears the loop's eventfd.
func (rl *ringLoop) drain() {
	var b [8]byte
	unix.Read(rl.evfd, b[:])
}

// request queues q for the loop and wakes it when it is parked, or when q is a cancellation
// (unwatch waits for it) or a stop. A busy loop takes a watch in its next round, at most a
// coalescing window later, so that the watches of calls set up meanwhile share a round.
func (l *pollLoop) request(q ringReq) {
	rl := l.ring
	urgent := q.cancel || q.w == nil
	rl.reqMu.Lock()
	rl.reqs = append(rl.reqs, q)
	rl.reqMu.Unlock()
	if urgent {
		rl.urgent.Store(true)
	} else if !rl.parked.Load() {
		// The loop sets parked before the round that precedes its parking, which takes what
		// was queued before: this request was, or the loop is not about to park.
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		if _, err := unix.Write(rl.evfd, one[:]); err != unix.EINTR {
			return
		}
	}
}

// ringRound handles the requests, enters the ring — once, more while a backlog or receives to
// arm remain (below) —, hands every datagram received to its socket's handler and sends what
// they forwarded. It returns the datagrams handled, and stop when the loop is to end.
func (l *pollLoop) ringRound() (pkts int, stop bool) {
	rl := l.ring
	rl.urgent.Store(false) // before taking the queue: a cancellation queued after sets it again
	rl.reqMu.Lock()
	rl.work, rl.reqs = rl.reqs, rl.work[:0]
	rl.reqMu.Unlock()
	for i := range rl.work {
		q := &rl.work[i]
		switch {
		case q.w == nil:
			stop = true
		case q.cancel:
			if q.w.armed {
				if rl.rr.Room() == 0 {
					_ = rl.rr.Enter()
				}
				rl.rr.PrepCancel(tagRecv|uint64(q.w.slot), tagCancel)
			} else {
				q.w.finish() // never armed, or its receive ended already
			}
		default:
			rl.toArm = append(rl.toArm, q.w)
		}
		rl.work[i] = ringReq{}
	}
	if stop {
		return 0, true
	}
	// An Enter runs at most a batch of sockets' receives (uring.RecvRing.Batch) and arms at
	// most a batch (an armed receive takes what its socket holds at once), so that a backlog
	// never takes every buffer at once; an Enter that produced a batch, or left receives to
	// arm, is followed by another, after the buffers its datagrams used went back. Without
	// the bound on arming, 12.9 million receives ended out of buffers in one make bench
	// (BENCHMARKS.md, session 15): every round armed again more receives than it had buffers.
	// An Enter's error is the ring's own (not a socket's), which nothing causes but a kernel
	// bug: the next round tries again, and calls whose sockets stop being read end on their
	// media timeout.
	next := 0 // rl.toArm[next:] wait to be armed; complete appends to it
	for range maxEnters {
		for end := min(len(rl.toArm), next+rl.rr.Batch()); next < end; next++ {
			l.arm(rl.toArm[next])
			rl.toArm[next] = nil
		}
		_ = rl.rr.Enter()
		got := 0
		for {
			n := rl.rr.Reap(rl.cqes[:])
			if n == 0 {
				break
			}
			got += n
			at := time.Now()
			for i := range n {
				pkts += l.complete(&rl.cqes[i], at)
			}
			if n < len(rl.cqes) {
				break
			}
		}
		if got < rl.rr.Batch() && next == len(rl.toArm) {
			break
		}
	}
	n := copy(rl.toArm, rl.toArm[next:]) // what maxEnters left, for the next round
	clear(rl.toArm[n:])
	rl.toArm = rl.toArm[:n]
	l.tx.flush()
	return pkts, false
}

// arm starts w's multishot receive, unless w is being unwatched.
func (l *pollLoop) arm(w *watch) {
	if w.armed || w.state.Load() != watchIdle {
		return
	}
	if l.ring.rr.Room() == 0 {
		_ = l.ring.rr.Enter()
	}
	l.ring.rr.PrepRecv(w.fd, tagRecv|uint64(w.slot))
	w.armed = true
}

// complete handles one completion and returns the datagrams it handed to a handler (0 or 1).
func (l *pollLoop) complete(c *uring.Completion, at time.Time) int {
	if c.UserData&tagRecv == 0 {
		return 0 // a cancellation's own
	}
	rr := l.ring.rr
	id, hasBuf := c.Buffer()
	slot := int(c.UserData &^ tagRecv)
	var w *watch
	if slot >= 0 && slot < len(l.rx.slots) {
		w = l.rx.slots[slot].Load()
	}
	if w != nil && w.loop != l {
		w = nil
	}
	n := 0
	if hasBuf {
		if c.Res >= 0 && w != nil && w.state.Load() == watchIdle {
			b, src, _ := rr.Datagram(id, c.Res)
			w.handle(b, src, at, l.tx)
			n = 1
		}
		rr.Recycle(id)
	}
	if !c.More() && w != nil {
		// The receive ended: cancelled (unwatch), out of buffers, or a socket error.
		w.armed = false
		if w.state.Load() == watchIdle {
			receiveRearms.Add(1)
			l.ring.toArm = append(l.ring.toArm, w)
		} else {
			w.finish()
		}
	}
	return n
}

// finish ends an unwatch of a ring loop's watch: its receive is no longer armed and its handler
// will not be called again.
func (w *watch) finish() {
	if w.state.CompareAndSwap(watchClosing, watchClosed) {
		close(w.done)
	}
}

// unwatchRing is unwatch for a ring loop's watch: the loop cancels its receive and finishes it
// once the receive's last completion came.
func (r *receiver) unwatchRing(w *watch) {
	if !w.state.CompareAndSwap(watchIdle, watchClosing) {
		return // unwatched already
	}
	w.loop.request(ringReq{w: w, cancel: true})
	<-w.done
	r.mu.Lock()
	_ = unix.EpollCtl(w.loop.ring.epfd, unix.EPOLL_CTL_DEL, w.fd, nil)
	r.slots[w.slot].CompareAndSwap(w, nil)
	w.loop.n--
	stop := r.detachIfIdle(w.loop)
	r.mu.Unlock()
	stop()
}

// ringUnavailable is why loops receive with epoll here (nil: not tried yet, or the ring works).
var ringErr struct {
	sync.Mutex
	err error
}

func ringUnavailable() error {
	ringErr.Lock()
	defer ringErr.Unlock()
	return ringErr.err
}

func setRingUnavailable(err error) {
	ringErr.Lock()
	defer ringErr.Unlock()
	if ringErr.err == nil {
		ringErr.err = err
	}
}

// ringLoops is how many of the receiver's loops receive through a ring.
func (r *receiver) ringLoops() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.loops {
		if l != nil && l.ring != nil {
			n++
		}
	}
	return n
}

// ReceivePath reports how the poll loops of this process receive: "io_uring" (a multishot
// receive ring per loop) or "epoll" (epoll and recvmmsg(2)), and why not the ring when the
// kernel refused it. The first call probes the kernel (a ring set up and closed on a thread of
// its own) unless a loop already did.
func ReceivePath() (string, error) {
	if os.Getenv(ReceiveEnv) == "epoll" {
		return "epoll", fmt.Errorf("%s=epoll chose it", ReceiveEnv)
	}
	probeOnce.Do(func() {
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			rr, err := uring.NewRecv(8, 16, 2, maxPacket)
			if err == nil {
				rr.Close()
			}
			done <- err
		}()
		if err := <-done; err != nil {
			setRingUnavailable(err)
		}
	})
	if err := ringUnavailable(); err != nil {
		return "epoll", err
	}
	return "io_uring", nil
}

var probeOnce sync.Once
