//go:build linux

package media

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-voice/switchboard/internal/uring"
)

// Receiving on Linux: a few epoll-driven readers for every socket of an allocator.
//
// One reader goroutine per socket (two per leg) costs a goroutine stack per socket and a
// goroutine wake-up per datagram: at 1,000 calls that is 4,000 goroutines and 100,000
// switches a second on one core. Here a handful of poll loops (one per GOMAXPROCS, at most
// maxPollLoops) each own an epoll instance holding many sockets, edge-triggered. A loop's epoll
// descriptor is itself registered in the Go runtime's netpoller, so a loop with nothing to read
// parks like any goroutine blocked on a socket (no thread is held in epoll_wait(2)); when
// it wakes, one epoll_wait(2) names every socket with something queued and the loop drains each
// with recvmmsg(2), handing each datagram to the socket's handler on the loop's goroutine. One
// wake-up serves as many packets as arrived meanwhile: the busier the gateway, the more each
// costs less. A busy loop is not woken per packet at all but reads once a millisecond
// (coalesceWindow, poll).
//
// The loops read the sockets' descriptors outside the net package's locking. That is safe
// because a socket is unwatched (its watch closed, removed from the epoll set, and any handling
// of it finished) before its descriptor is closed (Endpoint.Close → unwatch → Release).

// recvBatch is how many datagrams one recvmmsg(2) may return. At 50 packets/s per socket one
// is the rule; more wait only when the loop ran late, and then one call takes them all.
const recvBatch = 8

// maxDrain bounds the batches read from one socket per wake-up, so that one flooded port (an RTP
// sprayer) cannot starve the others; a socket left with data is re-armed and comes back in the
// next round.
const maxDrain = 4

// pollEvents is how many ready sockets one epoll_wait(2) may name.
const pollEvents = 128

// maxPollLoops caps the loops of one allocator (one per GOMAXPROCS below it).
const maxPollLoops = 8

// rxBatch is the buffers of one recvmmsg(2) call. A poll loop owns one.
type rxBatch struct {
	msgs  [recvBatch]unix.Mmsghdr
	iovs  [recvBatch]unix.Iovec
	names [recvBatch]unix.RawSockaddrInet6 // room for either family
	bufs  [recvBatch][maxPacket]byte
}

func newRxBatch() *rxBatch {
	b := &rxBatch{}
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(maxPacket)
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.SetIovlen(1)
		b.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// recvmmsg reads up to recvBatch datagrams without blocking.
func (b *rxBatch) recvmmsg(fd int) (int, syscall.Errno) {
	for i := range b.msgs {
		b.msgs[i].Hdr.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		b.msgs[i].Hdr.Flags = 0
		b.msgs[i].Len = 0
	}
	for {
		// A raw system call (no entersyscall/exitsyscall around it: 2 % of the gateway's CPU
		// at 1,000 calls, BENCHMARKS.md session 8): MSG_DONTWAIT never blocks, so the
		// runtime has nothing to hand off while it runs.
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[0])), recvBatch,
			unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), 0
	}
}

// packet returns datagram i and its source. A datagram cut short by the buffer comes back
// maxPacket long, which the handlers reject as they did a truncated read.
func (b *rxBatch) packet(i int) ([]byte, netip.AddrPort) {
	n := int(b.msgs[i].Len)
	if b.msgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
		n = maxPacket
	}
	return b.bufs[i][:n], uring.AddrPort(&b.names[i])
}

// A watch's states: the loop moves idle → busy → idle around handling its socket; unwatch
// moves idle → closed, or busy → closing and waits until the loop, finding closing where it
// left busy, sets closed and closes done.
const (
	watchIdle uint32 = iota
	watchBusy
	watchClosing
	watchClosed
)

// watch is one socket in a poll loop.
type watch struct {
	fd     int
	slot   int
	loop   *pollLoop
	handle handler
	state  atomic.Uint32
	done   chan struct{}
	armed  bool // a ring loop's: the socket's multishot receive is armed (loop goroutine only)
}

// receiver is an allocator's poll loops and the table the loops find a ready socket's watch in.
// The table is indexed by slot (the socket's port's offset in the allocator's range), written
// under mu by watch and unwatch and read by the loops without a lock.
type receiver struct {
	slots []atomic.Pointer[watch]

	mu    sync.Mutex // watch/unwatch: loops and their counts
	loops []*pollLoop

	// noRing, set before the first watch (tests), makes the loops send with sendmmsg(2) as
	// where the kernel refuses io_uring.
	noRing bool
	// epoll, set before the first watch (tests), makes the loops receive with epoll and
	// recvmmsg(2) as where the kernel has no multishot receive ring (recvring_linux.go).
	epoll bool
}

