//go:build linux

package uring

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is one io_uring: a submission queue whose entries the owner prepares by batch index
// (PrepSendmsg, PrepSend, PrepSendFixed) and hands over with Submit. Owned by one goroutine;
// Enters and Sends may be read from any.
type Ring struct {
	fd      int
	sqRing  []byte
	cqRing  []byte
	sqes    []byte
	entries uint32
	single  bool // one mapping for both rings (IORING_FEAT_SINGLE_MMAP)
	files   int  // descriptors registered (RegisterFiles)

	sqHead, sqTail, sqMask, sqArray *uint32 // into sqRing
	cqHead, cqTail, cqMask          *uint32 // into cqRing
	cqes                            uint32  // offset of the CQE array in cqRing

	// enters counts io_uring_enter(2) calls and sends the sends submitted.
	enters, sends atomic.Uint64
}

// include/uapi/linux/io_uring.h
const (
	offSQRing      = 0
	offCQRing      = 0x8000000
	offSQEs        = 0x10000000
	featSingleMmap = 1 << 0
	opSendmsg      = 9
	opSend         = 26
	sqeFixedFile   = 1 << 0 // IOSQE_FIXED_FILE
	enterGetEvents = 1 << 0
	setupCQSize    = 1 << 3 // IORING_SETUP_CQSIZE
	registerFiles  = 2
	sqeSize        = 64
	cqeSize        = 16
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32 // head tail ring_mask ring_entries flags dropped array resv1 user_addr(u64)
	cqOff                                                                  [10]uint32 // head tail ring_mask ring_entries overflow cqes flags resv1 user_addr(u64)
}

// New sets up a ring of at least entries submissions. It fails where the kernel refuses
// io_uring (not built in, kernel.io_uring_disabled, a container's seccomp profile): callers
// then send another way (sendmmsg(2), write(2)).
func New(entries uint32) (*Ring, error) {
	r, _, err := setup(entries, 0, 0)
	return r, err
}

// setup is io_uring_setup(2) with the given flags (and a completion queue of cqEntries when
// not 0) and the rings' mappings; it returns the ring and its parameters.
func setup(entries, flags, cqEntries uint32) (*Ring, *params, error) {
	p := &params{flags: flags, cqEntries: cqEntries}
	if cqEntries > 0 {
		p.flags |= setupCQSize
	}
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if e != 0 {
		return nil, nil, fmt.Errorf("uring: io_uring_setup: %w", e)
	}
	r, err := mapRing(int(fd), p, entries)
	return r, p, err
}

func mapRing(fd int, p *params, entries uint32) (*Ring, error) {
	r := &Ring{fd: fd, entries: p.sqEntries}
	if p.sqEntries < entries {
		r.Close()
		return nil, fmt.Errorf("uring: io_uring_setup: %d entries, want %d", p.sqEntries, entries)
	}
	sqSize := int(p.sqOff[6] + p.sqEntries*4)
	cqSize := int(p.cqOff[5] + p.cqEntries*cqeSize)
	if r.single = p.features&featSingleMmap != 0; r.single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqRing, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: mmap sq ring: %w", err)
	}
	if r.single {
		r.cqRing = r.sqRing
	} else if r.cqRing, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: mmap cq ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: mmap sqes: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask, r.sqArray = u32(r.sqRing, p.sqOff[0]), u32(r.sqRing, p.sqOff[1]), u32(r.sqRing, p.sqOff[2]), u32(r.sqRing, p.sqOff[6])
	r.cqHead, r.cqTail, r.cqMask, r.cqes = u32(r.cqRing, p.cqOff[0]), u32(r.cqRing, p.cqOff[1]), u32(r.cqRing, p.cqOff[2]), p.cqOff[5]
	return r, nil
}

// Entries is the most submissions one Submit takes.
func (r *Ring) Entries() uint32 { return r.entries }

// Enters is the number of io_uring_enter(2) calls so far; Sends the sends submitted.
func (r *Ring) Enters() uint64 { return r.enters.Load() }

// Sends is the number of sends submitted so far.
func (r *Ring) Sends() uint64 { return r.sends.Load() }

