package config

import (
	"net/netip"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// SIP transports a listener may use.
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
	TransportTLS = "tls"
)

// SIP configures the SIP side of the gateway (the B2BUA).
type SIP struct {
	// Listen lists the sockets the gateway takes SIP on, at most one per transport (default
	// UDP and TCP on 127.0.0.1:5060).
	Listen []SIPListen `yaml:"listen"`
	// ExternalAddress is the IP address the gateway puts in Via, Contact and the SDP c= line
	// (RFC 4566 §5.7) when peers must reach it at another address than it listens on (behind
	// NAT, or when listening on 0.0.0.0); empty means the listen address.
	ExternalAddress string `yaml:"external_address"`
	// TLS holds the certificate for "tls" listeners.
	TLS TLS `yaml:"tls"`
	// MaxCalls is the most concurrent calls; further INVITEs get 503 (default 1000, 0 no limit).
	MaxCalls int `yaml:"max_calls"`
	// UserAgent is sent in User-Agent and Server headers (default "Switchboard").
	UserAgent string `yaml:"user_agent"`
	// SessionExpires is the session interval of RFC 4028 (default 30m; 0 turns session timers
	// off; otherwise at least the 90s Min-SE of RFC 4028 §5).
	SessionExpires Duration `yaml:"session_expires"`
	// RateLimit limits SIP requests per source address.
	RateLimit RateLimit `yaml:"rate_limit"`
	// TrustedFronts are the networks of the SIP proxies in front of the gateway (the Kamailio
	// dispatcher of deploy/kamailio) whose X-Switchboard-Source header names the real source
	// of the requests they relay: trunk ACLs, rate limits, the scanner filter, the registrar's
	// backoff, security events and their log lines then see the carrier or the attacker, not
	// the front. The header is believed from these sources only (from anywhere else it is
	// ignored and counted as security event source_spoofed). Empty (default): none.
	TrustedFronts []Prefix `yaml:"trusted_fronts"`
	// ScannerUserAgents: requests whose User-Agent contains one of these (without regard to
	// case) are dropped without an answer. An empty list turns this off.
	ScannerUserAgents []string `yaml:"scanner_user_agents"`
	// Registrar tunes REGISTER handling for agents' SIP phones (contact policy, caps).
	Registrar SIPRegistrar `yaml:"registrar"`
	// AnswerAckTimeout is how long the answer of a new inbound call waits for its ACK before
	// the call is hung up and its max_calls slot given back (default 5s; RFC 3261 §13.3.1.4
	// says 32s, which lets spoofed INVITEs hold slots).
	AnswerAckTimeout Duration `yaml:"answer_ack_timeout"`
	// Connections bounds SIP TCP and TLS connections.
	Connections SIPConnections `yaml:"connections"`
	// FeatureCodes are what agents' SIP phones dial to set their queue state (defaults *60,
	// *61, *62) and to pick up a call ringing another agent (default *8).
	FeatureCodes SIPFeatureCodes `yaml:"feature_codes"`
}

// SIPFeatureCodes are the numbers an agent's SIP phone dials to go available, away or
// offline, or to pick up a ringing call (sip.FeatureCodes): 2 to 8 of 0-9, '*' and '#', distinct, none a line's number.
type SIPFeatureCodes struct {
	Available string `yaml:"available"`
	Away      string `yaml:"away"`
	Offline   string `yaml:"offline"`
	// Pickup picks up the longest-waiting call ringing an agent of the agent's queues
	// (default *8).
	Pickup string `yaml:"pickup"`
}

// SIPConnections bounds the SIP TCP and TLS connections peers open to the gateway, so an
// idle-connection flood takes neither file descriptors (RTP needs them) nor memory.
type SIPConnections struct {
	// Max is the most open inbound connections per transport (default 1024; 0 no limit).
	Max int `yaml:"max"`
	// PerSource is the most from one IP address (default 32; 0 no limit).
	PerSource int `yaml:"per_source"`
	// HandshakeTimeout closes a connection that sent nothing, or did not finish its TLS
	// handshake, this long after it was opened (default 10s; 0 none).
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// IdleTimeout closes a connection nothing was read from for this long (default 5m; 0 none).
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// ListenAddress returns the address of the listener using transport ("udp", "tcp", "tls"), or
// "" when there is none.
func (s SIP) ListenAddress(transport string) string {
	for _, l := range s.Listen {
		if l.Transport == transport {
			return l.Address
		}
	}
	return ""
}

// ExternalAddr returns ExternalAddress parsed; the zero Addr when it is empty.
func (s SIP) ExternalAddr() netip.Addr {
	a, _ := netip.ParseAddr(s.ExternalAddress)
	return a
}

// Networks returns the prefixes as net/netip values.
func Networks(ps []Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Prefix
	}
	return out
}