// newReceiver returns a receiver for sockets of slots [0, slots).
func newReceiver(slots int) *receiver {
	n := min(max(min(runtime.GOMAXPROCS(0), usableCPUs()), 1), maxPollLoops)
	return &receiver{slots: make([]atomic.Pointer[watch], slots), loops: make([]*pollLoop, n),
		epoll: os.Getenv(ReceiveEnv) == "epoll"}
}

// usableCPUs is how many CPUs the process may run on (its affinity mask), which is fewer than
// GOMAXPROCS when the GOMAXPROCS environment variable sets it higher: more poll loops than
// CPUs would only take turns on them.
func usableCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil || set.Count() < 1 {
		return runtime.NumCPU()
	}
	return set.Count()
}

// maxReaders is the most goroutines (and epoll descriptors) reading the given number of sockets.
func (r *receiver) maxReaders(int) int { return len(r.loops) }

// pollLoop is one reader goroutine and its epoll instance; started with its first socket and
// stopped with its last, so an idle allocator holds no goroutine.
type pollLoop struct {
	rx     *receiver
	ring   *ringLoop // a ring loop's (recvring_linux.go); nil: an epoll loop
	epfd   *os.File  // in the runtime's netpoller
	fd     int       // epfd's descriptor, valid until the loop stops
	n      int       // sockets watched (receiver.mu)
	exited chan struct{}
	events [pollEvents]unix.EpollEvent // loop goroutine only
	batch  *rxBatch                    // loop goroutine only
	parked time.Time                   // when poll last returned to park (zero: busy); loop goroutine only
	last   time.Time                   // when the last round of a busy loop began (zero: parked since); loop goroutine only
	tx     *txBatch                    // loop goroutine only
}

// watch starts handing every datagram conn receives to handle, on a poll loop's goroutine,
// until unwatch. slot identifies the socket among the receiver's (no two live watches share
// one). handle must not call watch or unwatch.
func (r *receiver) watch(slot int, sock *Socket, handle handler) (*watch, error) {
	fd := sock.descriptor()
	if fd < 0 {
		return nil, fmt.Errorf("media: watch socket: %w", os.ErrClosed)
	}
	var err error
	if slot < 0 || slot >= len(r.slots) {
		return nil, fmt.Errorf("media: watch socket: slot %d out of range", slot)
	}
	r.mu.Lock()
	li, least := 0, -1 // the loop with the fewest sockets (a loop not started has none)
	for i, l := range r.loops {
		n := 0
		if l != nil {
			n = l.n
		}
		if least < 0 || n < least {
			li, least = i, n
		}
	}
	l := r.loops[li]
	if l == nil {
		if l, err = r.startLoop(); err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.loops[li] = l
	}
	w := &watch{fd: fd, slot: slot, loop: l, handle: handle, done: make(chan struct{})}
	r.slots[slot].Store(w)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(slot)}
	epfd := l.fd // an epoll loop's instance, or a ring loop's park set (recvring_linux.go)
	if l.ring != nil {
		epfd = l.ring.epfd
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.slots[slot].CompareAndSwap(w, nil)
		stop := r.detachIfIdle(l)
		r.mu.Unlock()
		stop()
		return nil, fmt.Errorf("media: watch socket: epoll_ctl: %w", err)
	}
	l.n++
	if l.ring != nil {
		l.request(ringReq{w: w})
	}
	r.mu.Unlock()
	return w, nil
}

// unwatch stops the handling of w's socket: when it returns, its handler is not running and
// will not be called again, and the socket may be closed. Idempotent.
func (r *receiver) unwatch(w *watch) {
	if w.loop.ring != nil {
		r.unwatchRing(w)
		return
	}
	for {
		switch w.state.Load() {
		case watchIdle:
			if !w.state.CompareAndSwap(watchIdle, watchClosed) {
				continue
			}
		case watchBusy:
			if !w.state.CompareAndSwap(watchBusy, watchClosing) {
				continue
			}
			<-w.done // the loop finishes the batch it is handling
		default:
			return // unwatched already
		}
		break
	}
	r.mu.Lock()
	_ = unix.EpollCtl(w.loop.fd, unix.EPOLL_CTL_DEL, w.fd, nil)
	r.slots[w.slot].CompareAndSwap(w, nil)
	w.loop.n--
	stop := r.detachIfIdle(w.loop)
	r.mu.Unlock()
	stop()
}

