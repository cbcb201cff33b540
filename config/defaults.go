package config

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// Defaults that docs/configuration.md lists. A knob that a package's options also hold takes
// that package's default (sip, media, ivr), defined there once: what the file omits and what
// the package does when left alone are the same. In the configuration as in the options, 0
// turns a limit or timer off where it can be off.
const (
	DefaultHTTPListen    = "127.0.0.1:8080"
	DefaultSIPAddress    = "127.0.0.1:5060"
	DefaultUserAgent     = sip.DefaultUserAgent
	DefaultMaxCalls      = sip.DefaultMaxCalls
	DefaultLanguage      = "en"
	DefaultRegion        = "US"
	DefaultShutdownGrace = 30 * time.Second
	// DefaultSpool is where call events wait while the database is away.
	DefaultSpool = ".data/spool/events.jsonl"
	// DefaultJournalName is the call journal's file name, in the spool's directory.
	DefaultJournalName = "calls.jsonl"
	// Several nodes on one database (database.heartbeat_interval, database.node_lost_after).
	DefaultHeartbeatInterval = eventlog.DefaultHeartbeatInterval
	DefaultNodeLostAfter     = eventlog.DefaultNodeLostAfter
	DefaultSessionExpires    = sip.DefaultSessionExpires
	DefaultMenuTimeout       = ivr.DefaultMenuTimeout
	DefaultMenuRetries       = 1
	// A collect step's (ivr.Collect; the same retries as a menu).
	DefaultCollectDigitTimeout = ivr.DefaultCollectDigitTimeout
	DefaultCollectTimeout      = ivr.DefaultCollectTimeout
	DefaultCollectMaxDigits    = ivr.MaxCollectDigits
	DefaultCollectTerminator   = "#"
	DefaultRingTimeout         = ivr.DefaultRingTimeout
	DefaultMaxWait             = ivr.DefaultMaxWait
	DefaultMaxMissedOffers     = 3
	// DefaultServiceLevelSeconds is a queue's service_level_seconds when omitted.
	DefaultServiceLevelSeconds = ticketing.DefaultServiceLevelSeconds
	// HTTP authentication limits (http.auth_backoff, http.bcrypt_concurrency).
	DefaultAuthFailures       = ticketing.DefaultAuthFailures
	DefaultAuthBackoffInitial = ticketing.DefaultAuthBackoffInitial
	DefaultAuthBackoffMax     = ticketing.DefaultAuthBackoffMax
	DefaultBcryptConcurrency  = ticketing.DefaultBcryptConcurrency
	DefaultMaxUploadBytes     = ticketing.DefaultMaxUploadBytes
	// DefaultTrunkCallsPerSecond is a trunk's inbound.calls_per_second when omitted.
	DefaultTrunkCallsPerSecond = 20
	DefaultAnswerAckTimeout    = sip.DefaultAnswerAckTimeout
	// SIP rate limit (sip.rate_limit).
	DefaultRequestsPerSecond = sip.DefaultRequestsPerSecond
	DefaultBurst             = sip.DefaultBurst
	// SIP connection limits (sip.connections).
	DefaultMaxConnections        = sip.DefaultMaxConns
	DefaultConnectionsPerSource  = sip.DefaultConnsPerSource
	DefaultConnectionHandshake   = sip.DefaultHandshakeTimeout
	DefaultConnectionIdleTimeout = sip.DefaultIdleTimeout
	DefaultMediaTimeout          = media.DefaultMediaTimeout
	DefaultHoldTimeout           = media.DefaultHoldTimeout
	DefaultVoicemailMaxLength    = ivr.DefaultMaxLength
	DefaultVoicemailMinLength    = ivr.DefaultMinLength
)

// DefaultScannerUserAgents are User-Agent substrings of well-known SIP scanners (sip's).
func DefaultScannerUserAgents() []string { return sip.DefaultScannerUserAgents() }

