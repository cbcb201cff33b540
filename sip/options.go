package sip

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Options configures a Server. cmd/switchboard maps the YAML configuration onto it.
//
// Zero means the same here as in the configuration: for a limit or a timer that can be off
// (MaxCalls, SessionExpires, RateLimit.PerSecond, the Conn limits, the registrar's caps and
// backoff, MediaTimeout, HoldTimeout, ScannerUserAgents) zero turns it off; every such field
// says so. A timer the protocol cannot do without (T1, MinSE, RetryAfter …) takes its default
// at zero. The defaults are defined once, here (the Default* constants), and DefaultOptions
// returns them all: start from it and change what differs. The configuration's defaults are
// these same constants.
type Options struct {
	// beforeProvisional, for tests, runs when a provisional response passed its check and is
	// about to be sent (the window provMu closes).
	beforeProvisional func()

	// UDPAddr and TCPAddr are the SIP listen addresses ("127.0.0.1:5060"); port 0 picks a free
	// port (see Server.Addr). An empty address disables that transport; both empty means UDP and
	// TCP on 127.0.0.1:5060.
	UDPAddr string
	TCPAddr string
	// TLSAddr with TLSConfig (a certificate) adds a TLS listener; empty disables it.
	TLSAddr   string
	TLSConfig *tls.Config

	// ExternalAddr is written into our SDP c=/o= lines and our Contact headers. Default: the host
	// of the first listen address (or 127.0.0.1 when that is a wildcard).
	ExternalAddr netip.Addr

	// Trunks are the carriers allowed to send us calls and through which we call out.
	Trunks []Trunk
	// Lines map dialled numbers (DIDs) to targets. A call to a number not listed gets 404.
	Lines []Line

	// Agents, when set, turns on the registrar for agents' SIP phones (registrar.go): it
	// returns the credentials of the agent a REGISTER's digest username names (cmd accepts the
	// agent's e-mail and its local part). Nil answers REGISTER with 405. Server.PhoneDialer
	// rings the registered phones.
	Agents func(username string) (AgentAccount, bool)
	// Registrar tunes REGISTER handling (realm, expiry bounds, change hook).
	Registrar RegistrarOptions
	// AgentStates, with Agents, lets agents set their queue state from their SIP phones by
	// dialling a feature code (FeatureCodes; featurecode.go). Nil: the codes are dialled like
	// any number (and refused unless a line has them).
	AgentStates AgentStates
	// FeatureCodes are the codes of AgentStates and Pickup: DefaultFeatureCodes (*60
	// available, *61 away, *62 offline, *8 pickup); an empty field takes its default. New
	// refuses codes that are not ValidFeatureCode or not distinct.
	FeatureCodes FeatureCodes
	// OwnCalls, when set, is told of every agent's own call once it is answered and bridged
	// (CallForAgent: the callee's endpoint, bridged to the agent's audio) and when it ends, so
	// that supervisors and conferences reach it as they reach a queued call (*ivr.ACD: OwnCall).
	// Nil: they reach only the ACD's calls.
	OwnCalls OwnCalls
	// Refer, when set, carries out the blind transfer an agent's SIP phone asks for with REFER
	// (RFC 3515; refer.go): the call, the agent, and the Refer-To target read as an agent (a
	// SIP username Agents knows) or a number. Nil answers REFER with 405.
	Refer func(ctx context.Context, callID string, agentID int64, to ReferTarget) error
	// PhoneConsult, when set with PhoneComplete, carries out the consult of an attended
	// transfer from an agent's SIP phone (phoneconsult.go): the phone's INVITE through the
	// gateway names the target (read as for Refer); via is that call's leg, to bridge to the
	// target once it answered. It returns nil once the target answered, else why not; onEnd
	// is to be told how a consult that reached its target ended. Nil: such INVITEs are
	// handled like any other.
	PhoneConsult func(ctx context.Context, callID string, agentID int64, to ReferTarget, via ivr.AgentLeg, onEnd func(ivr.ConsultEnd)) error
	// PhoneComplete completes the consult PhoneConsult started, when the phone's REFER
	// replaces its consult call (RFC 3891, RFC 5589 §7). Nil: such REFERs are declined (603).
	PhoneComplete func(ctx context.Context, callID string, agentID int64) error
	// PhoneHold, when set, takes the hold button of an agent's SIP phone on a queue call it
	// answered — its re-INVITE offering sendonly, inactive or c=0.0.0.0, then sendrecv to
	// resume (RFC 3264 §8.4) — as the page's hold button does (*ivr.ACD satisfies it): the
	// caller hears the queue's music, call.held and call.resumed come from the ACD, and the
	// hold time is the ACD's (phonehold.go). The re-INVITE is answered as any (sendonly →
	// recvonly). Nil, or a call the ACD refuses to hold (a conference, a consult under way):
	// call control counts the hold itself (call.held, call.resumed, hold time) and the caller
	// hears what the phone sends (usually nothing).
	PhoneHold PhoneHold
	// Pickup, when set with Agents, lets an agent's SIP phone pick up a queued call ringing
	// another agent (pickup.go): by INVITE with Replaces naming the ringing offer's dialog
	// (RFC 3891), or by dialling FeatureCodes.Pickup (*8). *ivr.ACD satisfies it. Nil: an
	// INVITE with Replaces gets 481 or 403, and the code is dialled like any number.
	Pickup CallPickup
	// PhoneCall, when set with Agents, lets an agent's SIP phone place its own outbound call
	// through the gateway (phonecall.go): its authenticated INVITE to a number, while the
	// phone is on no call. It checks the dial as the page's POST /calls is checked (the
	// ticketing core's outbound rules, the trunk's destinations, the agent's limits) and
	// returns the call to place — Number in E.164, Trunk and Line (empty: the first outbound
	// trunk and its caller ID), Started (the ticket choices for call.started), Ended (gives
	// the agent's call slot back; called once the call is over) — or the refusal, whose
	// SIPStatus() (code, reason), when it has one, answers the phone (else 500). Softphone is
	// not used. Nil: such INVITEs are refused 403.
	PhoneCall func(ctx context.Context, agentID int64, number string) (AgentCall, error)
	// OwnCallBusy, when set, marks the agent busy in the ACD for the whole of their own call —
	// their phone's (PhoneCall) and their page's (CallForAgent) — (*ivr.ACD: BusyOnOwnCall), so
	// that no queue offer rings them meanwhile.
	OwnCallBusy OwnCallBusy

	// MaxCalls bounds concurrent calls; one more gets 503 with Retry-After.
	// DefaultMaxCalls (1000); 0 (or negative) means no limit.
	MaxCalls int
	// RetryAfter is the Retry-After value of 503 responses. 0 takes DefaultRetryAfter (30 s).
	RetryAfter time.Duration

	// SessionExpires is the session interval we ask for on the legs we place and accept from
	// carriers (RFC 4028). DefaultSessionExpires (1800 s); 0 (or negative) turns session
	// timers off: Session-Expires is then neither sent nor honoured.
	SessionExpires time.Duration
	// MinSE is the smallest session interval we accept (smaller gets 422 with Min-SE), also
	// sent as Min-SE on legs we place. 0 takes DefaultMinSE (90 s, RFC 4028 §5).
	MinSE time.Duration

	// RingTimeout bounds how long an outbound leg may ring before we CANCEL it. 0 takes
	// DefaultRingTimeout (60 s).
	RingTimeout time.Duration
	// AckTimeout is how long we retransmit a 2xx waiting for the ACK before hanging up with BYE
	// (RFC 3261 §13.3.1.4: 64*T1). 0 takes 64*T1 (32 s).
	AckTimeout time.Duration
	// AnswerAckTimeout is how long the answer of a new inbound call (Call.Answer) waits for its
	// ACK before the call is hung up (BYE, whose answer is awaited 4*T1) and its max_calls slot
	// given back. 0 takes DefaultAnswerAckTimeout, 5 s (the 2xx then went out 4 times over
	// UDP: at 0, 0.5, 1.5 and 3.5 s with T1 500 ms); never more than AckTimeout. This deviates on purpose from the
	// 64*T1 (32 s) of RFC 3261 §13.3.1.4, and the BYE from the 64*T1 of Timer F (§17.1.2.2):
	// an INVITE with a spoofed UDP source is answered to an address that never ACKs, and at
	// 32 + 32 s a slot a trickle of them holds every max_calls slot; a peer that loses four
	// 2xx in a row is too lossy to carry a call anyway. Re-INVITEs keep AckTimeout.
	AnswerAckTimeout time.Duration
	// T1 is the RFC 3261 round-trip estimate used for 2xx retransmission. 0 takes DefaultT1
	// (500 ms).
	T1 time.Duration

	// RateLimit is the per-source token bucket on requests.
	RateLimit RateLimit
	// TrustedFronts are the networks of SIP proxies in front of the gateway (the Kamailio
	// dispatcher) whose SourceHeader names the real source of what they relay (front.go).
	// From them the real source is used for the trunk ACL, the rate limit, the scanner filter,
	// the registrar's backoff, security events and RTP latching; their TCP and TLS connections
	// are exempt from Conn.PerSource (they carry many clients). Empty (the default) believes
	// no header: every request's source is its packet's.
	TrustedFronts []netip.Prefix
	// ScannerUserAgents are User-Agent substrings (case-insensitive) whose requests are dropped
	// silently. DefaultScannerUserAgents (friendly-scanner, sipcli, sipvicious,
	// VaxSIPUserAgent, pplsip); empty drops nothing.
	ScannerUserAgents []string

	// Conn limits SIP TCP and TLS connections (connlimit.go).
	Conn ConnLimits

	// Ports allocates RTP ports for legs. Default: 127.0.0.1 ports 20000–20999.
	Ports *media.PortAllocator
	// MediaMetrics receives the RTP counters of every endpoint (nil: none).
	MediaMetrics *media.Metrics
	// MediaTimeout and HoldTimeout are passed to every media endpoint
	// (media.EndpointOptions): a timeout on any leg, the carrier's or one we placed, ends that
	// leg with BYE. media.DefaultMediaTimeout (30 s) and media.DefaultHoldTimeout (1 h);
	// 0 turns that timeout off.
	MediaTimeout time.Duration
	HoldTimeout  time.Duration

	// Sink receives call lifecycle events; nil discards them.
	Sink callevent.Sink
	// EmitTimeout bounds one Sink.Emit call so a slow sink never stalls SIP. 0 takes
	// DefaultEmitTimeout (2 s).
	EmitTimeout time.Duration
	// SettleBacklog bounds the ended calls whose events are still being handed to the Sink
	// after their max_calls slot was freed (a slow database must not hold slots: call.ended
	// and call.recording_ready are delivered in the background). Past it, a call keeps its slot
	// until its events are taken, so memory stays bounded however long the sink stalls.
	// 0 takes DefaultSettleBacklog; negative keeps every slot until its events are taken.
	SettleBacklog int
	// Registerer receives the SIP metrics (docs/metrics.md); nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; it must return readings with a monotonic component (time.Now does).
	Now func() time.Time
	// UserAgent is our User-Agent / Server header value. Empty takes DefaultUserAgent.
	UserAgent string
	// Recorder, when set, records calls (stereo WAV, caller left); RecordStart says when.
	// Voicemail messages are the IVR's (ivr.Options.Recorder).
	Recorder    Recorder
	RecordStart RecordStart
	// Journal, when set, keeps the dialog state of each call's answered legs on local disk
	// for the BYE after a crash (internal/calljournal).
	Journal DialogJournal
	// Cluster turns on the internal SIP leg between the gateway nodes of a cluster
	// (internal_leg.go): an offer to an agent attached to another node is sent there as a
	// signed internal INVITE, and other nodes' internal INVITEs reach this node's agents.
	// Zero (no Secret): off.
	Cluster ClusterOptions
	// OnCallEnd, when set, is called after each call's call.ended with its RTP statistics
	// (per-call logging, tests). It runs on the call's goroutine and must not block.
	OnCallEnd func(CallSummary)
}