// startLoop starts a loop (r.mu held): a ring loop where the kernel has what it needs, else an
// epoll loop.
func (r *receiver) startLoop() (*pollLoop, error) {
	if !r.epoll && ringUnavailable() == nil {
		l, err := r.startRingLoop()
		if err == nil {
			return l, nil
		}
		setRingUnavailable(err)
	}
	return r.startEpollLoop()
}

// startEpollLoop creates an epoll instance and its goroutine (r.mu held).
func (r *receiver) startEpollLoop() (*pollLoop, error) {
	ep, fd, err := newEpollFile("media-epoll")
	if err != nil {
		return nil, err
	}
	l := &pollLoop{rx: r, epfd: ep, fd: fd, exited: make(chan struct{}), batch: newRxBatch(), tx: newTxBatch()}
	if r.noRing {
		// tests: the sendmmsg path, as where the kernel refuses io_uring
	} else if ring, err := uring.New(txCap); err == nil {
		l.tx.ring = ring
	}
	rc, err := l.epfd.SyscallConn()
	if err != nil {
		l.epfd.Close()
		return nil, fmt.Errorf("media: epoll descriptor: %w", err)
	}
	go l.run(rc)
	return l, nil
}

// newEpollFile creates an epoll instance as a file in the runtime's netpoller (non-blocking: an
// epoll descriptor is readable while its ready list is not empty), and returns its descriptor.
func newEpollFile(name string) (*os.File, int, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, -1, fmt.Errorf("media: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("media: epoll set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), name), fd, nil
}

// detachIfIdle takes l out of service once it watches nothing (r.mu held) and returns what
// stops it: the caller calls it after unlocking, and it returns when l's goroutine has ended.
func (r *receiver) detachIfIdle(l *pollLoop) (stop func()) {
	if l.n > 0 {
		return func() {}
	}
	for i := range r.loops {
		if r.loops[i] == l {
			r.loops[i] = nil
		}
	}
	if l.ring != nil {
		return func() {
			l.request(ringReq{}) // stop
			<-l.exited
		}
	}
	return func() {
		l.epfd.Close() // wakes the loop's wait with an error; closes the descriptor after it
		<-l.exited
	}
}

// run is the loop's goroutine: it parks in the netpoller until the epoll instance has ready
// sockets, serves them, and ends when the epoll descriptor is closed.
func (l *pollLoop) run(rc syscall.RawConn) {
	defer close(l.exited)
	defer func() {
		if l.tx.ring != nil {
			l.tx.ring.Close()
		}
	}()
	for {
		if err := rc.Read(l.poll); err != nil {
			return
		}
	}
}

// coalesceWindow is the pace of a busy poll loop: once packets come more often than one per
// window, the loop stops being woken by each of them and instead reads every socket that is
// ready once per window, sleeping between the rounds. A wake-up (the sender's loopback softirq
// waking the loop's thread, the scheduler switching to it, the runtime's netpoller handing it
// the epoll descriptor) cost more than a packet's own forwarding in this machine's guest, and
// between about 500 and 1,000 calls — a loop fast enough to keep up with the packets one or two
// at a time — the gateway paid one per packet or two: 12.2 µs of CPU per packet at 750 calls
// against 8.5 µs at 1,000, where the loop fell behind and read many per round (BENCHMARKS.md,
// session 10). A millisecond delays a packet by at most that (its 20 ms of audio is not
// touched; a phone's jitter buffer is 20–60 ms) and makes a round carry a millisecond of
// traffic whatever the load: 100 packets at 1,000 calls.
const coalesceWindow = time.Millisecond

// coalesceMin is how many packets a round must carry for the loop to stay busy (sleep and read
// again) rather than park in the netpoller: below it (under about 2,000 packets a second on
// the loop) every packet wakes the loop, as before, at no delay.
const coalesceMin = 2

