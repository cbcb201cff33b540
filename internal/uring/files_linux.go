//go:build linux

package uring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Blocking file system calls (fsync(2), openat(2) with O_CREAT) handed to the kernel's io_uring
// workers, so that the goroutine waiting for one does not hold a P of the Go runtime.
//
// Why: a goroutine in a blocking system call keeps its P until the runtime's monitor (sysmon)
// takes it back, after 20 µs to 10 ms. With GOMAXPROCS=1 — a gateway confined to one CPU by
// its affinity or a container's quota — every call's goroutines wait behind each fsync of a
// recording or its journal meanwhile: `make bench`'s CPS steps measured about 1.4 ms of such
// time a call (fsync 0.9, creating the WAV file 0.5) beside 2 ms of CPU, a wall at 300 calls/s
// with the core half idle. A request submitted here with IOSQE_ASYNC goes straight to an
// io-wq worker (a kernel thread of this process); io_uring_enter(2) returns at once, the
// goroutine parks on a channel, and one reaper goroutine, parked in the runtime's netpoller on
// an eventfd the ring signals, hands each completion back; it runs only while requests are in
// flight (an idle process holds no goroutine for the ring). Raising GOMAXPROCS instead was
// measured too: it cost the media plane 11 points of its core at 1,000 calls.
//
// Where the kernel refuses io_uring (or eventfd), Fsync and OpenFile make the system call
// directly, as os.File does.

// files is the process's file ring, set up on first use; filesErr when it could not be.
var (
	filesOnce sync.Once
	files     *fileRing
	filesErr  error
)

// Fsync makes f's data and metadata durable (fsync(2)); f may be a directory.
func Fsync(f *os.File) error {
	r := ring4files()
	if r == nil {
		return f.Sync()
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return f.Sync()
	}
	var res int32
	// Control holds f open (its descriptor cannot be closed and reused) while the request runs.
	if cerr := rc.Control(func(fd uintptr) { res = r.do(opFsync, int32(fd), nil, 0, 0) }); cerr != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: cerr}
	}
	if res < 0 {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.Errno(-res)}
	}
	return nil
}

// OpenFile is os.OpenFile (the descriptor close-on-exec), with the openat(2) itself made by an
// io_uring worker: creating a file waits on the filesystem's journal while another file is
// being fsynced.
func OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	r := ring4files()
	if r == nil || perm&^os.ModePerm != 0 {
		return os.OpenFile(name, flag, perm)
	}
	path, err := unix.BytePtrFromString(name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	res := r.do(opOpenat, unix.AT_FDCWD, unsafe.Pointer(path), uint32(perm), uint32(flag|unix.O_CLOEXEC|unix.O_LARGEFILE))
	if res < 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.Errno(-res)}
	}
	return os.NewFile(uintptr(res), name), nil
}

// FileRingErr reports why Fsync and OpenFile make their system calls directly (nil: they go
// through io_uring). For the gateway's start-up log.
func FileRingErr() error {
	ring4files()
	return filesErr
}

// ring4files returns the file ring, or nil for a direct system call: none could be set up, or
// it failed since (broken), so the files are not refused for the ring's sake.
func ring4files() *fileRing {
	filesOnce.Do(func() { files, filesErr = newFileRing(64) })
	if files != nil && files.broken.Load() {
		return nil
	}
	return files
}

const (
	opFsync    = 3
	opOpenat   = 18
	sqeAsync   = 1 << 4 // IOSQE_ASYNC: straight to an io-wq worker
	regEventfd = 4      // IORING_REGISTER_EVENTFD
)

// fileRing is one io_uring for blocking file calls, shared by the whole process. Submitters
// take mu only to write their entry and enter it (a system call that does not wait: the entry
// is punted to a worker), and start the reaper goroutine when none runs; the reaper owns the
// completion queue and exits once no request waits (both decided under mu). A request's result
// goes back on its waiter's channel (buffered: the reaper never blocks on a submitter). slots
// bounds the requests in flight to the ring's size, so the completion queue (twice the
// submission queue) cannot overflow.
type fileRing struct {
	r     *Ring
	ev    *os.File // the eventfd the ring signals on each completion; in the netpoller
	slots chan struct{}

	mu      sync.Mutex
	waiters map[uint64]*fileReq // by user_data; mu
	next    uint64              // mu
	reaping bool                // a reaper goroutine runs; mu
	broken  atomic.Bool         // the ring failed: every request from now on is refused
}

type fileReq struct {
	done chan int32
	keep unsafe.Pointer // what the entry points to (a path), alive until its completion
}

