package main

import (
	"crypto/tls"
	"fmt"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// sipOptions translates the configuration's sip, rtp and trunks sections into sip.Options,
// once, at start. The configuration and the options mean the same by zero (a limit or timer
// that can be off is off) and share their defaults (config's are sip's and media's
// constants), so every knob maps straight through, with no translation of its own. The
// wiring — ports, metrics, the event sink, hooks and the lines' targets — is the caller's.
func sipOptions(cfg *config.Config) (sip.Options, error) {
	s := cfg.SIP
	opts := sip.Options{
		UDPAddr: s.ListenAddress(config.TransportUDP), TCPAddr: s.ListenAddress(config.TransportTCP),
		TLSAddr: s.ListenAddress(config.TransportTLS), ExternalAddr: s.ExternalAddr(),
		MaxCalls:       s.MaxCalls,
		SessionExpires: s.SessionExpires.D(),
		RateLimit: sip.RateLimit{PerSecond: s.RateLimit.RequestsPerSecond, Burst: s.RateLimit.Burst,
			LimitTrunks: s.RateLimit.LimitTrunks, Exempt: config.Networks(s.RateLimit.Exempt)},
		TrustedFronts:    config.Networks(s.TrustedFronts),
		AnswerAckTimeout: s.AnswerAckTimeout.D(),
		Conn: sip.ConnLimits{Max: s.Connections.Max, PerSource: s.Connections.PerSource,
			HandshakeTimeout: s.Connections.HandshakeTimeout.D(), IdleTimeout: s.Connections.IdleTimeout.D(),
			// Not in the configuration: the package's default.
			WriteTimeout: sip.DefaultWriteTimeout},
		ScannerUserAgents: s.ScannerUserAgents,
		MediaTimeout:      cfg.RTP.MediaTimeout.D(),
		HoldTimeout:       cfg.RTP.HoldTimeout.D(),
		UserAgent:         s.UserAgent,
		Registrar: sip.RegistrarOptions{DigestAlgorithms: s.Registrar.DigestAlgorithms, PhoneNetworks: config.Networks(s.Registrar.PhoneNetworks),
			MaxBindingsPerAgent: s.Registrar.MaxBindingsPerAgent, MaxContactsPerRegister: s.Registrar.MaxContactsPerRegister,
			AuthFailuresFree: s.Registrar.AuthFailuresFree, AuthBackoffBase: s.Registrar.AuthBackoff.D(),
			AuthBackoffMax: s.Registrar.AuthBackoffMax.D()},
	}
	// The internal leg between the nodes (off without a secret); the wiring adds where the
	// nodes are (the database) and the ACD that takes relayed softphone buttons.
	opts.Cluster = sip.ClusterOptions{Node: cfg.Node, MaxSkew: cfg.Cluster.MaxSkew.D(),
		Networks: config.Networks(cfg.Cluster.InternalNetworks)}
	if cfg.Cluster.On() {
		opts.Cluster.Secret = []byte(cfg.Cluster.Secret)
	}
	if s.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLS.CertFile, s.TLS.KeyFile)
		if err != nil {
			return sip.Options{}, fmt.Errorf("sip.tls: %w", err)
		}
		opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	for _, tr := range cfg.Trunks {
		st := sip.Trunk{Name: tr.Name, Region: tr.Region, IgnoreAssertedIdentity: !tr.Inbound.TrustAssertedIdentity,
			Allow: config.Networks(tr.Inbound.Allow), OutboundURI: tr.Outbound.URI, CallerID: tr.Outbound.CallerID,
			CallsPerSecond: tr.Inbound.CallsPerSecond, MaxCalls: tr.Inbound.MaxCalls}
		if a := tr.Inbound.Auth; a != nil {
			st.Username, st.Password = a.Username, a.Password
		}
		if a := tr.Outbound.Auth; a != nil {
			st.OutboundUsername, st.OutboundPassword = a.Username, a.Password
		}
		opts.Trunks = append(opts.Trunks, st)
	}
	return opts, nil
}

// nodeWatchOptions translates database.heartbeat_interval and database.node_lost_after into
// eventlog.NodeWatchOptions (same zero: a heartbeat of 0 is off, and the caller starts no
// watch; same defaults: config's are eventlog's). The wiring — the log, logger, metrics — is
// the caller's.
func nodeWatchOptions(cfg *config.Config) eventlog.NodeWatchOptions {
	return eventlog.NodeWatchOptions{Interval: cfg.Database.HeartbeatInterval.D(), LostAfter: cfg.Database.NodeLostAfter.D()}
}