// ClusterOptions configures the internal SIP leg between the nodes of a cluster.
type ClusterOptions struct {
	// Node is this node's name: an offer naming it (or no node) is this node's own, and an
	// internal INVITE claiming to come from it is refused.
	Node string
	// Secret is the cluster secret every node shares: internal INVITEs carry an HMAC-SHA256
	// of their offer under it. Empty turns the internal leg off. Never logged.
	Secret []byte
	// Networks are the networks the other nodes send internal INVITEs from; one from any
	// other source is refused with 403 whatever it carries. Sources in them are exempt from
	// RateLimit (the nodes' offers and in-dialog requests, authenticated by Secret).
	Networks []netip.Prefix
	// Resolve returns the address ("host:port") where node takes internal INVITEs (its
	// cluster internal address, recorded in the database at its start). Required with Secret.
	Resolve func(ctx context.Context, node string) (string, error)
	// MaxSkew is how far an internal INVITE's timestamp may be from this node's clock, either
	// way; an older one is refused as stale (and a replay within it as replayed). 0 takes
	// DefaultClusterMaxSkew (30 s).
	MaxSkew time.Duration
	// Control, when set, takes the softphone's hold, resume, transfers (blind and consult, to
	// an agent, a queue or an outside number), consult completion and cancellation of a call
	// this node owns whose agent is attached to another node (relayed over the internal
	// leg): the ACD. It also takes the supervisors of other nodes onto this node's calls
	// (their audio leg is an internal INVITE from their node; supervise_cluster.go).
	Control CallControl
}