// SIPListen is one SIP listening socket.
type SIPListen struct {
	// Transport is udp, tcp or tls.
	Transport string `yaml:"transport"`
	// Address is IP:port; an empty IP listens on every interface, port 0 picks a free port.
	Address string `yaml:"address"`
}

// TLS names a certificate and its private key, both PEM files.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RateLimit is a token bucket per source IP address for incoming SIP requests; requests over
// it are dropped (and counted). Sources of a trunk (inbound.allow) are not limited unless
// LimitTrunks is set.
type RateLimit struct {
	// LimitTrunks applies the limit to trunks' sources too (default false: a trunk's own
	// calls_per_second and max_calls bound it instead).
	LimitTrunks bool `yaml:"limit_trunks"`
	// RequestsPerSecond refills the bucket (default 20; 0 turns the limit off).
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is the bucket size (default 40).
	Burst int `yaml:"burst"`
	// Exempt lists more networks never limited (e.g. a monitoring probe).
	Exempt []Prefix `yaml:"exempt"`
}

// RTP configures media ports.
type RTP struct {
	// Address is the IP address RTP sockets bind to (default 127.0.0.1).
	Address string `yaml:"address"`
	// PortMin and PortMax bound the UDP ports used. Each call leg takes an even port for RTP
	// and the odd one above it for RTCP (RFC 3550 §11), so PortMin must be even
	// (default 10000–19999).
	PortMin int `yaml:"port_min"`
	PortMax int `yaml:"port_max"`
	// MediaTimeout ends a call when no RTP arrives for this long (default 30s; it cannot be off).
	MediaTimeout Duration `yaml:"media_timeout"`
	// HoldTimeout ends a call on hold after this long (default 1h; 0 no limit).
	HoldTimeout Duration `yaml:"hold_timeout"`
}

// Pairs returns how many RTP/RTCP port pairs the range holds: the most concurrent call legs.
func (r RTP) Pairs() int {
	if r.PortMax < r.PortMin {
		return 0
	}
	return (r.PortMax - r.PortMin + 1) / 2
}

// Trunk is a SIP trunk to a carrier: where inbound calls may come from and where outbound
// calls go.
type Trunk struct {
	// Name identifies the trunk (letters, digits, '_', '-'), e.g. in metrics.
	Name string `yaml:"name"`
	// Region is the ISO 3166 country of the carrier's numbering plan (US, FR): caller IDs and
	// dialled numbers written without a country code are read in it (default
	// ticketing.default_region).
	Region   string        `yaml:"region"`
	Inbound  TrunkInbound  `yaml:"inbound"`
	Outbound TrunkOutbound `yaml:"outbound"`
}

// TrunkInbound says which INVITEs belong to the trunk. A request matching no trunk gets 403.
type TrunkInbound struct {
	// Allow lists the source networks accepted.
	Allow []Prefix `yaml:"allow"`
	// Auth, when set, challenges inbound requests with digest authentication (RFC 8760).
	// With Auth and no Allow the trunk takes INVITEs from any source that proves the
	// credentials (its digest username picks the trunk); those sources stay under
	// sip.rate_limit. Allow alone trusts the UDP source address, which is spoofable.
	Auth *Auth `yaml:"auth"`
	// CallsPerSecond bounds the new calls the trunk may start per second (default 20; 0 no
	// limit); more get 503 with Retry-After.
	CallsPerSecond float64 `yaml:"calls_per_second"`
	// MaxCalls bounds the trunk's concurrent inbound calls (default 0: only sip.max_calls);
	// more get 503 with Retry-After.
	MaxCalls int `yaml:"max_calls"`
	// TrustAssertedIdentity takes the caller from P-Asserted-Identity, when the INVITE has one,
	// rather than From (RFC 3325 §9.1; default true). False for a peer outside the operator's
	// trust domain, which could assert any identity (RFC 3325 §2.3).
	TrustAssertedIdentity bool `yaml:"trust_asserted_identity"`
}

// TrunkOutbound says how outbound calls reach the carrier.
type TrunkOutbound struct {
	// URI is the carrier's SIP URI (e.g. sip:192.0.2.10:5060;transport=tcp); empty means the
	// trunk takes no outbound calls.
	URI string `yaml:"uri"`
	// CallerID is the E.164 number presented when the calling line sets none.
	CallerID string `yaml:"caller_id"`
	// Auth answers the carrier's digest challenges.
	Auth *Auth `yaml:"auth"`
	// Destinations restricts the numbers agents may dial through the trunk (toll fraud).
	Destinations Destinations `yaml:"destinations"`
	// AgentLimits bounds each agent's outbound calls through the trunk (toll fraud).
	AgentLimits AgentLimits `yaml:"agent_limits"`
}

