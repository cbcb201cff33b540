package sip

import "net"

// udpReceiveBuffer is the receive queue asked for the SIP UDP socket. Every call's messages
// share that one socket: at 500 new calls a second about 5,000 datagrams a second arrive,
// and the kernel charges each small datagram 1–2 KiB of the queue, so the default queue
// (net.core.rmem_default, 208 KiB on most distributions) is full after a pause of 20–40 ms
// in the gateway's reading (a busy core, another process on it). A message dropped there
// comes again only at its retransmission (500 ms and more later), and an ACK of a 2xx not at
// all unless the peer answers our 2xx retransmission: measured at 500 calls/s in `make
// bench`'s CPS step (session 14), 7,644 datagrams dropped in one run and 32 calls ended
// unconfirmed. 4 MiB holds about 2,000 messages: a pause of a few hundred milliseconds
// delays them instead of losing them. The memory is only used while the queue holds
// messages. SIP servers do the same (Kamailio probes for the largest buffer it may have).
const udpReceiveBuffer = 4 << 20

// udpDrops sums the datagrams the kernel dropped on the server's UDP sockets (the
// switchboard_sip_udp_receive_drops_total counter, read at each scrape).
func (s *Server) udpDrops() float64 {
	s.mu.Lock()
	var conns []net.PacketConn
	for _, l := range s.listeners {
		if pc, ok := l.(net.PacketConn); ok {
			conns = append(conns, pc)
		}
	}
	s.mu.Unlock()
	var sum uint64
	for _, pc := range conns {
		if n, ok := udpDrops(pc); ok {
			sum += n
		}
	}
	return float64(sum)
}
