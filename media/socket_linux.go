//go:build linux

package media

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Socket is one bound UDP socket of a PortPair. On Linux it is a bare non-blocking descriptor
// that only the media plane's poll loops watch (recv_linux.go), never the Go runtime's
// netpoller: the net package would register every socket with the runtime's epoll too, and
// since no goroutine ever reads one through the net package, every datagram received and every
// datagram sent (its send-buffer wake-up) would put the socket on the runtime's ready list for
// nothing — which the scheduler and sysmon then drain, re-polling each socket (`sock_poll`), a
// tenth of the gateway's CPU at 500–1,000 calls (BENCHMARKS.md, "Session 12: the media sockets
// outside the runtime's netpoller"). Written here rather than taken from a library because it is
// four system calls and the close barrier below.
//
// The packet path uses the descriptor directly (watch, rawSender), each behind its own barrier
// that Endpoint.Close passes before Release closes the socket. mu guards the descriptor for the
// other users (RTCP reports, tests): Close takes it exclusively, so no WriteToUDPAddrPort uses
// a descriptor number after it was closed and perhaps reused.
type Socket struct {
	local netip.AddrPort

	mu     sync.RWMutex
	fd     int // -1 once closed (mu)
	closed bool
}

// listenUDP binds a non-blocking UDP socket to addr the way net.ListenUDP("udp", addr) does
// (an IPv4 address: an IPv4 socket; a wildcard: a dual-stack IPv6 socket bound to [::]; an IPv6
// address: an IPv6 socket), without registering it with the runtime's netpoller.
func listenUDP(addr netip.AddrPort) (*Socket, error) {
	ip := addr.Addr().Unmap()
	family := unix.AF_INET6
	var sa unix.Sockaddr
	local := addr
	switch {
	case ip.IsUnspecified():
		sa = &unix.SockaddrInet6{Port: int(addr.Port())}
		local = netip.AddrPortFrom(netip.IPv6Unspecified(), addr.Port())
	case ip.Is4():
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: ip.As4()}
		local = netip.AddrPortFrom(ip, addr.Port())
	default:
		sa6 := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: ip.As16()}
		if z := ip.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("listen udp %s: %w", addr, os.NewSyscallError("socket", err))
	}
	if family == unix.AF_INET6 && ip.IsUnspecified() {
		// Both address families on the wildcard, as the net package's "udp" does.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("listen udp %s: %w", addr, os.NewSyscallError("setsockopt", err))
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen udp %s: %w", addr, os.NewSyscallError("bind", err))
	}
	return &Socket{local: local, fd: fd}, nil
}

// LocalAddrPort is the address and port the socket is bound to.
func (s *Socket) LocalAddrPort() netip.AddrPort { return s.local }

// descriptor is the socket's descriptor for the packet path (watch, rawSender), whose users
// stop before Release closes it (see Socket).
func (s *Socket) descriptor() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fd
}

// WriteToUDPAddrPort sends b to dst without waiting: a datagram the kernel cannot take at once
// is dropped (EAGAIN returned). After Close it returns os.ErrClosed.
func (s *Socket) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, os.ErrClosed
	}
	r := rawSender{fd: s.fd} // the packet path's non-blocking send, for a report now and then
	if err := r.send(b, dst); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close closes the descriptor once; later calls do nothing.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}