// OwnCalls registers an agent's own call with call control (*ivr.ACD satisfies it): far is the
// callee's endpoint, bridged to the agent's audio; end is called once the call is over.
type OwnCalls interface {
	OwnCall(callID string, agentID int64, far *media.Endpoint) (end func())
}

// CallControl is what the softphone's buttons and the transfer API drive on the call's node
// (*ivr.ACD satisfies it).
type CallControl interface {
	Hold(ctx context.Context, callID string) error
	Resume(ctx context.Context, callID string) error
	Transfer(ctx context.Context, callID string, to ivr.TransferTo) error
	Consult(ctx context.Context, callID string, to ivr.TransferTo, onEnd func(ivr.ConsultEnd)) error
	CompleteConsult(ctx context.Context, callID string) error
	CancelConsult(ctx context.Context, callID string) error
	// Supervise joins a supervisor's leg from another node (sup: its endpoint on this node)
	// to a call of this node in mode (supervise_cluster.go).
	Supervise(callID string, sup *media.Endpoint, mode ivr.SuperviseMode) (ivr.Supervision, error)
	// Conference adds an answered party's leg to a call of this node, and ConferenceAgent
	// rings an agent to join it (ivr.ACD's), for an agent on another node who asked
	// (relay_conference.go).
	Conference(callID string, leg ivr.ConferenceLeg) error
	ConferenceAgent(callID string, id int64, joined func(error)) error
}

