package config

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Defaults that docs/configuration.md lists.
const (
	DefaultHTTPListen    = "127.0.0.1:8080"
	DefaultSIPAddress    = "127.0.0.1:5060"
	DefaultUserAgent     = "Switchboard"
	DefaultMaxCalls      = 1000
	DefaultLanguage      = "en"
	DefaultRegion        = "US"
	DefaultShutdownGrace = 30 * time.Second
	// DefaultSpool is where call events wait while the database is away.
	DefaultSpool = ".data/spool/events.jsonl"
	// DefaultJournalName is the call journal's file name, in the spool's directory.
	DefaultJournalName     = "calls.jsonl"
	DefaultSessionExpires  = 30 * time.Minute
	DefaultMenuTimeout     = 5 * time.Second
	DefaultMenuRetries     = 1
	DefaultRingTimeout     = 15 * time.Second
	DefaultMaxWait         = 120 * time.Second
	DefaultMaxMissedOffers = 3
	// HTTP authentication limits (http.auth_backoff, http.bcrypt_concurrency).
	DefaultAuthFailures       = 5
	DefaultAuthBackoffInitial = time.Second
	DefaultAuthBackoffMax     = 15 * time.Minute
	DefaultBcryptConcurrency  = 2
	// DefaultTrunkCallsPerSecond is a trunk's inbound.calls_per_second when omitted.
	DefaultTrunkCallsPerSecond = 20
	DefaultAnswerAckTimeout    = 5 * time.Second
)

// DefaultScannerUserAgents are User-Agent substrings of well-known SIP scanners.
func DefaultScannerUserAgents() []string {
	return []string{"friendly-scanner", "sipcli", "sipvicious", "VaxSIPUserAgent", "pplsip"}
}

// Default returns the configuration an empty file gives, before validation (which then asks
// for database.url). Parse decodes the file over it, so an omitted key keeps its default.
func Default() Config {
	migrate := true
	return Config{
		ShutdownGrace: Duration(DefaultShutdownGrace),
		Log:           Log{Level: "info", Format: "auto"},
		Database:      Database{MigrateOnStart: &migrate, Spool: DefaultSpool},
		HTTP: HTTP{Listen: DefaultHTTPListen, TokenTTL: Duration(ticketing.DefaultTokenTTL), BcryptConcurrency: DefaultBcryptConcurrency,
			AuthBackoff: AuthBackoff{Failures: DefaultAuthFailures, Initial: Duration(DefaultAuthBackoffInitial), Max: Duration(DefaultAuthBackoffMax)}},
		SIP: SIP{
			Listen: []SIPListen{
				{Transport: TransportUDP, Address: DefaultSIPAddress},
				{Transport: TransportTCP, Address: DefaultSIPAddress},
			},
			MaxCalls:          DefaultMaxCalls,
			UserAgent:         DefaultUserAgent,
			SessionExpires:    Duration(DefaultSessionExpires),
			RateLimit:         RateLimit{RequestsPerSecond: 20, Burst: 40},
			ScannerUserAgents: DefaultScannerUserAgents(),
			Registrar: SIPRegistrar{MaxBindingsPerAgent: DefaultMaxBindingsPerAgent, MaxContactsPerRegister: DefaultMaxContactsPerRegister,
				DigestAlgorithms: DefaultDigestAlgorithms(), AuthFailuresFree: DefaultRegisterFailuresFree, AuthBackoff: Duration(DefaultRegisterBackoff), AuthBackoffMax: Duration(DefaultRegisterBackoffMax)},
			AnswerAckTimeout: Duration(DefaultAnswerAckTimeout),
			Connections: SIPConnections{Max: 1024, PerSource: 32,
				HandshakeTimeout: Duration(10 * time.Second), IdleTimeout: Duration(5 * time.Minute)},
		},
		RTP: RTP{
			Address:      "127.0.0.1",
			PortMin:      10000,
			PortMax:      19999,
			MediaTimeout: Duration(30 * time.Second),
			HoldTimeout:  Duration(time.Hour),
		},
		Prompts:    Prompts{DefaultLanguage: DefaultLanguage},
		Recordings: Recordings{Start: RecordFromAnswer},
		Voicemail: Voicemail{
			Prompt:    "voicemail",
			MaxLength: Duration(120 * time.Second),
			MinLength: Duration(time.Second),
			Beep:      true,
		},
		Ticketing: Ticketing{DefaultRegion: DefaultRegion, Settings: ticketing.DefaultSettings()},
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
				l.Hours.ClosedTarget = Target{Kind: TargetVoicemail}
			}
		}
	}
	for _, name := range sortedKeys(c.IVR) {
		m := c.IVR[name]
		if m == nil {
			continue
		}
		p := "ivr." + name
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
			q.Overflow = Target{Kind: TargetVoicemail}
		}
		if !idx.has(p + ".max_missed_offers") {
			q.MaxMissedOffers = DefaultMaxMissedOffers
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
			c.Teams[i].TicketEntry.Mode = TicketEntryOff
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