// poll serves every ready socket and returns false to park again. Parking after an
// epoll_wait(2) that came back short of full loses nothing: a datagram queued after it adds its
// socket to the ready list, which makes the epoll descriptor readable, which the netpoller
// reports to the wait that follows.
//
// Coalescing (coalesceWindow): woken less than a window after it parked, the loop first sleeps
// the rest of the window, so the round reads what came meanwhile; a round that carried
// coalesceMin packets or more is followed, instead of parking, by a yield to the goroutines
// waiting for the processor (SIP, timers, the recordings' clock) and a sleep until a window
// after the round began — none when the round and the yield took that long, so a loop near
// its core's limit reads back to back as before and a packet waits at most a round. The
// sleep is nanosleep(2) as a raw system call: the loop keeps its P, so no other thread of the
// runtime waits in the netpoller meanwhile and is woken by each packet — which is the cost the
// sleep is there to avoid. Other goroutines wait for the P at most a window (they run in the
// yield).
func (l *pollLoop) poll(epfd uintptr) bool {
	if !l.parked.IsZero() {
		if rest := coalesceWindow - time.Since(l.parked); rest > 0 {
			rawSleep(rest)
		}
		l.parked = time.Time{}
	}
	for {
		round := time.Now()
		stallCheck(l.last, round)
		l.last = round
		n, err := epollPoll(int(epfd), l.events[:])
		if err == unix.EINTR {
			continue
		}
		if err != 0 {
			l.tx.flush()
			l.last = time.Time{}
			return false
		}
		pkts := 0
		for i := range n {
			pkts += l.serve(int(l.events[i].Fd))
		}
		// The round's forwarded packets go out now, before the loop parks or reads again.
		l.tx.flush()
		if n == len(l.events) {
			continue
		}
		if pkts < coalesceMin {
			l.parked, l.last = time.Now(), time.Time{}
			return false
		}
		runtime.Gosched()
		if rest := coalesceWindow - time.Since(round); rest > 0 {
			rawSleep(rest)
		}
	}
}

// rawSleep sleeps d on the calling thread without releasing its P (see poll). A signal cuts
// it short (EINTR), which only makes the round come sooner.
func rawSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// epollPoll is epoll_wait(2) with a zero timeout — it never blocks — as a raw system call,
// like recvmmsg's. epoll_pwait with no signal mask is epoll_wait, on every architecture
// (arm64 has only the former).
func epollPoll(epfd int, events []unix.EpollEvent) (int, syscall.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// serve drains the socket of slot, unless it is being unwatched, and returns how many
// datagrams it read.
func (l *pollLoop) serve(slot int) (pkts int) {
	if slot < 0 || slot >= len(l.rx.slots) {
		return 0
	}
	w := l.rx.slots[slot].Load()
	if w == nil || w.loop != l || !w.state.CompareAndSwap(watchIdle, watchBusy) {
		return 0 // unwatched since the event (the slot may hold another socket by now)
	}
	b := l.batch
	full := false
	for range maxDrain {
		n, errno := b.recvmmsg(w.fd)
		if errno != 0 || n == 0 {
			// EAGAIN: nothing queued. Another error (the socket's pending error, reported
			// once) is not retried: the next datagram's event comes back here; a socket that
			// stops working ends the call on its media timeout.
			full = false
			break
		}
		at := time.Now()
		pkts += n
		for i := range n {
			p, src := b.packet(i)
			w.handle(p, src, at, l.tx)
		}
		// Without a ring, the packets these forwarded go out now, in one sendmmsg(2) per
		// destination socket: before the next read, so nothing waits on the loop's later
		// work. With one, the whole round's go in one io_uring_enter(2) (poll).
		if l.tx.ring == nil {
			l.tx.flush()
		}
		// Short of full: the queue was empty at that instant, and whatever arrives after it
		// raises a new edge. A full batch is followed by another read at once.
		full = n == recvBatch
		if !full {
			break
		}
	}
	if full { // maxDrain reached with more queued: have epoll report it again next round
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(slot)}
		_ = unix.EpollCtl(l.fd, unix.EPOLL_CTL_MOD, w.fd, &ev)
	}
	if !w.state.CompareAndSwap(watchBusy, watchIdle) { // unwatch is waiting
		w.state.Store(watchClosed)
		close(w.done)
	}
	return pkts
}

// txCap is how many forwarded packets a poll loop's send batch holds: the packets of a round
// of ready sockets (more are sent when it fills).
const txCap = 64

