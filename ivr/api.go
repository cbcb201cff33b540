package ivr

import (
	"context"
	"errors"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// This file holds the package's vocabulary: sentinel errors, targets, events, and the
// interfaces the rest of the gateway implements for ivr (the caller's leg, agents' phones,
// the voicemail recorder, the event sink, the HTTP authorizer). The active types live next to
// their code:
//
//	Engine  (engine.go)    New, NewCall; Call.Run, InjectINFO, InjectDigit, Language, MenuPath
//	Prompts (prompts.go)   NewPrompts, Get, Set, Names; Prompt (wav.go): ParseWAV, LoadWAV
//	ACD     (acd.go)       NewACD, SetState, Agents, Queues, Hold, Resume, Transfer, Register
//	Pickup  (pickup.go)    ACD.Pickup, ACD.RingingCall
//	INFO    (info.go)      ParseINFO for application/dtmf-relay and application/dtmf
//	Hours   (hours.go)     Open

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrUnknownAgent is returned for an agent id not in the roster.
	ErrUnknownAgent = errors.New("ivr: unknown agent")
	// ErrUnknownQueue is returned for a queue name not configured.
	ErrUnknownQueue = errors.New("ivr: unknown queue")
	// ErrUnknownMenu is returned for a menu name not configured.
	ErrUnknownMenu = errors.New("ivr: unknown menu")
	// ErrBadState is returned by ACD.SetState for a state an agent cannot choose.
	ErrBadState = errors.New("ivr: state not allowed")
	// ErrNoCall is returned by Hold, Resume and Transfer when the call is not connected to an
	// agent (any more).
	ErrNoCall = errors.New("ivr: no connected call")
	// ErrAgentUnavailable is returned by Transfer when the target agent is not available.
	ErrAgentUnavailable = errors.New("ivr: agent not available")
	// ErrNoAnswer is what an AgentDialer returns (wrapped or not) when the agent did not answer;
	// any error from Offer counts as a missed offer.
	ErrNoAnswer = errors.New("ivr: agent did not answer")
	// ErrNotDTMF is returned by ParseINFO for an INFO body that carries no DTMF key.
	ErrNotDTMF = errors.New("ivr: INFO body carries no DTMF")
	// ErrBadWAV is returned by ParseWAV for files it cannot play.
	ErrBadWAV = errors.New("ivr: unsupported or malformed WAV")
)

// TargetKind says where a Target sends a call.
type TargetKind int

// Kinds of Target (the configuration decodes its target strings into Target: config.Target).
const (
	TargetNone      TargetKind = iota // not set
	TargetMenu                        // "ivr:NAME" or "menu:NAME"
	TargetQueue                       // "queue:NAME"
	TargetVoicemail                   // "voicemail"
	TargetSIP                         // "sip:…" / "sips:…": handed back to sip as a transfer
	TargetHangup                      // "hangup"
)

// Target is where a call goes next: a line's destination, a menu option, a queue's overflow,
// a closed line's destination. Comparable with ==.
type Target struct {
	Kind TargetKind
	Name string // menu or queue name
	URI  string // SIP URI for TargetSIP
}

// MenuTarget sends the call to the menu name.
func MenuTarget(name string) Target { return Target{Kind: TargetMenu, Name: name} }

// QueueTarget sends the call to the queue name.
func QueueTarget(name string) Target { return Target{Kind: TargetQueue, Name: name} }

// VoicemailTarget sends the call to voicemail.
func VoicemailTarget() Target { return Target{Kind: TargetVoicemail} }

// SIPTarget hands the call back to sip to be bridged to uri.
func SIPTarget(uri string) Target { return Target{Kind: TargetSIP, URI: uri} }

// HangupTarget says goodbye and ends the call.
func HangupTarget() Target { return Target{Kind: TargetHangup} }

// String returns the target in the configuration's syntax.
func (t Target) String() string {
	switch t.Kind {
	case TargetMenu:
		return "ivr:" + t.Name
	case TargetQueue:
		return "queue:" + t.Name
	case TargetVoicemail:
		return "voicemail"
	case TargetSIP:
		return t.URI
	case TargetHangup:
		return "hangup"
	}
	return ""
}

// Leg is the caller's side of a call as ivr sees it. sip implements it over its carrier leg
// (already answered: ivr plays audio at once); tests use a real media endpoint.
type Leg interface {
	// CallID is the call's id everywhere (events, tickets).
	CallID() string
	// Endpoint is the leg's RTP endpoint: prompts and music are played on it, RFC 4733 digits
	// are read from its DTMF channel, and it is bridged to the answering agent.
	Endpoint() *media.Endpoint
	// Done is closed when the caller hung up (or the call ended for any reason).
	Done() <-chan struct{}
}

// CodecReporter is optionally implemented by a Leg to say which G.711 law it negotiated, so
// that prompts are sent without conversion. Without it prompts go out as μ-law and media
// converts them for an A-law leg.
type CodecReporter interface {
	Codec() media.Codec
}

// CallInfo is what ivr knows about the caller, for offers to agents and the voicemail.
type CallInfo struct {
	From       string // caller's number
	CallerName string
	Line       string // the line (DID) called
	// Events, when set, receives this call's events instead of Options.Events: the call's
	// owner (sip's Call) puts them on the call's own sequence.
	Events Events
}

