//go:build linux

package uring

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RecvRing receives datagrams on many UDP sockets without a system call per datagram: each
// socket gets one multishot IORING_OP_RECVMSG (armed once, it stays armed), the datagrams land
// in buffers the ring provides (a registered buffer ring), and the ring is set up with
// IORING_SETUP_DEFER_TASKRUN, so the kernel does the receiving only when the owner asks — in
// Enter, every datagram that arrived since on every socket at once, each one a completion.
//
// Why not epoll and recvmmsg(2): at 1,000 calls a media poll loop's 1 ms round finds about 100
// sockets with one datagram each (a leg gets one every 20 ms), so recvmmsg read one datagram a
// system call — 80,000 a second, a quarter of the gateway's core (BENCHMARKS.md, session 15),
// most of it the system call's entry and the descriptor's lookup rather than the copy. Session
// 11's attempt, one non-multishot IORING_OP_RECVMSG per ready socket after epoll_wait(2),
// kept epoll and paid an entry's preparation, a file reference and a re-poll per datagram.
//
// DEFER_TASKRUN requires IORING_SETUP_SINGLE_ISSUER: every Enter must come from the OS thread
// that created the ring, so its owner is a goroutine locked to its thread
// (runtime.LockOSThread) for the ring's whole life. An idle owner can wait in the ring itself
// (Wait): the kernel wakes the waiting thread as soon as a datagram arrives on an armed socket,
// or as a poll armed on another descriptor (PrepPoll: an eventfd others write) fires — but the
// wait is a blocking system call that keeps the Go runtime's P until sysmon takes it back, so
// the media plane parks in the netpoller on an epoll set of its sockets instead. No eventfd is
// registered with the ring (IORING_REGISTER_EVENTFD): with DEFER_TASKRUN, Linux 6.18 here
// signalled one about 10 ms after a datagram on an idle machine (8–16 ms for most of them,
// where a wait in the ring took under 1 ms) and hundreds of milliseconds under load — audio
// lost in the end-to-end tests (BENCHMARKS.md, session 17).
//
// Linux 6.1 and later (multishot receives 6.0, DEFER_TASKRUN 6.1, buffer rings 5.19); NewRecv
// fails where the kernel lacks any of it, and callers keep their epoll path.
type RecvRing struct {
	r *Ring

	bufRing  []byte // nbufs io_uring_buf entries; the tail is the u16 at offset 14
	bufs     []byte // nbufs × bufSize
	nbufs    uint16
	bufSize  int
	bufTail  uint16 // the buffer ring's tail as this side will publish it
	pending  uint32 // entries prepared since the last Enter (beyond the queue's tail)
	msg      unix.Msghdr
	batch    uint32        // Enter's min_complete: the most sockets' receives one Enter runs
	arg      getEventsArg  // Enter's: a zero timeout
	zero     unix.Timespec // arg's timeout
	waitArg  getEventsArg  // Wait's: its timeout
	waitTS   unix.Timespec // waitArg's timeout
	canceled atomic.Uint64 // cancellations submitted (tests)
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask     uint64
	sigmaskSz   uint32
	minWaitUsec uint32
	ts          uint64
}

// Completion is one completion of a RecvRing: the user data the submission carried, its result
// and its flags.
type Completion struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// More reports that the multishot request the completion belongs to stays armed.
func (c *Completion) More() bool { return c.Flags&cqeFMore != 0 }

// Buffer reports the buffer the completion's datagram is in, if it has one.
func (c *Completion) Buffer() (id uint16, ok bool) {
	return uint16(c.Flags >> 16), c.Flags&cqeFBuffer != 0
}

