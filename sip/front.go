package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// The trusted front (Options.TrustedFronts): a SIP proxy in front of the gateways — the shipped
// Kamailio dispatcher, deploy/kamailio/kamailio.cfg — relays every call, so the packet's source
// is the front, not the carrier or the attacker behind it. The front writes where it received
// the request into a header of our own, SourceHeader, after deleting any copy the client sent
// (so a client cannot speak through it); the gateway believes that header only on a packet
// whose source address is a trusted front. Every source-keyed decision and log line then uses
// the real source (Server.source): trunk ACLs, the per-source rate limit, the scanner filter's
// trunk exemption, the registrar's backoff and nonce binding, security events and their log
// lines (which fail2ban reads), and the address RTP latches to. Responses still go to the
// packet's source (RFC 3261 §18.2.2: the Via), i.e. back through the front.
//
// A SourceHeader on a packet from anywhere else is a spoof attempt: it is ignored, and counted
// as security event source_spoofed when trusted fronts are configured (without any, the header
// means nothing here and is ignored silently, so a front upgraded before its gateways causes no
// alarm). A trusted front's header that does not parse, or comes more than once, is refused
// (400, malformed): the front is ours, so that is a bug or an attack, never a guess.

// SourceHeader is the header in which a trusted front names where it received a request:
// "<transport> <address>:<port>", the transport as Kamailio's $proto spells it (udp, tcp, tls,
// sctp, ws, wss) and the address as Kamailio's $siz (IPv6 in brackets), e.g.
// "udp 203.0.113.7:5060" or "tls [2001:db8::7]:5061".
const SourceHeader = "X-Switchboard-Source"

// secSourceSpoofed counts requests carrying SourceHeader from a source that is no trusted front.
const secSourceSpoofed = "source_spoofed"

// maxSourceHeader bounds the header's value: the longest valid one, "sctp [" + a 39-byte IPv6
// address + "]:65535", is 53 bytes.
const maxSourceHeader = 64

// errSourceHeader is wrapped by every parse failure of SourceHeader.
var errSourceHeader = errors.New("malformed " + SourceHeader)

// FrontSource is where a trusted front received a request.
type FrontSource struct {
	Transport string         // "udp", "tcp", "tls", "sctp", "ws" or "wss"
	Addr      netip.AddrPort // the client's address and port, IPv4-mapped IPv6 unmapped
}

// ParseFrontSource parses a SourceHeader value strictly: one transport of the list, one space,
// one IP address (IPv6 in brackets, no zone) and a port from 1 to 65535 — nothing before,
// between or after. The unspecified address, multicast and broadcast are refused: no packet
// comes from them.
func ParseFrontSource(v string) (FrontSource, error) {
	if len(v) > maxSourceHeader {
		return FrontSource{}, fmt.Errorf("%w: %d bytes, at most %d", errSourceHeader, len(v), maxSourceHeader)
	}
	tp, hp, ok := strings.Cut(v, " ")
	if !ok {
		return FrontSource{}, fmt.Errorf("%w: want \"<transport> <address>:<port>\"", errSourceHeader)
	}
	switch tp { // as Kamailio's $proto prints them
	case "udp", "tcp", "tls", "sctp", "ws", "wss":
	default:
		return FrontSource{}, fmt.Errorf("%w: unknown transport %q", errSourceHeader, clipped(tp))
	}
	// netip refuses spaces, leading zeros in IPv4, a missing port and an unbracketed IPv6.
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return FrontSource{}, fmt.Errorf("%w: %v", errSourceHeader, err)
	}
	a := ap.Addr()
	switch {
	case a.Zone() != "":
		return FrontSource{}, fmt.Errorf("%w: address with a zone", errSourceHeader)
	case ap.Port() == 0:
		return FrontSource{}, fmt.Errorf("%w: port 0", errSourceHeader)
	case a.Unmap().IsUnspecified(), a.Unmap().IsMulticast(), a.Unmap() == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return FrontSource{}, fmt.Errorf("%w: %s is no sender's address", errSourceHeader, a)
	}
	return FrontSource{Transport: tp, Addr: netip.AddrPortFrom(a.Unmap(), ap.Port())}, nil
}

// clipped shortens a piece of outside input for an error message.
func clipped(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// packetSource is the address the request's packet came from, IPv4-mapped IPv6 unmapped; zero
// when unknown.
func packetSource(req *sip.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// trustedFront reports whether a is in Options.TrustedFronts.
func (s *Server) trustedFront(a netip.Addr) bool {
	for _, p := range s.opts.TrustedFronts {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// frontVerdict is what checkFront found about a request's SourceHeader.
type frontVerdict int

const (
	frontNone    frontVerdict = iota // no header, or trusted fronts are off: the packet's source
	frontTrusted                     // a trusted front's valid header: its source
	frontSpoofed                     // a header from a source that is no trusted front: ignored
	frontBad                         // a trusted front's header that does not parse, or twice
)

// checkFront looks at a request's SourceHeader once, on its way in (Server.handle).
func (s *Server) checkFront(req *sip.Request) (frontVerdict, error) {
	if len(s.opts.TrustedFronts) == 0 {
		return frontNone, nil
	}
	hs := req.GetHeaders(SourceHeader)
	if len(hs) == 0 {
		return frontNone, nil
	}
	if !s.trustedFront(packetSource(req).Addr()) {
		return frontSpoofed, nil
	}
	if len(hs) > 1 {
		return frontBad, fmt.Errorf("%w: %d copies", errSourceHeader, len(hs))
	}
	if _, err := ParseFrontSource(hs[0].Value()); err != nil {
		return frontBad, err
	}
	return frontTrusted, nil
}

// source is where req really came from: the SourceHeader of a trusted front (Server.handle has
// refused a request whose trusted header is malformed), else the packet's source. Every
// source-keyed decision and log line uses it; only the transaction layer answers the packet's
// source.
func (s *Server) source(req *sip.Request) netip.AddrPort {
	pkt := packetSource(req)
	if len(s.opts.TrustedFronts) == 0 || !s.trustedFront(pkt.Addr()) {
		return pkt
	}
	hs := req.GetHeaders(SourceHeader)
	if len(hs) != 1 {
		return pkt
	}
	fs, err := ParseFrontSource(hs[0].Value())
	if err != nil {
		return pkt
	}
	return fs.Addr
}

// viaFront returns the packet's source when req came through a trusted front (its real source
// being another), for log lines; zero otherwise.
func (s *Server) viaFront(req *sip.Request) netip.AddrPort {
	pkt := packetSource(req)
	if src := s.source(req); src != pkt {
		return pkt
	}
	return netip.AddrPort{}
}