// Events receives ivr's call lifecycle events, in order per call, on the call's goroutine,
// never with a lock of ivr held. Emit must not block: queue the event and return. ivr sets the
// type, the call id, the time (its clock) and the type's fields; the receiver (the call's
// owner in sip) gives the event its id and its place in the call's sequence.
type Events interface {
	Emit(e callevent.Event)
}

// EventsFunc adapts a function to Events.
type EventsFunc func(callevent.Event)

// Emit calls f.
func (f EventsFunc) Emit(e callevent.Event) { f(e) }

type noEvents struct{}

func (noEvents) Emit(callevent.Event) {}

// Offer is a call offered to an agent: what the agent's phone or softphone shows.
type Offer struct {
	CallID     string
	AgentID    int64
	Queue      string
	From       string
	CallerName string
	Line       string
	Language   string
	MenuPath   string
	// Node is the gateway node the agent is attached to (their softphone page's connection or
	// their SIP phone's registration); empty means this node. An offer to another node goes
	// through the cluster's internal SIP leg (issue 19).
	Node string
	// Callback: the offer is a queue callback (the caller asked to be called back and is no
	// longer on the line); once the agent accepts, the caller is dialled (callback.go).
	Callback bool
}

// AgentDialer reaches agents. The integrator implements it over both ways an agent can take
// calls: the browser softphone (web) and a SIP phone registered with the gateway (sip).
//
// Offer rings the agent and returns once the agent answered (an AgentLeg, ready to bridge) or
// did not: ctx is cancelled by the ACD at the ring timeout, when the caller hangs up, or on
// overflow; Offer must then stop ringing (CANCEL the INVITE, withdraw the softphone offer) and
// return ctx's error. Any error counts as a missed offer. Offer must return promptly when the
// agent cannot be reached at all (no registration, no softphone): return an error at once.
type AgentDialer interface {
	Offer(ctx context.Context, o Offer) (AgentLeg, error)
}

// AgentDialerFunc adapts a function to AgentDialer.
type AgentDialerFunc func(ctx context.Context, o Offer) (AgentLeg, error)

// Offer calls f.
func (f AgentDialerFunc) Offer(ctx context.Context, o Offer) (AgentLeg, error) { return f(ctx, o) }

// AgentLeg is an agent's answered side of a call.
type AgentLeg interface {
	// Bridge joins the caller's endpoint to the agent's audio (media.Bridge for a SIP phone;
	// the WebRTC leg for the softphone). stop undoes it and must be idempotent.
	Bridge(caller *media.Endpoint) (stop func(), err error)
	// Done is closed when the agent hung up.
	Done() <-chan struct{}
	// Hangup ends the agent's side (BYE, or the softphone's hang-up). Idempotent.
	Hangup(ctx context.Context) error
}

// ChanneledLeg is an AgentLeg that says what kind of endpoint the agent answered on:
// callevent.ChannelWebRTC for the browser softphone, callevent.ChannelSIP for a SIP phone. The
// ACD puts it on call.answered (the ticket's session_type, CF-1); a leg without it answers
// with no channel.
type ChanneledLeg interface {
	Channel() string
}

// legChannel returns leg's channel, or "" when it does not say.
func legChannel(leg AgentLeg) string {
	if c, ok := leg.(ChanneledLeg); ok {
		return c.Channel()
	}
	return ""
}

// VoicemailMeta describes a voicemail message for the recorder.
type VoicemailMeta struct {
	CallID   string
	From     string
	Line     string
	Language string
}

// VoicemailRecorder records a caller's message. The integrator wires it to the recordings
// package; until then any implementation that writes a mono WAV will do.
type VoicemailRecorder interface {
	// StartVoicemail starts recording the audio received on ep (the caller's) and returns the
	// running recording. It runs on the call's IVR goroutine while the caller waits after the
	// beep: it must not wait on a database (ivr bounds it with a context deadline anyway).
	StartVoicemail(ctx context.Context, m VoicemailMeta, ep *media.Endpoint) (VoicemailRecording, error)
}

// VoicemailRecording is a message being recorded.
type VoicemailRecording interface {
	// Finish stops recording. keep false discards the message (shorter than the minimum, or
	// the caller hung up before it counted). It returns the recording id of a kept message.
	// Like StartVoicemail it runs on the IVR goroutine and must not wait on a database.
	Finish(ctx context.Context, keep bool) (recordingID string, err error)
}

// MediaAgentLeg is an AgentLeg over a plain media endpoint: an agent's SIP phone whose
// outbound leg sip placed (Endpoint = the leg's endpoint, Ended = its Done, HangupFunc = BYE).
type MediaAgentLeg struct {
	Endpoint   *media.Endpoint
	Ended      <-chan struct{}
	HangupFunc func(ctx context.Context) error
}

// Channel reports a SIP phone (CF-1).
func (l *MediaAgentLeg) Channel() string { return callevent.ChannelSIP }

// Bridge joins the caller's endpoint and the agent's with media.Bridge.
func (l *MediaAgentLeg) Bridge(caller *media.Endpoint) (func(), error) {
	return media.Bridge(caller, l.Endpoint)
}

// Done is Ended.
func (l *MediaAgentLeg) Done() <-chan struct{} { return l.Ended }

// Hangup calls HangupFunc (nil: nothing to do).
func (l *MediaAgentLeg) Hangup(ctx context.Context) error {
	if l.HangupFunc == nil {
		return nil
	}
	return l.HangupFunc(ctx)
}