// txBatch is a poll loop's send batch: the packets its handlers forwarded, queued in runs —
// the packets of one sender (the leg they leave from) one after the other, each sender in one
// run only — and sent by flush. With an io_uring (internal/uring) every packet of the batch
// goes in one io_uring_enter(2) — one IORING_OP_SENDMSG each, on the socket of the leg it
// leaves from, MSG_DONTWAIT (a full send buffer drops the packet, as rawSender does) — whatever
// leg it leaves from, and the poll loop flushes once per round of
// ready sockets; without (the kernel refuses io_uring), each run goes in one sendmmsg(2) and
// the loop flushes after every read, as before. Every leg sends from its own socket (symmetric
// RTP, RFC 4961), so sendmmsg(2) can only batch the packets of one leg, which at 50 packets a
// second per leg is one a call. Owned by the loop's goroutine; its buffers are the loop's, so
// nothing is allocated or pooled per packet.
type txBatch struct {
	cur   *sender // the sender claim was last called for
	n     int
	runs  [txCap]txRun
	nruns int
	msgs  [txCap]unix.Mmsghdr
	iovs  [txCap]unix.Iovec
	names [txCap]unix.RawSockaddrInet6 // room for either family
	at    [txCap]time.Time
	res   [txCap]int32 // the ring's result of each packet: bytes sent, or -errno
	bufs  [txCap][maxPacket]byte
	// ring, when not nil, sends the batch (the poll loop's; newTxBatch leaves it nil).
	ring *uring.Ring
	// sendmmsg sends msgs on fd and returns how many went, as sendmmsg(2) does: an error
	// only when the first could not be sent. Tests replace it to cut a batch short.
	sendmmsg func(fd int, msgs []unix.Mmsghdr) (int, syscall.Errno)
}

// txRun is a sender's packets in a batch, [start, end); open and cfg are flush's.
type txRun struct {
	s          *sender
	start, end int
	open       bool
	cfg        *epConfig
}

func newTxBatch() *txBatch {
	tx := &txBatch{sendmmsg: sendmmsg}
	for i := range tx.msgs {
		tx.iovs[i].Base = &tx.bufs[i][0]
		tx.msgs[i].Hdr.Iov = &tx.iovs[i]
		tx.msgs[i].Hdr.SetIovlen(1)
		tx.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&tx.names[i]))
	}
	return tx
}

// sendmmsg is sendmmsg(2) without blocking (a full send buffer is EAGAIN, as for rawSender),
// as a raw system call like recvmmsg's: it never blocks (at most txCap datagrams, each
// delivered or refused at once).
func sendmmsg(fd int, msgs []unix.Mmsghdr) (int, syscall.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)),
		unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// claim makes room in tx for a packet of s: a full batch is flushed first, and so is one in
// which s has a run that is not the last (a sender's packets stay in one run, so flush takes
// each sender's mutex once and sends its packets in order). Called without any sender's mutex
// held (flush takes them).
func (tx *txBatch) claim(s *sender) {
	if tx.n == len(tx.bufs) {
		tx.flush()
	} else if tx.nruns > 0 && tx.runs[tx.nruns-1].s != s {
		for r := range tx.nruns - 1 {
			if tx.runs[r].s == s {
				tx.flush()
				break
			}
		}
	}
	tx.cur = s
}

// next is the buffer of the packet being queued (tx.cur's mutex held, after claim).
func (tx *txBatch) next() []byte { return tx.bufs[tx.n][:] }

// add queues the n bytes written into next() for dst, as tx.cur's.
func (tx *txBatch) add(n int, dst netip.AddrPort, at time.Time) {
	i := tx.n
	tx.iovs[i].SetLen(n)
	tx.msgs[i].Hdr.Namelen = putSockaddr(&tx.names[i], dst)
	tx.msgs[i].Len = 0
	tx.at[i] = at
	if tx.nruns == 0 || tx.runs[tx.nruns-1].s != tx.cur {
		tx.runs[tx.nruns] = txRun{s: tx.cur, start: i}
		tx.nruns++
	}
	tx.runs[tx.nruns-1].end = i + 1
	tx.n++
}

// putSockaddr writes dst into sa as a sockaddr_in for an IPv4 address (which Linux takes on
// the dual-stack IPv6 socket of a wildcard bind too, as rawSender.send relies on) or a
// sockaddr_in6, and returns its length.
func putSockaddr(sa *unix.RawSockaddrInet6, dst netip.AddrPort) uint32 {
	port := dst.Port()
	if ip := dst.Addr().Unmap(); ip.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(port>>8), byte(port) // network byte order
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.Addr().As16()}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	return unix.SizeofSockaddrInet6
}

