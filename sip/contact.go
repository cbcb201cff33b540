package sip

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Contact policy of the registrar. A binding's Contact is where the gateway later sends an
// INVITE, from its own address and with the caller's number in From: a registrar that stores any
// Contact lets whoever holds (or guesses) an agent's SIP secret make the gateway call a carrier,
// a premium number's SIP front end or an internal host (toll fraud and SSRF). So a Contact is
// accepted only when it cannot steer the gateway anywhere the REGISTER's sender could not
// already reach it (RFC 3261 §10.3 step 4: a binding the registrar does not authorise is
// refused with 403):
//
//   - its host is an IP literal, never a host name (a name could resolve anywhere);
//   - that IP is the REGISTER's source address, or lies in RegistrarOptions.PhoneNetworks;
//   - or it is a private (RFC 1918, RFC 4193, RFC 6598) or link-local address other than the
//     source — a phone behind NAT that wrote its LAN address — in which case the INVITEs go to
//     the REGISTER's source address, never to the Contact (binding.dest), as Asterisk's
//     rewrite_contact and Kamailio's fix_nated_register do;
//   - and in every case it is not one of our own listening addresses, nor a trunk's address
//     (a trunk's outbound URI, or a single address in a trunk's inbound allow list).

// Reasons a Contact is refused; each becomes the 403's reason phrase and the security event's
// detail.
var (
	errContactHostName = errors.New("Contact host must be an IP address, not a name")
	errContactAddress  = errors.New("Contact address is not usable")
	errContactForeign  = errors.New("Contact must be the address the REGISTER came from")
	errContactTrunk    = errors.New("Contact is a trunk's address")
	errContactSelf     = errors.New("Contact is the gateway's own address")
)

// cgnat is the shared address space of RFC 6598 (carrier-grade NAT), private like RFC 1918 for
// our purpose.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// contactAddr returns the contact's IP and port (the scheme's default port when it names none).
func contactAddr(u sip.Uri) (netip.AddrPort, bool) {
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return netip.AddrPort{}, false
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if strings.EqualFold(u.Scheme, "sips") {
			port = 5061
		}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}

// natContact reports whether ip is an address a phone behind NAT writes into its Contact.
func natContact(ip netip.Addr) bool {
	return ip.IsPrivate() || cgnat.Contains(ip) || ip.IsLinkLocalUnicast()
}

// inPrefixes reports whether one of ps contains ip.
func inPrefixes(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// checkContact applies the contact policy above to one Contact of a REGISTER from src.
func (r *registrar) checkContact(u sip.Uri, src netip.Addr) error {
	ap, ok := contactAddr(u)
	if !ok {
		return errContactHostName
	}
	ip := ap.Addr()
	if ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return errContactAddress
	}
	for _, self := range r.selfAddrs() {
		if self == ap {
			return errContactSelf
		}
	}
	for _, t := range r.trunkAddrs {
		if t.Port() == 0 && t.Addr() == ip || t == ap {
			return errContactTrunk
		}
	}
	switch {
	case ip == src, inPrefixes(r.opts.PhoneNetworks, ip), natContact(ip):
		return nil
	}
	return errContactForeign
}

// selfAddrs returns the addresses the gateway listens on (and its external address on those
// ports): a Contact naming one of them would make the gateway call itself.
func (r *registrar) selfAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, n := range []string{"udp", "tcp", "tls"} {
		ap := r.s.Addr(n)
		if !ap.IsValid() {
			continue
		}
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		if ext := r.s.opts.ExternalAddr; ext.IsValid() {
			out = append(out, netip.AddrPortFrom(ext.Unmap(), ap.Port()))
		}
	}
	return out
}

// trunkAddresses lists the trunks' addresses a Contact must never name: the host and port of
// each outbound URI whose host is an IP literal, and each single address (a /32 or /128) of an
// inbound allow list, as an AddrPort with port 0 meaning any port.
func trunkAddresses(trunks []Trunk) []netip.AddrPort {
	var out []netip.AddrPort
	for _, t := range trunks {
		if t.OutboundURI != "" {
			var u sip.Uri
			if err := sip.ParseUri(t.OutboundURI, &u); err == nil {
				if ap, ok := contactAddr(u); ok {
					out = append(out, ap)
				}
			}
		}
		for _, p := range t.Allow {
			if p.IsSingleIP() {
				out = append(out, netip.AddrPortFrom(p.Addr().Unmap(), 0))
			}
		}
	}
	return out
}