// Close unmaps the rings and closes the ring's descriptor (registered files are released with
// it). The owner's goroutine, once.
func (r *Ring) Close() {
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

// RegisterFiles registers fds with the ring (IORING_REGISTER_FILES), so that PrepSendFixed
// names a socket by its index in fds and the kernel skips looking the descriptor up and
// taking a reference to it on every send. The descriptors must stay open while the ring is
// (the ring holds its own references; closing one the caller still has registered does not
// close the socket until Close). Once only.
func (r *Ring) RegisterFiles(fds []int32) error {
	if len(fds) == 0 {
		return nil
	}
	_, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerFiles, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)), 0, 0)
	if e != 0 {
		return fmt.Errorf("uring: register %d files: %w", len(fds), e)
	}
	r.files = len(fds)
	return nil
}

// Files is the number of descriptors registered (0 when RegisterFiles was not called or failed).
func (r *Ring) Files() int { return r.files }

// sqe returns submission i of the next batch, cleared, with its array slot set.
func (r *Ring) sqe(i uint32) []byte {
	tail := atomic.LoadUint32(r.sqTail)
	idx := (tail + i) & atomic.LoadUint32(r.sqMask)
	sqe := r.sqes[idx*sqeSize : (idx+1)*sqeSize]
	clear(sqe)
	unsafe.Slice(r.sqArray, r.entries)[idx] = idx
	binary.NativeEndian.PutUint64(sqe[32:], uint64(i)) // user_data: the batch index
	return sqe
}

// PrepSendmsg writes submission i of the next batch: sendmsg(2) of msg on fd, without
// waiting. The message and what it points to must not change until Submit returns.
func (r *Ring) PrepSendmsg(i uint32, fd int, msg *unix.Msghdr) {
	sqe := r.sqe(i)
	sqe[0] = opSendmsg
	binary.NativeEndian.PutUint32(sqe[4:], uint32(int32(fd)))
	binary.NativeEndian.PutUint64(sqe[16:], uint64(uintptr(unsafe.Pointer(msg))))
	binary.NativeEndian.PutUint32(sqe[24:], 1)                 // one msghdr
	binary.NativeEndian.PutUint32(sqe[28:], unix.MSG_DONTWAIT) // msg_flags
}

// PrepSend writes submission i of the next batch: send(2) of b on the connected socket fd,
// without waiting. b must not change until Submit returns.
func (r *Ring) PrepSend(i uint32, fd int, b []byte) {
	r.prepSend(r.sqe(i), uint32(int32(fd)), b)
}

// PrepSendFixed is PrepSend on the registered file at index file (RegisterFiles).
func (r *Ring) PrepSendFixed(i uint32, file int, b []byte) {
	sqe := r.sqe(i)
	sqe[1] = sqeFixedFile
	r.prepSend(sqe, uint32(file), b)
}

func (r *Ring) prepSend(sqe []byte, fd uint32, b []byte) {
	sqe[0] = opSend
	binary.NativeEndian.PutUint32(sqe[4:], fd)
	binary.NativeEndian.PutUint64(sqe[16:], uint64(uintptr(unsafe.Pointer(&b[0]))))
	binary.NativeEndian.PutUint32(sqe[24:], uint32(len(b)))
	binary.NativeEndian.PutUint32(sqe[28:], unix.MSG_DONTWAIT)
}

// Submit hands the kernel the n submissions prepared since the last Submit (n ≤ Entries) and
// stores each one's result (bytes sent, or −errno) in res by batch index. The first
// io_uring_enter(2) is a raw system call (no runtime bookkeeping): it does not wait for
// completions, and MSG_DONTWAIT sends complete inside it. Should any not have (a kernel that
// queues them after all), the rest are waited for through the runtime's blocking-call path. An
// error is the ring's own (not a send's): the submissions it did not complete keep −EIO.
func (r *Ring) Submit(n uint32, res []int32) syscall.Errno {
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
			_, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(pending), uintptr(n-done), enterGetEvents, 0, 0)
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
func (r *Ring) reap(res []int32, done *uint32) {
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
