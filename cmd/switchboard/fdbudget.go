package main

import "github.com/switchboard-voice/switchboard/config"

// fdOther is the file descriptors kept for everything but RTP, SIP and HTTP connections: the
// database pool, recordings being written, prompts, logs.
const fdOther = 1024

// maxHTTPConns caps the HTTP connections served at once (browsers, WebSockets, API clients,
// Prometheus); more wait in the kernel's listen backlog, which takes no descriptor of ours.
const maxHTTPConns = 4096

// fdNeeded is how many file descriptors the configuration may use at once: two sockets (RTP
// and RTCP) per port pair of the RTP range, the SIP connection caps of the TCP and TLS
// listeners, the HTTP cap, and fdOther. An idle-connection flood is held to the caps, so if the process may
// open this many, RTP port allocation never fails for want of descriptors.
func fdNeeded(cfg *config.Config) int {
	n := 2*cfg.RTP.Pairs() + maxHTTPConns + fdOther
	for _, l := range cfg.SIP.Listen {
		if l.Transport == config.TransportTCP || l.Transport == config.TransportTLS {
			if m := cfg.SIP.Connections.Max; m > 0 {
				n += m
			} else {
				n += 65536 // no cap: nothing bounds it
			}
		}
	}
	return n
}

// checkFDBudget warns when the open-file limit (which the Go runtime raises to the hard limit at
// start on Linux) is below fdNeeded: under a connection flood, calls would then fail with 503
// for want of an RTP socket.
func (gw *gateway) checkFDBudget() {
	limit, ok := openFileLimit()
	if !ok {
		return
	}
	if need := fdNeeded(gw.cfg); uint64(need) > limit {
		gw.log.Warn("open-file limit below what the configuration may use: raise LimitNOFILE (systemd) or ulimit -n, or lower sip.connections.max or the RTP range",
			"limit", limit, "needed", need)
	}
}
