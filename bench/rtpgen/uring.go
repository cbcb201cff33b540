//go:build linux

package rtpgen

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uring is a minimal io_uring (io_uring_setup(2), io_uring_enter(2)) that the sender uses to
// hand the kernel one slot's packets — each a send on its own leg's socket — with one
// io_uring_enter instead of one write(2) each: the kernel's UDP and loopback work per packet
// stays, the entry into and exit from the kernel per packet goes. Sender goroutine only.
type uring struct {
	fd      int
	sqRing  []byte
	cqRing  []byte
	sqes    []byte
	entries uint32
	single  bool // one mapping for both rings (IORING_FEAT_SINGLE_MMAP)

	sqHead, sqTail, sqMask, sqArray *uint32 // into sqRing
	cqHead, cqTail, cqMask          *uint32 // into cqRing
	cqes                            uint32  // offset of the CQE array in cqRing
}

const (
	ioringOffSQRing   = 0
	ioringOffCQRing   = 0x8000000
	ioringOffSQEs     = 0x10000000
	ioringFeatSingle  = 1 << 0
	ioringOpSend      = 26
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

func newURing(entries uint32) (*uring, error) {
	var p ioURingParams
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("rtpgen: io_uring_setup: %w", e)
	}
	r := &uring{fd: int(fd), entries: p.sqEntries}
	sqSize := int(p.sqOff[6] + p.sqEntries*4)
	cqSize := int(p.cqOff[5] + p.cqEntries*cqeSize)
	if r.single = p.features&ioringFeatSingle != 0; r.single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqRing, err = unix.Mmap(r.fd, ioringOffSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("rtpgen: mmap sq ring: %w", err)
	}
	if r.single {
		r.cqRing = r.sqRing
	} else if r.cqRing, err = unix.Mmap(r.fd, ioringOffCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("rtpgen: mmap cq ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("rtpgen: mmap sqes: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask, r.sqArray = u32(r.sqRing, p.sqOff[0]), u32(r.sqRing, p.sqOff[1]), u32(r.sqRing, p.sqOff[2]), u32(r.sqRing, p.sqOff[6])
	r.cqHead, r.cqTail, r.cqMask, r.cqes = u32(r.cqRing, p.cqOff[0]), u32(r.cqRing, p.cqOff[1]), u32(r.cqRing, p.cqOff[2]), p.cqOff[5]
	return r, nil
}

func (r *uring) close() {
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

// send submits one send(2) per packet, pkts[i] on fds[i] (MSG_DONTWAIT: a full socket buffer
// completes with EAGAIN instead of waiting), and waits for all of them; it returns how many
// succeeded. len(fds) must not exceed the ring's entries. The packets'
// bytes must not change until it returns.
func (r *uring) send(fds []int, pkts [][]byte) (ok int, err error) {
	tail := atomic.LoadUint32(r.sqTail)
	mask := atomic.LoadUint32(r.sqMask)
	array := unsafe.Slice(r.sqArray, r.entries)
	for i, fd := range fds {
		idx := (tail + uint32(i)) & mask
		sqe := r.sqes[idx*sqeSize : (idx+1)*sqeSize]
		clear(sqe)
		sqe[0] = ioringOpSend
		binary.NativeEndian.PutUint32(sqe[4:], uint32(int32(fd)))
		binary.NativeEndian.PutUint64(sqe[16:], uint64(uintptr(unsafe.Pointer(&pkts[i][0]))))
		binary.NativeEndian.PutUint32(sqe[24:], uint32(len(pkts[i])))
		binary.NativeEndian.PutUint32(sqe[28:], unix.MSG_DONTWAIT)
		array[idx] = idx
	}
	n := uint32(len(fds))
	atomic.StoreUint32(r.sqTail, tail+n)
	for done := uint32(0); done < n; {
		pending := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead) // not yet consumed by the kernel
		_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(pending), uintptr(n-done), ioringEnterGetEvt, 0, 0)
		if e != 0 && e != unix.EINTR {
			return ok, fmt.Errorf("rtpgen: io_uring_enter: %w", e)
		}
		head, ctail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
		cmask := atomic.LoadUint32(r.cqMask)
		for ; head != ctail; head++ {
			off := r.cqes + (head&cmask)*cqeSize
			if int32(binary.NativeEndian.Uint32(r.cqRing[off+8:])) >= 0 { // res: bytes sent, or -errno
				ok++
			}
			done++
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	return ok, nil
}