// PhoneHold is the hold and resume of a queue call (*ivr.ACD satisfies it); Options.PhoneHold.
type PhoneHold interface {
	Hold(ctx context.Context, callID string) error
	Resume(ctx context.Context, callID string) error
}

// CallSummary is what OnCallEnd reports about a finished call.
type CallSummary struct {
	CallID  string
	Outcome string
	// Carrier is the carrier leg's final RTP statistics; Outbound those of the legs call
	// control placed, in order.
	Carrier  media.Stats
	Outbound []media.Stats
}

// Trunk is one carrier: where its calls come from, how they authenticate, and how we call out.
// A trunk with Allow is matched by the request's source address: over UDP that address is
// trivially spoofed, so add digest credentials or use TLS. A trunk with credentials and no
// Allow (auth-only) is matched by the digest username of an INVITE from any source; such
// sources stay under the per-source RateLimit, which only Allow sources may skip.
type Trunk struct {
	Name string
	// Region is the ISO 3166 country of the carrier's numbering plan ("US", "FR"): caller IDs
	// and dialled numbers it sends without a country code are read in it (package
	// ticketing/phone). Empty reads only numbers in international form ("+33…", "00 33…"), and
	// dialled numbers also as a line's digits without "+".
	Region string
	// IgnoreAssertedIdentity takes the caller from From even when the INVITE carries
	// P-Asserted-Identity. By default a trunk is trusted (it is matched by its source or its
	// digest credentials) and its asserted identity is the caller (RFC 3325 §9.1); a peer
	// outside the operator's trust domain could assert anyone (RFC 3325 §2.3).
	IgnoreAssertedIdentity bool
	// Allow lists the source prefixes whose requests belong to this trunk (e.g. 127.0.0.0/8).
	Allow []netip.Prefix
	// Username/Password, when set, require digest authentication (RFC 3261 §22, RFC 7616,
	// RFC 8760) on inbound INVITEs: a request without valid credentials gets 401 with a
	// challenge (trunkauth.go: nonces bound to the source, nonce counts that must grow).
	Username string
	Password string
	Realm    string // default "switchboard"
	// DigestAlgorithms are offered in the challenge, one WWW-Authenticate each, in order of
	// preference (RFC 8760 §2.4: the carrier answers the first it supports). Empty:
	// DefaultTrunkDigestAlgorithms.
	DigestAlgorithms []string

	// CallsPerSecond bounds the new calls the trunk may start per second (a token bucket
	// holding one second's worth, at least 1); INVITEs over it get 503 with Retry-After and
	// count as security event rate_limited. 0 means no limit.
	CallsPerSecond float64
	// MaxCalls bounds the trunk's concurrent inbound calls (503 with Retry-After, counted as
	// rate_limited, beyond it); 0 means only the server's MaxCalls applies.
	MaxCalls int

	// OutboundURI is where calls out through this trunk go, e.g. sip:127.0.0.1:5080.
	OutboundURI string
	// CallerID is the default From user of outbound calls (E.164).
	CallerID string
	// OutboundUsername/OutboundPassword answer the carrier's 401/407 challenges.
	OutboundUsername string
	OutboundPassword string
}