// Default returns the configuration an empty file gives, before validation (which then asks
// for database.url). Parse decodes the file over it, so an omitted key keeps its default.
func Default() Config {
	migrate := true
	return Config{
		ShutdownGrace: Duration(DefaultShutdownGrace),
		Log:           Log{Level: "info", Format: "auto"},
		Database: Database{MigrateOnStart: &migrate, Spool: DefaultSpool,
			HeartbeatInterval: Duration(DefaultHeartbeatInterval), NodeLostAfter: Duration(DefaultNodeLostAfter)},
		HTTP: HTTP{Listen: DefaultHTTPListen, TokenTTL: Duration(ticketing.DefaultTokenTTL), BcryptConcurrency: DefaultBcryptConcurrency,
			MaxUploadBytes: DefaultMaxUploadBytes,
			AuthBackoff:    AuthBackoff{Failures: DefaultAuthFailures, Initial: Duration(DefaultAuthBackoffInitial), Max: Duration(DefaultAuthBackoffMax)}},
		SIP: SIP{
			Listen: []SIPListen{
				{Transport: TransportUDP, Address: DefaultSIPAddress},
				{Transport: TransportTCP, Address: DefaultSIPAddress},
			},
			MaxCalls:          DefaultMaxCalls,
			UserAgent:         DefaultUserAgent,
			SessionExpires:    Duration(DefaultSessionExpires),
			RateLimit:         RateLimit{RequestsPerSecond: DefaultRequestsPerSecond, Burst: DefaultBurst},
			ScannerUserAgents: DefaultScannerUserAgents(),
			Registrar: SIPRegistrar{MaxBindingsPerAgent: DefaultMaxBindingsPerAgent, MaxContactsPerRegister: DefaultMaxContactsPerRegister,
				DigestAlgorithms: DefaultDigestAlgorithms(), AuthFailuresFree: DefaultRegisterFailuresFree, AuthBackoff: Duration(DefaultRegisterBackoff), AuthBackoffMax: Duration(DefaultRegisterBackoffMax)},
			AnswerAckTimeout: Duration(DefaultAnswerAckTimeout),
			Connections: SIPConnections{Max: DefaultMaxConnections, PerSource: DefaultConnectionsPerSource,
				HandshakeTimeout: Duration(DefaultConnectionHandshake), IdleTimeout: Duration(DefaultConnectionIdleTimeout)},
			FeatureCodes: SIPFeatureCodes{Available: sip.FeatureAvailable, Away: sip.FeatureAway, Offline: sip.FeatureOffline,
				Pickup: sip.FeaturePickup},
		},
		RTP: RTP{
			Address:      "127.0.0.1",
			PortMin:      10000,
			PortMax:      19999,
			MediaTimeout: Duration(DefaultMediaTimeout),
			HoldTimeout:  Duration(DefaultHoldTimeout),
		},
		Prompts:    Prompts{DefaultLanguage: DefaultLanguage},
		Recordings: Recordings{Start: RecordFromAnswer},
		Voicemail: Voicemail{
			Prompt:    "voicemail",
			MaxLength: Duration(DefaultVoicemailMaxLength),
			MinLength: Duration(DefaultVoicemailMinLength),
			Beep:      true,
		},
		Ticketing: Ticketing{DefaultRegion: DefaultRegion, Settings: ticketing.DefaultSettings()},
		Cluster:   Cluster{MaxSkew: Duration(DefaultClusterMaxSkew)},
	}
}