const (
	setupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER
	setupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN
	setupSubmitAll    = 1 << 7  // IORING_SETUP_SUBMIT_ALL
	opRecvmsg         = 10
	opAsyncCancel     = 14
	opPollAdd         = 6
	pollAddMulti      = 1 << 0 // IORING_POLL_ADD_MULTI, in the entry's len
	sqeBufferSelect   = 1 << 5 // IOSQE_BUFFER_SELECT
	recvMultishot     = 1 << 1 // IORING_RECV_MULTISHOT, in the entry's ioprio
	regPbufRing       = 22     // IORING_REGISTER_PBUF_RING
	cqeFBuffer        = 1 << 0
	cqeFMore          = 1 << 1
	bufGroup          = 0
	// recvmsgOut is struct io_uring_recvmsg_out, at the head of every multishot recvmsg
	// buffer: namelen, controllen, payloadlen, flags.
	recvmsgOut  = 16
	enterExtArg = 1 << 3 // IORING_ENTER_EXT_ARG
	// nameRoom is the room for the source address in each buffer: a sockaddr_in6.
	nameRoom = unix.SizeofSockaddrInet6
)

// NewRecv sets up a receive ring of entries submissions, a completion queue of cqEntries and
// nbufs receive buffers (a power of two) with room for datagrams of maxDatagram bytes. The
// calling goroutine must be locked to its OS thread and stay so until Close (see RecvRing).
func NewRecv(entries, cqEntries uint32, nbufs uint16, maxDatagram int) (*RecvRing, error) {
	if nbufs == 0 || nbufs&(nbufs-1) != 0 {
		return nil, fmt.Errorf("uring: %d receive buffers: not a power of two", nbufs)
	}
	r, _, err := setup(entries, setupSingleIssuer|setupDeferTaskrun|setupSubmitAll, cqEntries)
	if err != nil {
		return nil, err
	}
	rr := &RecvRing{r: r, nbufs: nbufs, bufSize: recvmsgOut + nameRoom + maxDatagram}
	fail := func(err error) (*RecvRing, error) {
		rr.Close()
		return nil, err
	}
	// The buffer ring and the buffers: anonymous mappings (page-aligned, outside the Go heap,
	// which the kernel writes into at any Enter).
	if rr.bufRing, err = unix.Mmap(-1, 0, int(nbufs)*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return fail(fmt.Errorf("uring: mmap buffer ring: %w", err))
	}
	if rr.bufs, err = unix.Mmap(-1, 0, int(nbufs)*rr.bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return fail(fmt.Errorf("uring: mmap receive buffers: %w", err))
	}
	var reg [40]byte // struct io_uring_buf_reg
	binary.NativeEndian.PutUint64(reg[0:], uint64(uintptr(unsafe.Pointer(&rr.bufRing[0]))))
	binary.NativeEndian.PutUint32(reg[8:], uint32(nbufs))
	binary.NativeEndian.PutUint16(reg[12:], bufGroup)
	if _, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), regPbufRing, uintptr(unsafe.Pointer(&reg[0])), 1, 0, 0); e != 0 {
		return fail(fmt.Errorf("uring: register buffer ring: %w", e))
	}
	for id := range nbufs {
		rr.Recycle(id)
	}
	rr.publish()
	// The template of every multishot receive: room for the source address, no control data,
	// no iovec (the buffer comes from the ring).
	rr.msg.Namelen = nameRoom
	// An eighth of the buffers: with as many receives armed in the same Enter (a caller's
	// share, see Batch), every socket may have up to four datagrams queued and they still fit
	// — so that a loop that stalled (a collection, a long clock visit) drains its backlog in
	// several Enters rather than running out of buffers, which ends the receives that found
	// none (ENOBUFS), each then to be armed again.
	rr.batch = max(min(uint32(nbufs)/8, cqEntries/2), 1)
	rr.arg.ts = uint64(uintptr(unsafe.Pointer(&rr.zero)))
	rr.waitArg.ts = uint64(uintptr(unsafe.Pointer(&rr.waitTS)))
	return rr, nil
}

// Close releases the ring (which cancels every request still armed) and its buffers. The owner
// goroutine, once; not the eventfd, which is the caller's.
func (rr *RecvRing) Close() {
	if rr.r != nil {
		rr.r.Close()
		rr.r = nil
	}
	if rr.bufs != nil {
		_ = unix.Munmap(rr.bufs)
		rr.bufs = nil
	}
	if rr.bufRing != nil {
		_ = unix.Munmap(rr.bufRing)
		rr.bufRing = nil
	}
}

