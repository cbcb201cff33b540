//go:build linux

package sip

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of the drop count in SO_MEMINFO's array
// (linux/sock_diag.h); skMeminfoVars is the array's length.
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// sizeUDPReceiveBuffer asks the kernel for a receive queue of want bytes on the SIP socket:
// SO_RCVBUFFORCE first (it may pass net.core.rmem_max, with CAP_NET_ADMIN), else SO_RCVBUF
// (capped at net.core.rmem_max). It returns what the kernel granted, in the units asked
// (SO_RCVBUF reads back twice the grant: the kernel's bookkeeping share).
func sizeUDPReceiveBuffer(pc net.PacketConn, want int) (int, error) {
	var got int
	var serr error
	err := control(pc, func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want) != nil {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, want); serr != nil {
				return
			}
		}
		got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	return got / 2, err
}

// udpDrops returns how many datagrams the kernel dropped on the socket since it was opened
// because its receive queue was full (SO_MEMINFO's SK_MEMINFO_DROPS); ok is false where the
// socket does not say.
func udpDrops(pc net.PacketConn) (drops uint64, ok bool) {
	var info [skMeminfoVars]uint32
	var serr error
	err := control(pc, func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			serr = errno
		}
	})
	if err != nil || serr != nil {
		return 0, false
	}
	return uint64(info[skMeminfoDrops]), true
}

// control runs f with the socket's descriptor (syscall.RawConn.Control); a connection without
// one is an error.
func control(pc net.PacketConn, f func(fd uintptr)) error {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return errors.New("sip: not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return raw.Control(f)
}