// applyDefaults fills what Default cannot: the host name, and the defaults of list and map
// elements, where an omitted key (idx says which) is told from an explicit zero.
func (c *Config) applyDefaults(idx *docIndex) {
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.Database.MigrateOnStart == nil {
		t := true
		c.Database.MigrateOnStart = &t
	}
	if c.Database.Spool == "" {
		c.Database.Spool = DefaultSpool
	}
	if c.Database.Journal == "" {
		c.Database.Journal = filepath.Join(filepath.Dir(c.Database.Spool), DefaultJournalName)
	}
	for i := range c.Lines {
		l := &c.Lines[i]
		if l.Name == "" {
			l.Name = l.Number
		}
		if l.Language == "" {
			l.Language = c.Prompts.DefaultLanguage
		}
		if l.Hours != nil {
			if l.Hours.TimeZone == "" {
				l.Hours.TimeZone = "UTC"
			}
			if !l.Hours.ClosedTarget.IsSet() {
				l.Hours.ClosedTarget = Target{Target: ivr.VoicemailTarget()}
			}
		}
	}
	for _, name := range sortedKeys(c.IVR) {
		m := c.IVR[name]
		if m == nil {
			continue
		}
		p := "ivr." + name
		if col := m.Collect; col != nil {
			// A collect step plays no prompt unless it names one; the menu keys it does not
			// use keep their zero so that Validate can refuse them.
			cp := p + ".collect"
			if !idx.has(cp + ".min_digits") {
				col.MinDigits = 1
			}
			if !idx.has(cp + ".max_digits") {
				col.MaxDigits = DefaultCollectMaxDigits
			}
			if !idx.has(cp + ".terminator") {
				col.Terminator = DefaultCollectTerminator
			}
			if !idx.has(cp + ".digit_timeout") {
				col.DigitTimeout = Duration(DefaultCollectDigitTimeout)
			}
			if !idx.has(cp + ".timeout") {
				col.Timeout = Duration(DefaultCollectTimeout)
			}
			if !idx.has(cp + ".retries") {
				col.Retries = DefaultMenuRetries
			}
			if !col.NoInput.IsSet() {
				col.NoInput = Branch{Continue: true}
			}
			if !col.Invalid.IsSet() {
				col.Invalid = col.NoInput
			}
			continue
		}
		if m.Prompt == "" {
			m.Prompt = name
		}
		if !idx.has(p + ".timeout") {
			m.Timeout = Duration(DefaultMenuTimeout)
		}
		if !idx.has(p + ".retries") {
			m.Retries = DefaultMenuRetries
		}
		if !m.Invalid.IsSet() {
			m.Invalid = m.NoInput
		}
	}
	for _, name := range sortedKeys(c.Queues) {
		q := c.Queues[name]
		if q == nil { // "sales:" with nothing after it takes every default
			q = &Queue{}
			c.Queues[name] = q
		}
		p := "queues." + name
		if !idx.has(p + ".ring_timeout") {
			q.RingTimeout = Duration(DefaultRingTimeout)
		}
		if !idx.has(p + ".max_wait") {
			q.MaxWait = Duration(DefaultMaxWait)
		}
		if !q.Overflow.IsSet() {
			q.Overflow = Target{Target: ivr.VoicemailTarget()}
		}
		if !idx.has(p + ".max_missed_offers") {
			q.MaxMissedOffers = DefaultMaxMissedOffers
		}
		if !idx.has(p + ".service_level_seconds") {
			q.ServiceLevelSeconds = DefaultServiceLevelSeconds
		}
	}
	for i := range c.Trunks {
		p := "trunks" + index(i) + ".outbound"
		o := &c.Trunks[i].Outbound
		if !idx.has(p + ".destinations.deny") {
			o.Destinations.Deny = DefaultDenyPrefixes()
		}
		if !idx.has(p + ".agent_limits.calls_per_minute") {
			o.AgentLimits.CallsPerMinute = DefaultAgentCallsPerMinute
		}
		if !idx.has(p + ".agent_limits.max_calls") {
			o.AgentLimits.MaxCalls = DefaultAgentMaxCalls
		}
		if !idx.has("trunks" + index(i) + ".inbound.calls_per_second") {
			c.Trunks[i].Inbound.CallsPerSecond = DefaultTrunkCallsPerSecond
		}
		if !idx.has("trunks" + index(i) + ".inbound.trust_asserted_identity") {
			c.Trunks[i].Inbound.TrustAssertedIdentity = true
		}
		if c.Trunks[i].Region == "" {
			c.Trunks[i].Region = c.Ticketing.DefaultRegion
		}
	}
	for i := range c.Agents {
		if c.Agents[i].Name == "" {
			c.Agents[i].Name = defaultName(c.Agents[i].Email)
		}
	}
	for i := range c.Teams {
		if c.Teams[i].TicketEntry.Mode == "" {
			c.Teams[i].TicketEntry.Mode = ticketing.TicketEntryOff
		}
	}
	for i := range c.Users {
		if c.Users[i].Name == "" {
			c.Users[i].Name = defaultName(c.Users[i].Email)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// index is "[i]" for list paths.
func index(i int) string { return "[" + strconv.Itoa(i) + "]" }