// Line is one DID and the target its calls go to.
type Line struct {
	// Number is the line's E.164 number. A call matches it when its Request-URI (else To) user
	// normalises to it in the trunk's Region, or is its digits without "+" (phone.Dialled).
	Number string
	// Target runs the call. BridgeTarget is the one built in; IVR, queue and voicemail targets
	// implement the same interface.
	Target Target
	// Trunk names the trunk the line's own outbound calls go through (a queue callback of a
	// caller who called the line); empty, or a trunk that takes no outbound calls: the first
	// trunk that does.
	Trunk string
}

// RateLimit is a per-source-address token bucket on incoming requests. Requests over the limit are
// dropped silently (a 503 would only help an attacker) and counted.
type RateLimit struct {
	// PerSecond is the sustained rate per source IP. DefaultRequestsPerSecond (20); 0 (or
	// negative) turns the limit off.
	PerSecond float64
	// Burst is the bucket size. 0 takes DefaultBurst (40).
	Burst int
	// LimitTrunks applies the limit to trunk sources too; by default trunks are exempt.
	LimitTrunks bool
	// Exempt lists more source networks never limited (e.g. a monitoring probe).
	Exempt []netip.Prefix
}

// Defaults of Options, defined once: New applies the ones that cannot be off, DefaultOptions
// holds them all, and the configuration's defaults are these.
const (
	DefaultMaxCalls          = 1000
	DefaultRetryAfter        = 30 * time.Second
	DefaultSessionExpires    = 1800 * time.Second
	DefaultMinSE             = 90 * time.Second
	DefaultRingTimeout       = 60 * time.Second
	DefaultT1                = 500 * time.Millisecond
	DefaultAnswerAckTimeout  = 5 * time.Second
	DefaultEmitTimeout       = 2 * time.Second
	DefaultSettleBacklog     = 10000
	DefaultRequestsPerSecond = 20
	DefaultBurst             = 40
	DefaultUserAgent         = "Switchboard"
	DefaultClusterMaxSkew    = 30 * time.Second
)

// DefaultOptions returns the Options with every default filled in, the limits and timers
// that zero turns off included; what it leaves zero has no default (addresses, trunks, lines,
// hooks, and AckTimeout, which New derives from T1). A caller that wants the defaults starts
// from it.
func DefaultOptions() Options {
	return Options{
		MaxCalls:          DefaultMaxCalls,
		RetryAfter:        DefaultRetryAfter,
		SessionExpires:    DefaultSessionExpires,
		MinSE:             DefaultMinSE,
		RingTimeout:       DefaultRingTimeout,
		AnswerAckTimeout:  DefaultAnswerAckTimeout,
		T1:                DefaultT1,
		RateLimit:         RateLimit{PerSecond: DefaultRequestsPerSecond, Burst: DefaultBurst},
		ScannerUserAgents: DefaultScannerUserAgents(),
		Conn:              DefaultConnLimits(),
		Registrar:         DefaultRegistrarOptions(),
		MediaTimeout:      media.DefaultMediaTimeout,
		HoldTimeout:       media.DefaultHoldTimeout,
		EmitTimeout:       DefaultEmitTimeout,
		SettleBacklog:     DefaultSettleBacklog,
		UserAgent:         DefaultUserAgent,
		FeatureCodes:      DefaultFeatureCodes(),
	}
}

// DefaultScannerUserAgents are the User-Agent substrings of well-known SIP scanners.
func DefaultScannerUserAgents() []string {
	return []string{"friendly-scanner", "sipcli", "sipvicious", "VaxSIPUserAgent", "pplsip"}
}
