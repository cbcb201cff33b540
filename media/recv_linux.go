//go:build linux

package media

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvBatch is how many datagrams one recvmmsg(2) may return. At 50 packets/s per socket one
// is the rule; more wait only when the reader ran late, and then one call takes them all.
const recvBatch = 8

// rxBatch is the buffers of one recvmmsg(2) call. Batches live in the allocator's pool and are
// held only while a reader handles what it read, so an idle leg holds no receive buffer.
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
func (b *rxBatch) recvmmsg(fd uintptr) (int, syscall.Errno) {
	for i := range b.msgs {
		b.msgs[i].Hdr.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		b.msgs[i].Hdr.Flags = 0
		b.msgs[i].Len = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), recvBatch,
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
	sa := &b.names[i]
	var src netip.AddrPort
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		src = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port>>8|sa4.Port<<8))
	case unix.AF_INET6:
		src = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port>>8|sa.Port<<8))
	}
	return b.bufs[i][:n], src
}

// readLoop hands every datagram conn receives to handle, on the calling goroutine, until conn
// is closed (or fails 100 times in a row).
//
// A plain read loop makes two system calls per packet at 50 packets/s per socket: the
// read that returns the datagram and the one that returns EAGAIN before the goroutine parks
// in the netpoller. This loop reads inside the RawConn's callback with recvmmsg(2) and parks
// as soon as a batch comes back short of full: the socket's queue was empty at that instant,
// and the runtime's edge-triggered epoll registration reports every datagram queued after it,
// so nothing waits unread and the second call is saved. A full batch is followed by another
// read at once. golang.org/x/net/ipv4's ReadBatch is not used because it always ends with
// the EAGAIN read. The batch's buffers come from the allocator's pool while the callback runs.
func readLoop(conn *net.UDPConn, pool *PortAllocator, closed func() bool, handle func(b []byte, src netip.AddrPort, at time.Time)) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return
	}
	fails := 0 // consecutive failed reads
	read := func(fd uintptr) bool {
		b := pool.getBatch()
		defer pool.putBatch(b)
		for {
			n, errno := b.recvmmsg(fd)
			if errno == unix.EAGAIN {
				return false // wait for the next datagram
			}
			if errno != 0 {
				fails++
				return true
			}
			fails = 0
			at := time.Now()
			for i := range n {
				p, src := b.packet(i)
				handle(p, src, at)
			}
			if n < recvBatch {
				return false // drained: park without the EAGAIN read
			}
		}
	}
	// A failed read is transient; a persistent error ends reception and the media timeout
	// reports it.
	for fails < 100 {
		if err := rc.Read(read); err != nil {
			if closed() || errors.Is(err, net.ErrClosed) {
				return
			}
			fails++
		}
	}
}