// Room is how many more entries can be prepared before the next Enter.
func (rr *RecvRing) Room() uint32 {
	r := rr.r
	return r.entries - (atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)) - rr.pending
}

// PrepRecv prepares a multishot receive on the UDP socket fd whose completions carry userData.
// Its completions follow until one without More (an error, including ENOBUFS when the buffers
// ran out, or the cancellation's ECANCELED); then it is no longer armed. Room must be > 0.
func (rr *RecvRing) PrepRecv(fd int, userData uint64) {
	sqe := rr.r.sqe(rr.pending)
	rr.pending++
	sqe[0] = opRecvmsg
	sqe[1] = sqeBufferSelect
	binary.NativeEndian.PutUint16(sqe[2:], recvMultishot)
	binary.NativeEndian.PutUint32(sqe[4:], uint32(int32(fd)))
	binary.NativeEndian.PutUint64(sqe[16:], uint64(uintptr(unsafe.Pointer(&rr.msg))))
	binary.NativeEndian.PutUint32(sqe[24:], 1)
	binary.NativeEndian.PutUint64(sqe[32:], userData)
	binary.NativeEndian.PutUint16(sqe[40:], bufGroup)
}

// PrepPoll prepares a multishot poll for input on fd (an eventfd other goroutines write, say)
// whose completions carry userData: each time fd becomes readable, a completion — which ends
// a Wait. Its completions follow until one without More (then it is no longer armed). Room
// must be > 0.
func (rr *RecvRing) PrepPoll(fd int, userData uint64) {
	sqe := rr.r.sqe(rr.pending)
	rr.pending++
	sqe[0] = opPollAdd
	binary.NativeEndian.PutUint32(sqe[4:], uint32(int32(fd)))
	binary.NativeEndian.PutUint32(sqe[24:], pollAddMulti)
	binary.NativeEndian.PutUint32(sqe[28:], unix.POLLIN) // poll32_events
	binary.NativeEndian.PutUint64(sqe[32:], userData)
}

// Wait submits what was prepared and waits, at most timeout, for a completion: a datagram on
// an armed socket, or a poll's (PrepPoll). It is a blocking system call the Go runtime knows of
// (the thread's P serves other goroutines meanwhile). It reports whether a completion ended
// it: completions wait to be reaped (false: the timeout passed, or a signal interrupted the
// wait).
func (rr *RecvRing) Wait(timeout time.Duration) bool {
	rr.publish()
	r := rr.r
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+rr.pending)
	rr.pending = 0
	rr.waitTS = unix.NsecToTimespec(int64(timeout))
	n := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
	r.enters.Add(1)
	// The result is the entries submitted, or the wait's error (ETIME, EINTR) when none were:
	// what ended the wait is whether completions came.
	unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 1,
		enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&rr.waitArg)), unsafe.Sizeof(rr.waitArg))
	return atomic.LoadUint32(r.cqTail) != atomic.LoadUint32(r.cqHead)
}

// PrepCancel prepares the cancellation of the request that carries target; its own completion
// carries userData. Room must be > 0.
func (rr *RecvRing) PrepCancel(target, userData uint64) {
	sqe := rr.r.sqe(rr.pending)
	rr.pending++
	sqe[0] = opAsyncCancel
	binary.NativeEndian.PutUint64(sqe[16:], target)
	binary.NativeEndian.PutUint64(sqe[32:], userData)
	rr.canceled.Add(1)
}

// Enter submits what was prepared, publishes the buffers recycled since the last Enter, and has
// the kernel receive every datagram waiting on an armed socket (each becomes a completion). It
// never waits: a raw system call (the owner's thread keeps its P of the Go runtime). Entries
// the kernel could not take yet (EAGAIN, EBUSY: its completion queue is full) stay queued for
// the next Enter. An error is the ring's own.
func (rr *RecvRing) Enter() syscall.Errno {
	rr.publish()
	r := rr.r
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+rr.pending)
	rr.pending = 0
	for {
		n := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
		r.enters.Add(1)
		// min_complete with a zero timeout: the kernel runs up to that many sockets' deferred
		// receives before it returns (without it, 20 an enter; see Batch), and waits for
		// nothing.
		_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(rr.batch),
			enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&rr.arg)), unsafe.Sizeof(rr.arg))
		switch errno {
		case unix.EINTR:
			continue
		case 0, unix.EAGAIN, unix.EBUSY, unix.ETIME:
			return 0
		}
		return errno
	}
}