// Destinations are E.164 prefixes ("+1900", "+44") an outbound number is checked against
// before anything is dialled. The longest matching prefix decides (deny wins a tie); with a
// non-empty Allow, a number that matches no Allow prefix is refused. So empty Allow means
// "everything not denied", and `allow: ["+1"], deny: ["+1900"]` means North America except
// its premium-rate 900 numbers.
type Destinations struct {
	Allow []string `yaml:"allow"`
	// Deny defaults to DefaultDenyPrefixes when the key is omitted; `deny: []` denies nothing.
	Deny []string `yaml:"deny"`
}

// DefaultDenyPrefixes are destinations with a long history of toll fraud: North American
// premium-rate 900 and 976, the ITU's International Premium Rate Service (+979) and the
// satellite and international networks +881, +882 and +883. An operator who needs them lists
// a longer prefix under allow, or sets deny explicitly.
func DefaultDenyPrefixes() []string {
	return []string{"+1900", "+1976", "+979", "+881", "+882", "+883"}
}

// AgentLimits are per-agent limits on outbound calls (POST /calls), refused with 429 before
// anything is dialled.
type AgentLimits struct {
	// CallsPerMinute is the most calls an agent may start in any 60 s (default 10; 0 no limit).
	CallsPerMinute int `yaml:"calls_per_minute"`
	// MaxCalls is the most outbound calls an agent may have at once (default 2; 0 no limit).
	MaxCalls int `yaml:"max_calls"`
}

// Defaults of AgentLimits (docs/configuration.md).
const (
	DefaultAgentCallsPerMinute = 10
	DefaultAgentMaxCalls       = 2
)

// Auth is a digest username and password.
type Auth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DigestAlgorithms (inbound.auth only) are offered in the challenge to the carrier's
	// INVITEs, in order of preference (default [MD5, SHA-256]: the carrier answers the first
	// it supports, and many carrier UAs read only the first).
	DigestAlgorithms []string `yaml:"digest_algorithms"`
}

// Line is one inbound number (DID) with its destination and ticketing settings.
type Line struct {
	// Number is the line's E.164 number ("+15550100"); also the caller ID of outbound calls
	// placed from the line (OB-7).
	Number string `yaml:"number"`
	// Name is shown to agents (default: the number).
	Name string `yaml:"name"`
	// Trunk is the trunk the line belongs to (default: the only trunk).
	Trunk string `yaml:"trunk"`
	// Language is the call's starting language, a tag such as "en" or "fr-CA"
	// (default prompts.default_language).
	Language string `yaml:"language"`
	// Target is where calls to the line go.
	Target Target `yaml:"target"`
	// Hours, when set, sends calls outside opening hours to Hours.ClosedTarget.
	Hours *Hours `yaml:"hours"`
	// Settings override the global ticketing settings for this line.
	Settings ticketing.LineSettings `yaml:"settings"`
}

// Hours are a line's opening hours.
type Hours struct {
	// TimeZone is an IANA time zone name (default UTC).
	TimeZone string `yaml:"time_zone"`
	// Weekly lists the opening intervals of each weekday; a day without any is closed.
	Weekly Weekly `yaml:"weekly"`
	// Holidays are closed all day.
	Holidays []Date `yaml:"holidays"`
	// ClosedTarget is where calls go when closed (default voicemail).
	ClosedTarget Target `yaml:"closed_target"`

	loc *time.Location
}

// Weekly holds the opening intervals of each day of the week.
type Weekly struct {
	Mon []TimeRange `yaml:"mon"`
	Tue []TimeRange `yaml:"tue"`
	Wed []TimeRange `yaml:"wed"`
	Thu []TimeRange `yaml:"thu"`
	Fri []TimeRange `yaml:"fri"`
	Sat []TimeRange `yaml:"sat"`
	Sun []TimeRange `yaml:"sun"`
}

// Day returns the intervals of a weekday.
func (w Weekly) Day(d time.Weekday) []TimeRange {
	return [...][]TimeRange{w.Sun, w.Mon, w.Tue, w.Wed, w.Thu, w.Fri, w.Sat}[d]
}

// Location returns the loaded time zone (UTC when it was not loaded).
func (h *Hours) Location() *time.Location {
	if h.loc != nil {
		return h.loc
	}
	if loc, err := time.LoadLocation(h.TimeZone); err == nil {
		return loc
	}
	return time.UTC
}

// IVR returns the hours as the IVR applies them (ivr.Line.Hours; ivr.Hours.Open decides).
func (h *Hours) IVR() *ivr.Hours {
	out := &ivr.Hours{Location: h.Location(), Closed: h.ClosedTarget.Target}
	for d := time.Sunday; d <= time.Saturday; d++ {
		for _, r := range h.Weekly.Day(d) {
			out.Weekly[d] = append(out.Weekly[d], r.TimeRange)
		}
	}
	for _, d := range h.Holidays {
		out.Holidays = append(out.Holidays, d.Date)
	}
	return out
}
