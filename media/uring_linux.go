//go:build linux

package media

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// txRing is a minimal io_uring (io_uring_setup(2), io_uring_enter(2)) through which a poll loop
// hands the kernel every packet forwarded in one round — one IORING_OP_SENDMSG each, on the
// socket of the leg it leaves from — with one io_uring_enter(2) instead of a sendmmsg(2) per
// destination socket. Every leg sends from its own port (symmetric RTP, RFC 4961), so
// sendmmsg(2), which names one socket, batches only a leg's own packets, and at 50 packets a
// second per leg a round has one of each: a system call per forwarded packet. The kernel's UDP
// and loopback work per packet stays; the entry into and exit from the kernel per packet goes
// (BENCHMARKS.md, session 9). Owned by its poll loop's goroutine.
//
// Every send carries MSG_DONTWAIT: the kernel tries it once, inline in io_uring_enter, and a
// socket whose send buffer is full completes it with EAGAIN instead of queueing it for later
// (io_uring marks such a request no-wait) — the packet is dropped, as rawSender drops it. So
// every completion is posted before io_uring_enter returns and a round never waits.
type txRing struct {
	fd      int
	sqRing  []byte
	cqRing  []byte
	sqes    []byte
	entries uint32
	single  bool // one mapping for both rings (IORING_FEAT_SINGLE_MMAP)

	sqHead, sqTail, sqMask, sqArray *uint32 // into sqRing
	cqHead, cqTail, cqMask          *uint32 // into cqRing
	cqes                            uint32  // offset of the CQE array in cqRing

	// enters counts io_uring_enter(2) calls and sends the packets submitted (tests read them).
	enters, sends atomic.Uint64
}

const (
	ioringOffSQRing   = 0
	ioringOffCQRing   = 0x8000000
	ioringOffSQEs     = 0x10000000
	ioringFeatSingle  = 1 << 0
	ioringOpSendmsg   = 9
	ioringEnterGetEvt = 1 << 0
	sqeSize, cqeSize  = 64, 16
)

// ioURingParams is struct io_uring_params (include/uapi/linux/io_uring.h).
type ioURingParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32 // head tail ring_mask ring_entries flags dropped array resv1 user_addr(u64)
	cqOff                                                                  [10]uint32 // head tail ring_mask ring_entries overflow cqes flags resv1 user_addr(u64)
}

// newTxRing sets up a ring of at least entries submissions. It fails where the kernel refuses
// io_uring (not built in, kernel.io_uring_disabled, a container's seccomp profile): the poll
// loop then sends with sendmmsg(2) per destination socket, as before.
func newTxRing(entries uint32) (*txRing, error) {
	var p ioURingParams
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("media: io_uring_setup: %w", e)
	}
	r := &txRing{fd: int(fd), entries: p.sqEntries}
	if p.sqEntries < entries {
		r.close()
		return nil, fmt.Errorf("media: io_uring_setup: %d entries, want %d", p.sqEntries, entries)
	}
	sqSize := int(p.sqOff[6] + p.sqEntries*4)
	cqSize := int(p.cqOff[5] + p.cqEntries*cqeSize)
	if r.single = p.features&ioringFeatSingle != 0; r.single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqRing, err = unix.Mmap(r.fd, ioringOffSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("media: mmap io_uring sq ring: %w", err)
	}
	if r.single {
		r.cqRing = r.sqRing
	} else if r.cqRing, err = unix.Mmap(r.fd, ioringOffCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("media: mmap io_uring cq ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("media: mmap io_uring sqes: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask, r.sqArray = u32(r.sqRing, p.sqOff[0]), u32(r.sqRing, p.sqOff[1]), u32(r.sqRing, p.sqOff[2]), u32(r.sqRing, p.sqOff[6])
	r.cqHead, r.cqTail, r.cqMask, r.cqes = u32(r.cqRing, p.cqOff[0]), u32(r.cqRing, p.cqOff[1]), u32(r.cqRing, p.cqOff[2]), p.cqOff[5]
	return r, nil
}

// close unmaps the rings and closes the ring's descriptor (the poll loop's goroutine, at its end).
func (r *txRing) close() {
	if r.sqes != nil {
		_ = unix.Munmap(r.sqes)
	}
	if r.cqRing != nil && !r.single {
		_ = unix.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		_ = unix.Munmap(r.sqRing)
	}
	unix.Close(r.fd)
}

// prep writes submission i of the next batch: sendmsg(2) of msg on fd, without waiting. The
// message and what it points to must not change until submit returns.
func (r *txRing) prep(i uint32, fd int, msg *unix.Msghdr) {
	tail := atomic.LoadUint32(r.sqTail)
	idx := (tail + i) & atomic.LoadUint32(r.sqMask)
	sqe := r.sqes[idx*sqeSize : (idx+1)*sqeSize]
	clear(sqe)
	sqe[0] = ioringOpSendmsg
	binary.NativeEndian.PutUint32(sqe[4:], uint32(int32(fd)))
	binary.NativeEndian.PutUint64(sqe[16:], uint64(uintptr(unsafe.Pointer(msg))))
	binary.NativeEndian.PutUint32(sqe[24:], 1)                 // one msghdr
	binary.NativeEndian.PutUint32(sqe[28:], unix.MSG_DONTWAIT) // msg_flags
	binary.NativeEndian.PutUint64(sqe[32:], uint64(i))         // user_data: the batch index
	unsafe.Slice(r.sqArray, r.entries)[idx] = idx
}

// submit hands the kernel the n submissions prepared since the last submit and stores each
// one's result (bytes sent, or −errno) in res by batch index. The first io_uring_enter(2) is a
// raw system call (no runtime bookkeeping, as recvmmsg's): it does not wait for completions,
// and MSG_DONTWAIT sends complete inside it. Should any not have (a kernel that queues them
// after all), the rest are waited for through the runtime's blocking-call path.
func (r *txRing) submit(n uint32, res []int32) syscall.Errno {
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+n)
	r.sends.Add(uint64(n))
	for i := range n {
		res[i] = -int32(unix.EIO) // until its completion says otherwise
	}
	for done, first := uint32(0), true; done < n; first = false {
		pending := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead) // not yet taken by the kernel
		var errno syscall.Errno
		r.enters.Add(1)
		if first {
			_, _, errno = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(pending), 0, 0, 0, 0)
		} else {
			_, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(pending), uintptr(n-done), ioringEnterGetEvt, 0, 0)
		}
		if errno != 0 && errno != unix.EINTR && errno != unix.EAGAIN && errno != unix.EBUSY {
			// The ring itself failed (not a send): what it took may still complete, so wait
			// for nothing more and report the rest as not sent.
			r.reap(res, &done)
			return errno
		}
		r.reap(res, &done)
	}
	return 0
}

// reap takes the completions posted so far.
func (r *txRing) reap(res []int32, done *uint32) {
	head, tail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
	mask := atomic.LoadUint32(r.cqMask)
	for ; head != tail; head++ {
		off := r.cqes + (head&mask)*cqeSize
		i := binary.NativeEndian.Uint64(r.cqRing[off:])
		if i < uint64(len(res)) {
			res[i] = int32(binary.NativeEndian.Uint32(r.cqRing[off+8:]))
		}
		*done++
	}
	atomic.StoreUint32(r.cqHead, head)
}
