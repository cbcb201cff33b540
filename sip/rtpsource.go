package sip

import (
	"net/netip"
	"strings"
)

// signalSource is the IP address the leg's signalling peer uses, given to the leg's RTP
// endpoint as media.EndpointOptions.SignalSource: RTP from it latches at once, like RTP from
// the SDP c= address, because a NAT'd phone's media comes from the public address its SIP came
// from, not from the private address in its c=. For a call we answered it is the INVITE's
// source (through a trusted front, the client it names: RTP bypasses the front); for one we
// placed, the next hop we send to (DialOptions.Destination, else the
// Request-URI host) when that is an IP literal. Zero when unknown (a host name): then only c=
// matches and any other source must pass media's probation.
func (l *leg) signalSource() netip.Addr {
	if l.role == roleUAS && l.invite != nil {
		return l.s.sourceAddr(l.invite)
	}
	if ap, err := netip.ParseAddrPort(l.dest); err == nil {
		return ap.Addr().Unmap()
	}
	if ip, err := netip.ParseAddr(strings.Trim(l.remoteTarget.Host, "[]")); err == nil {
		return ip.Unmap()
	}
	return netip.Addr{}
}
