package config

import (
	"fmt"
	"net/netip"
)

// DevPasswords are the passwords of the development configuration (deploy/dev/switchboard.yaml)
// and of the examples in the documentation: anyone who has read the repository knows them.
func DevPasswords() []string { return []string{"agentpass", "adminpass"} }

// Warnings returns what is valid but risky in a configuration that passed validation, for
// check-config (and serve's log) to show: a development password, a trunk that trusts a huge
// part of the Internet by source address, and an RTP range too small for max_calls. Each names
// the YAML path of the value.
func (c *Config) Warnings() []Problem {
	var ws []Problem
	add := func(path, format string, args ...any) {
		ws = append(ws, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	dev := DevPasswords()
	for i, a := range c.Agents {
		for _, p := range dev {
			if a.Password == p {
				add("agents"+index(i)+".password", "%s has the development password %q: anyone who has read the repository can log in as them; set password_hash to a bcrypt hash of a secret", a.Email, p)
			}
		}
	}
	for i, u := range c.Users {
		for _, p := range dev {
			if u.Password == p {
				add("users"+index(i)+".password", "%s has the development password %q: anyone who has read the repository can log in as them; set password_hash to a bcrypt hash of a secret", u.Email, p)
			}
		}
	}
	for i, t := range c.Trunks {
		for j, p := range t.Inbound.Allow {
			// /0 is the whole Internet; anything wider than a /8 (IPv4) or /16 (IPv6) is no
			// carrier's signalling network. Source addresses over UDP are spoofable anyway.
			wide := p.Prefix.Bits() < 8 || (p.Prefix.Addr().Is6() && !p.Prefix.Addr().Is4In6() && p.Prefix.Bits() < 16)
			if wide {
				add("trunks"+index(i)+".inbound.allow"+index(j), "%s lets INVITEs from %s into trunk %s: list the carrier's signalling addresses, and prefer inbound.auth (digest) or TLS", p.Prefix, breadth(p.Prefix), t.Name)
			}
		}
	}
	if n, pairs := c.SIP.MaxCalls, c.RTP.Pairs(); n > 0 && pairs < 2*n {
		add("rtp", "port_min..port_max (%d–%d) holds %d RTP/RTCP port pairs, fewer than 2 × sip.max_calls (%d): each call takes a pair for the caller and one for the agent or far end, so calls will fail for want of ports before max_calls is reached; widen the range or lower sip.max_calls to %d",
			c.RTP.PortMin, c.RTP.PortMax, pairs, 2*n, pairs/2)
	}
	if c.HTTP.Metrics != nil && *c.HTTP.Metrics && !loopbackListen(c.HTTP.Listen) {
		add("http.metrics", "/metrics is served on %s, which is not a loopback address: anyone who reaches it reads the gateway's call volumes; protect it with a firewall or serve it on admin.listen", c.HTTP.Listen)
	}
	return ws
}

func breadth(p netip.Prefix) string {
	if p.Bits() == 0 {
		return "any address on the Internet"
	}
	return "a range wider than any carrier's network"
}
