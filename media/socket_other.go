//go:build !linux

package media

import (
	"net"
	"net/netip"
)

// Socket is one bound UDP socket of a PortPair. Elsewhere than Linux it is a net.UDPConn read
// by a goroutine of its own (recv_other.go); socket_linux.go has the bare descriptor the
// Linux poll loops watch.
type Socket struct {
	conn  *net.UDPConn
	local netip.AddrPort
}

// listenUDP binds addr with the net package.
func listenUDP(addr netip.AddrPort) (*Socket, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	return &Socket{conn: c, local: c.LocalAddr().(*net.UDPAddr).AddrPort()}, nil
}

// LocalAddrPort is the address and port the socket is bound to.
func (s *Socket) LocalAddrPort() netip.AddrPort { return s.local }

// WriteToUDPAddrPort sends b to dst.
func (s *Socket) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	return s.conn.WriteToUDPAddrPort(b, dst)
}

// Close closes the socket; later calls do nothing.
func (s *Socket) Close() error { return s.conn.Close() }