func newFileRing(entries uint32) (*fileRing, error) {
	r, err := New(entries)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: eventfd: %w", err)
	}
	fd32 := int32(efd)
	if _, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), regEventfd, uintptr(unsafe.Pointer(&fd32)), 1, 0, 0); e != 0 {
		unix.Close(efd)
		r.Close()
		return nil, fmt.Errorf("uring: register eventfd: %w", e)
	}
	return &fileRing{r: r, ev: os.NewFile(uintptr(efd), "uring-files-eventfd"), slots: make(chan struct{}, entries), waiters: map[uint64]*fileReq{}}, nil
}

// do submits one request and waits for its result (the system call's return value, or −errno).
func (fr *fileRing) do(op byte, fd int32, addr unsafe.Pointer, length, opFlags uint32) int32 {
	if fr.broken.Load() {
		return -int32(unix.EIO)
	}
	fr.slots <- struct{}{}
	defer func() { <-fr.slots }()
	req := &fileReq{done: make(chan int32, 1), keep: addr}
	fr.mu.Lock()
	fr.next++
	id := fr.next
	fr.waiters[id] = req
	sqe := fr.r.sqe(0)
	sqe[0] = op
	sqe[1] = sqeAsync
	binary.NativeEndian.PutUint32(sqe[4:], uint32(fd))
	binary.NativeEndian.PutUint64(sqe[16:], uint64(uintptr(addr)))
	binary.NativeEndian.PutUint32(sqe[24:], length)
	binary.NativeEndian.PutUint32(sqe[28:], opFlags)
	binary.NativeEndian.PutUint64(sqe[32:], id)
	atomic.StoreUint32(fr.r.sqTail, atomic.LoadUint32(fr.r.sqTail)+1)
	var errno syscall.Errno
	for try := 0; ; try++ {
		var n uintptr
		// Raw: with IOSQE_ASYNC the kernel only queues the entry for a worker.
		n, _, errno = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(fr.r.fd), 1, 0, 0, 0, 0)
		if errno == 0 && n == 0 {
			errno = unix.EAGAIN // not taken: try again, a bounded number of times
		}
		if (errno == unix.EINTR || errno == unix.EAGAIN) && try < 100 {
			continue
		}
		break
	}
	if errno != 0 {
		// The entry was not taken (the ring is unusable): undo it and fail this and every later request.
		atomic.StoreUint32(fr.r.sqTail, atomic.LoadUint32(fr.r.sqTail)-1)
		delete(fr.waiters, id)
		fr.broken.Store(true)
		fr.mu.Unlock()
		return -int32(errno)
	}
	if !fr.reaping {
		fr.reaping = true
		go fr.reap()
	}
	fr.mu.Unlock()
	res := <-req.done
	runtime.KeepAlive(req.keep)
	return res
}

// reap is the ring's one completion reader: it parks on the eventfd and hands each completion
// to its waiter, until none waits. (The eventfd is never closed: the ring lives as long as the
// process.)
func (fr *fileRing) reap() {
	var buf [8]byte
	for {
		if _, err := fr.ev.Read(buf[:]); err != nil && !errors.Is(err, syscall.EAGAIN) {
			// An eventfd read fails only once it is closed, which nothing does: give every
			// waiter an error rather than leave it waiting.
			fr.broken.Store(true)
			fr.mu.Lock()
			for id, req := range fr.waiters {
				delete(fr.waiters, id)
				req.done <- -int32(unix.EIO)
			}
			fr.reaping = false
			fr.mu.Unlock()
			return
		}
		fr.mu.Lock()
		head, tail := atomic.LoadUint32(fr.r.cqHead), atomic.LoadUint32(fr.r.cqTail)
		mask := atomic.LoadUint32(fr.r.cqMask)
		var ready []*fileReq
		var results []int32
		for ; head != tail; head++ {
			off := fr.r.cqes + (head&mask)*cqeSize
			id := binary.NativeEndian.Uint64(fr.r.cqRing[off:])
			if req := fr.waiters[id]; req != nil {
				delete(fr.waiters, id)
				ready = append(ready, req)
				results = append(results, int32(binary.NativeEndian.Uint32(fr.r.cqRing[off+8:])))
			}
		}
		atomic.StoreUint32(fr.r.cqHead, head)
		last := len(fr.waiters) == 0
		if last {
			fr.reaping = false
		}
		fr.mu.Unlock()
		for i, req := range ready {
			req.done <- results[i]
		}
		if last {
			return
		}
	}
}
