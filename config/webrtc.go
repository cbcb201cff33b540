package config

import (
	"strings"
	"unicode"
)

// WebRTC configures the agents' browser audio (the softphone page's WebRTC legs): where the
// gateway's ICE sockets listen, so that a firewall can let them through, and the STUN/TURN
// servers the page uses when its network blocks the direct path.
type WebRTC struct {
	// PortMin and PortMax bound the UDP port of the ICE socket every agent's audio shares
	// (ICE, DTLS and SRTP multiplexed on one port): the first free port of the range is taken,
	// so one port is enough for a node and a range lets several nodes share a host. Both 0
	// (default): a free port chosen at start — fine on loopback, unworkable behind a firewall.
	// Must not overlap rtp.port_min–rtp.port_max.
	PortMin int `yaml:"port_min"`
	PortMax int `yaml:"port_max"`
	// TCPPort, when set, also listens for ICE over TCP (RFC 6544, passive candidates) on this
	// port of rtp.address: browsers on networks that drop UDP reach the audio over TCP.
	// 0 (default): UDP only.
	TCPPort int `yaml:"tcp_port"`
	// ICEServers are the STUN and TURN servers given to the page's RTCPeerConnection, with
	// their credentials (agents' browsers see them). A TURN server on TCP or TLS 443
	// ("turns:turn.example.com:443?transport=tcp") carries the audio of agents behind the
	// strictest firewalls.
	ICEServers []ICEServer `yaml:"ice_servers"`
}

// ICEServer is one STUN or TURN server (RFC 7064, RFC 7065 URIs).
type ICEServer struct {
	// URLs are stun:, stuns:, turn: or turns: URIs.
	URLs []string `yaml:"urls"`
	// Username and Credential authenticate to a TURN server (required for turn: and turns:).
	Username   string `yaml:"username"`
	Credential string `yaml:"credential"`
}

func (c *Config) validateWebRTC(k *checker) {
	w := c.WebRTC
	if w.PortMin != 0 || w.PortMax != 0 {
		ok := true
		if w.PortMin < 1024 || w.PortMin > 65535 {
			k.add("webrtc.port_min", "must be from 1024 to 65535 (or both port_min and port_max 0: any free port), got %d", w.PortMin)
			ok = false
		}
		if w.PortMax < 1024 || w.PortMax > 65535 {
			k.add("webrtc.port_max", "must be from 1024 to 65535 (or both port_min and port_max 0: any free port), got %d", w.PortMax)
			ok = false
		} else if ok && w.PortMax < w.PortMin {
			k.add("webrtc.port_max", "must be at least webrtc.port_min (%d), got %d", w.PortMin, w.PortMax)
			ok = false
		}
		if ok && w.PortMin <= c.RTP.PortMax && c.RTP.PortMin <= w.PortMax {
			k.add("webrtc.port_min", "the range %d-%d overlaps rtp.port_min-rtp.port_max (%d-%d): the call legs' RTP would take the ICE port",
				w.PortMin, w.PortMax, c.RTP.PortMin, c.RTP.PortMax)
		}
	}
	if w.TCPPort != 0 && (w.TCPPort < 1024 || w.TCPPort > 65535) {
		k.add("webrtc.tcp_port", "must be from 1024 to 65535, or 0 for no ICE over TCP, got %d", w.TCPPort)
	}
	for i, s := range w.ICEServers {
		p := "webrtc.ice_servers" + index(i)
		if len(s.URLs) == 0 {
			k.add(p+".urls", "needs at least one stun:, stuns:, turn: or turns: URI")
		}
		turn := false
		for j, u := range s.URLs {
			scheme, rest, _ := strings.Cut(u, ":")
			switch scheme {
			case "turn", "turns":
				turn = true
			case "stun", "stuns":
			default:
				k.add(p+".urls"+index(j), "%q must start with stun:, stuns:, turn: or turns: (RFC 7064, RFC 7065)", u)
				continue
			}
			if rest == "" || strings.IndexFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
				k.add(p+".urls"+index(j), "%q needs a host and no spaces, e.g. turn:turn.example.com:3478?transport=tcp", u)
			}
		}
		if turn && (s.Username == "" || s.Credential == "") {
			k.add(p, "a TURN server needs username and credential")
		}
		for _, f := range []struct{ key, v string }{{"username", s.Username}, {"credential", s.Credential}} {
			if strings.IndexFunc(f.v, unicode.IsControl) >= 0 {
				k.add(p+"."+f.key, "must not contain control characters")
			}
		}
	}
}
