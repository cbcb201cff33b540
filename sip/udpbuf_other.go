//go:build !linux

package sip

import "net"

// sizeUDPReceiveBuffer asks for a receive queue of want bytes (the operating system decides
// what it grants; it is not read back here).
func sizeUDPReceiveBuffer(pc net.PacketConn, want int) (int, error) {
	if c, ok := pc.(*net.UDPConn); ok {
		return want, c.SetReadBuffer(want)
	}
	return 0, nil
}

// udpDrops is not known outside Linux.
func udpDrops(net.PacketConn) (uint64, bool) { return 0, false }