// Batch is the most sockets' deferred receives one Enter runs — an Enter that produced this
// many completions or more may have left some for the next — and the most receives a caller
// should arm before one Enter: an armed receive takes what waits on its socket at once, so
// arming more at a time could run the buffers out.
func (rr *RecvRing) Batch() int { return int(rr.batch) }

// Reap copies up to len(dst) completions into dst and consumes them.
func (rr *RecvRing) Reap(dst []Completion) int {
	r := rr.r
	head, tail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
	mask := atomic.LoadUint32(r.cqMask)
	n := 0
	for ; head != tail && n < len(dst); head++ {
		off := r.cqes + (head&mask)*cqeSize
		c := r.cqRing[off : off+cqeSize]
		dst[n] = Completion{
			UserData: binary.NativeEndian.Uint64(c[0:]),
			Res:      int32(binary.NativeEndian.Uint32(c[8:])),
			Flags:    binary.NativeEndian.Uint32(c[12:]),
		}
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// Datagram returns the datagram of a receive's completion that carries a buffer, and its
// source: res is the completion's result. A datagram longer than the buffer comes back with
// truncated set. The slice is the buffer's until Recycle.
func (rr *RecvRing) Datagram(id uint16, res int32) (b []byte, src netip.AddrPort, truncated bool) {
	if int(id) >= int(rr.nbufs) || res < recvmsgOut+nameRoom {
		return nil, netip.AddrPort{}, true
	}
	buf := rr.bufs[int(id)*rr.bufSize : (int(id)+1)*rr.bufSize]
	namelen := binary.NativeEndian.Uint32(buf[0:])
	flags := binary.NativeEndian.Uint32(buf[12:])
	end := min(int(res), len(buf))
	b = buf[recvmsgOut+nameRoom : end]
	truncated = flags&unix.MSG_TRUNC != 0
	if namelen <= nameRoom {
		src = AddrPort((*unix.RawSockaddrInet6)(unsafe.Pointer(&buf[recvmsgOut])))
	}
	return b, src, truncated
}

// AddrPort is the address of a received sockaddr_in or sockaddr_in6 (sa has room for either;
// its family says which), an IPv4-mapped IPv6 address unmapped; the zero AddrPort for another
// family.
func AddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port>>8|sa4.Port<<8))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port>>8|sa.Port<<8))
	}
	return netip.AddrPort{}
}

// Recycle gives buffer id back to the kernel, from the next Enter on.
func (rr *RecvRing) Recycle(id uint16) {
	e := rr.bufRing[int(rr.bufTail&(rr.nbufs-1))*16:]
	binary.NativeEndian.PutUint64(e[0:], uint64(uintptr(unsafe.Pointer(&rr.bufs[int(id)*rr.bufSize]))))
	binary.NativeEndian.PutUint32(e[8:], uint32(rr.bufSize))
	binary.NativeEndian.PutUint16(e[12:], id)
	rr.bufTail++
}

// publish makes the recycled buffers visible to the kernel: the tail, the u16 at offset 14 of
// the ring (entry 0's last field), stored with release semantics as one 32-bit store together
// with entry 0's buffer id (offset 12), which only this side writes.
func (rr *RecvRing) publish() {
	var w [4]byte
	copy(w[:2], rr.bufRing[12:14])
	binary.NativeEndian.PutUint16(w[2:], rr.bufTail)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&rr.bufRing[12])), binary.NativeEndian.Uint32(w[:]))
}

// Enters is the number of io_uring_enter(2) calls so far.
func (rr *RecvRing) Enters() uint64 { return rr.r.enters.Load() }
