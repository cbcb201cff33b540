package main

import (
	"crypto/tls"
	"fmt"
	"slices"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/roster"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
	"github.com/switchboard-voice/switchboard/ticketing/phone"
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
		FeatureCodes: sip.FeatureCodes{Available: s.FeatureCodes.Available, Away: s.FeatureCodes.Away, Offline: s.FeatureCodes.Offline,
			Pickup: s.FeatureCodes.Pickup},
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
			st.Username, st.Password, st.DigestAlgorithms = a.Username, a.Password, a.DigestAlgorithms
		}
		if a := tr.Outbound.Auth; a != nil {
			st.OutboundUsername, st.OutboundPassword = a.Username, a.Password
		}
		opts.Trunks = append(opts.Trunks, st)
	}
	return opts, nil
}

// auditPrunerOptions maps ticketing.audit_retention (0: kept forever).
func auditPrunerOptions(cfg *config.Config) ticketing.AuditPrunerOptions {
	return ticketing.AuditPrunerOptions{Retention: cfg.Ticketing.AuditRetention.D()}
}

// nodeWatchOptions translates database.heartbeat_interval and database.node_lost_after into
// eventlog.NodeWatchOptions (same zero: a heartbeat of 0 is off, and the caller starts no
// watch; same defaults: config's are eventlog's). The wiring — the log, logger, metrics — is
// the caller's.
// pageFront is the agent page's cluster front (web.Options.FrontURL): http.public_url on a node
// of a cluster (database.shared_queues) that names it; a page opened at the node's own address
// goes there when the node stops answering. One node: none (its page waits for it).
func pageFront(cfg *config.Config) string {
	if !cfg.Database.SharedQueues {
		return ""
	}
	return cfg.HTTP.PublicURL
}

func nodeWatchOptions(cfg *config.Config) eventlog.NodeWatchOptions {
	return eventlog.NodeWatchOptions{Interval: cfg.Database.HeartbeatInterval.D(), LostAfter: cfg.Database.NodeLostAfter.D()}
}

// rosterSeed translates the configuration's queues and agents into the roster's seed, written
// to the database on the first start only (roster.ApplySeed). An agent's own SIP secret is
// stored as digest HA1s; an agent without one keeps the file's password fallback (sipAgent).
func rosterSeed(cfg *config.Config) roster.Seed {
	var s roster.Seed
	for _, name := range sortedNames(cfg.Queues) {
		q := cfg.Queues[name]
		overflow := ""
		if q.Overflow.IsSet() {
			overflow = q.Overflow.String()
		}
		s.Queues = append(s.Queues, roster.Queue{Name: name, RingTimeout: q.RingTimeout.D(), MaxWait: q.MaxWait.D(),
			WrapUp: q.WrapUp.D(), MaxMissedOffers: q.MaxMissedOffers, AnnouncePosition: q.AnnouncePosition,
			Overflow: overflow, Music: q.Music, ServiceLevelSeconds: q.ServiceLevelSeconds,
			CallbackKey: q.Callback.Key, CallbackAttempts: q.Callback.Attempts, CallbackRetry: q.Callback.RetryDelay.D()})
	}
	for _, a := range cfg.Agents {
		sa := roster.SeedAgent{Email: a.Email, Queues: a.Queues}
		switch {
		case a.SIPSecretHA1 != nil:
			sa.SIPUsername, sa.HA1MD5, sa.HA1SHA256 = a.SIPUser(), a.SIPSecretHA1.MD5, a.SIPSecretHA1.SHA256
		case a.SIPSecret != "":
			sa.SIPUsername = a.SIPUser()
			sa.HA1MD5, sa.HA1SHA256 = roster.HA1(sa.SIPUsername, a.SIPSecret)
		}
		s.Agents = append(s.Agents, sa)
	}
	for _, l := range cfg.Lines {
		n, ok := phone.Normalize(l.Number, "")
		if !ok {
			continue // refused by the configuration's validation before this runs
		}
		rl := roster.Line{Number: n, Target: l.Target.String(), Name: l.Name, Language: l.Language}
		// Trunk, hours and settings seed the line's own (migration 031): the file's stop
		// applying to it after the first start, as its target does.
		if l.Trunk != "" {
			tr := l.Trunk
			rl.Trunk = &tr
		}
		if l.Hours != nil {
			rl.Hours = l.Hours.HoursJSON()
		}
		if l.Settings != (ticketing.LineSettings{}) {
			rl.Settings = config.SettingsJSON(l.Settings)
		}
		s.Lines = append(s.Lines, rl)
	}
	return s
}

// rosterTarget reads a queue's overflow target stored in the database, as the configuration
// writes it, and checks that a menu it names exists in the configuration (queues are the
// roster's, checked there).
func rosterTarget(cfg *config.Config) func(string) (ivr.Target, error) {
	return func(s string) (ivr.Target, error) {
		t, err := config.ParseTarget(s)
		if err != nil {
			return ivr.Target{}, err
		}
		if t.Kind == ivr.TargetMenu {
			if _, ok := cfg.Menu(t.Name); !ok {
				return ivr.Target{}, fmt.Errorf("%q names no IVR menu of the configuration", s)
			}
		}
		return t.Target, nil
	}
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