// flush sends the queued packets, each sender's in order, and empties the batch. A packet the
// kernel does not take (EAGAIN: the send buffer is full; any other error of its own) is
// dropped, as rawSender drops it, and the rest still go. Only what was sent is counted and
// tapped. A sender's mutex is held while its packets are sent and accounted, as around
// rawSender.send, so Close does not close the descriptor under the call; a sender closed since
// its packets were queued sends none of them.
func (tx *txBatch) flush() {
	if tx.n > 0 {
		if tx.ring != nil {
			tx.flushRing()
		} else {
			for r := range tx.nruns {
				tx.flushRun(&tx.runs[r])
			}
		}
	}
	clear(tx.runs[:tx.nruns]) // no sender kept reachable from an idle loop
	tx.n, tx.nruns, tx.cur = 0, 0, nil
}

// flushRun sends one run with sendmmsg(2): the call stops at the first message it cannot
// send, so a short count is followed by another call from the message after it.
func (tx *txBatch) flushRun(run *txRun) {
	s := run.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ep.closed.Load() {
		return
	}
	cfg := s.ep.cfg.Load()
	for i, n := run.start, run.end; i < n; {
		sent, errno := tx.sendmmsg(s.raw.fd, tx.msgs[i:n])
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || sent <= 0 {
			i++ // message i is dropped
			continue
		}
		sent = min(sent, n-i)
		for j := i; j < i+sent; j++ {
			s.sent(cfg, tx.bufs[j][:tx.iovs[j].Len], tx.at[j])
		}
		i += sent
	}
}

// flushRing sends the whole batch through the ring: every open run's sender locked, one
// submission per packet, one io_uring_enter(2), then each packet that went counted and tapped
// in order, and the senders unlocked. The mutexes are taken one after the other by this
// goroutine only; nothing that holds one of them waits for another, or for the loop.
func (tx *txBatch) flushRing() {
	var k uint32
	for r := range tx.nruns {
		run := &tx.runs[r]
		run.s.mu.Lock()
		run.open = !run.s.ep.closed.Load()
		if !run.open {
			continue
		}
		run.cfg = run.s.ep.cfg.Load()
		for i := run.start; i < run.end; i++ {
			tx.ring.PrepSendmsg(k, run.s.raw.fd, &tx.msgs[i].Hdr)
			k++
		}
	}
	if k > 0 {
		if errno := tx.ring.Submit(k, tx.res[:k]); errno != 0 {
			// The ring failed as a whole (not a send): from now on, sendmmsg(2).
			tx.ring.Close()
			tx.ring = nil
		}
	}
	k = 0
	for r := range tx.nruns {
		run := &tx.runs[r]
		if run.open {
			for i := run.start; i < run.end; i++ {
				if tx.res[k] >= 0 {
					run.s.sent(run.cfg, tx.bufs[i][:tx.iovs[i].Len], tx.at[i])
				}
				k++
			}
		}
		run.s.mu.Unlock()
	}
}

// rawSender sends an endpoint's RTP on its socket's descriptor without waiting: a datagram the
// kernel cannot take at once (EAGAIN: the send buffer is full, which on loopback means the
// receiver is not reading) is dropped, as a router would drop it, instead of parking the poll
// loop — which reads every other leg's sockets too — until that one socket drains. The net
// package's WriteTo waits for the socket to become writable. The sender's mutex is held around
// every send and Close takes it after marking the endpoint closed, so no send uses the
// descriptor once Close goes on to close it.
type rawSender struct {
	fd  int
	sa4 unix.SockaddrInet4
	sa6 unix.SockaddrInet6
}

func newRawSender(sock *Socket) (*rawSender, error) {
	fd := sock.descriptor()
	if fd < 0 {
		return nil, fmt.Errorf("media: raw sender: %w", os.ErrClosed)
	}
	return &rawSender{fd: fd}, nil
}

// send sends b to dst once, without blocking. Callers serialise (the sender's mutex).
func (s *rawSender) send(b []byte, dst netip.AddrPort) error {
	// An IPv4 destination takes a sockaddr_in, on an IPv4 socket and on the dual-stack IPv6
	// socket the net package opens for a wildcard bind alike (Linux's udpv6_sendmsg hands it
	// to IPv4); an IPv6 one a sockaddr_in6.
	var sa unix.Sockaddr
	if ip := dst.Addr().Unmap(); ip.Is4() {
		s.sa4.Addr, s.sa4.Port = ip.As4(), int(dst.Port())
		sa = &s.sa4
	} else {
		s.sa6.Addr, s.sa6.Port = ip.As16(), int(dst.Port())
		sa = &s.sa6
	}
	for {
		err := unix.Sendto(s.fd, b, unix.MSG_DONTWAIT, sa)
		if err != unix.EINTR {
			return err
		}
	}
}
