package media

import (
	"errors"
	"net/netip"
	"time"
)

// This file holds the package's vocabulary: sentinel errors, option structs and the small value
// types that cross the API. The active types live next to their code:
//
//	PortAllocator (ports.go)    NewPortAllocator, NewPortAllocatorWithOptions, Allocate, Release,
//	                            InUse, Addr; PortPair, PortAllocatorOptions
//	strict source (source.go)   the latching rules; DefaultProbation, DefaultProbationWindow,
//	                            DefaultLearningWindow
//	Endpoint      (endpoint.go) NewEndpoint, LocalAddr, SSRC, SetRemote, Remote, SetCodec,
//	                            SetDTMFPayloadType, SetDirection, AddTap, DTMF, MediaTimeout,
//	                            OnMediaTimeout (rtcp.go),
//	                            Stats, Close
//	              (play.go)     Play, SendDTMF
//	Bridge        (bridge.go)   Bridge(a, b) joins two endpoints; the returned func undoes it
//	Mixer         (mixer.go)    NewMixer, Add, MixMember.Set/Remove, Close: N-1 mixing of
//	                            several endpoints (conference, supervisors), one goroutine
//	Metrics       (metrics.go)  NewMetrics(prometheus.Registerer)
//	G.711         (g711.go)     EncodeULaw, DecodeULaw, EncodeALaw, DecodeALaw, ULawToALaw,
//	                            ALawToULaw, Codec.Encode/Decode/Silence/PayloadType/String
//	RFC 4733      (dtmf.go)     TelephoneEvent, ParseTelephoneEvent, DigitOf, EventOf, DTMFDetector

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrNoPorts means every RTP port pair of the allocator's range is in use (or could not be
	// bound). SIP answers 503 with Retry-After.
	ErrNoPorts = errors.New("media: no free RTP port pair")
	// ErrClosed is returned by operations on a closed Endpoint.
	ErrClosed = errors.New("media: endpoint closed")
	// ErrMediaTimeout is the cause sent on Endpoint.MediaTimeout when no RTP arrived for the
	// configured time. The value sent wraps it with the detail (on hold or not, how long).
	ErrMediaTimeout = errors.New("media: RTP timeout")
	// ErrBridged is returned by Bridge when an endpoint is already bridged or both are the same.
	ErrBridged = errors.New("media: endpoint already bridged")
	// ErrMalformed is returned by the parsers for packets that are too short or inconsistent.
	ErrMalformed = errors.New("media: malformed packet")
)

// Codec is a G.711 audio codec, the only audio this gateway carries. The only conversion on the
// media path is μ-law ↔ A-law (byte to byte) when two bridged legs negotiated different laws.
type Codec uint8

const (
	// CodecNone means no codec was set yet: the endpoint accepts any payload type and sends none.
	CodecNone Codec = iota
	// PCMU is G.711 μ-law, static payload type 0 (RFC 3551 §6).
	PCMU
	// PCMA is G.711 A-law, static payload type 8 (RFC 3551 §6).
	PCMA
)

// Direction is this endpoint's media direction as written in our SDP (RFC 3264 §5.1, §6.1).
// Audio is sent only for SendRecv and SendOnly; any direction but SendRecv counts as "on hold"
// for the media timeout (EndpointOptions.HoldTimeout applies).
type Direction uint8

const (
	SendRecv Direction = iota // a=sendrecv (default)
	SendOnly                  // a=sendonly: we send, the peer does not
	RecvOnly                  // a=recvonly: the peer holds us (answer to its sendonly)
	Inactive                  // a=inactive
)

// EndpointOptions configures NewEndpoint.
//
// Zero turns a timer off (MediaTimeout, HoldTimeout, RTCPInterval, LearningWindow; a negative
// value too); the Default* constants are the values to ask for when in doubt, and the ones
// sip's legs use. A knob that cannot be off (Probation, ProbationWindow, DTMFBuffer) takes its
// default at zero.
type EndpointOptions struct {
	// Allocator gives the endpoint its even RTP port and RTP+1 RTCP port. Required.
	Allocator *PortAllocator
	// MediaTimeout: no RTP received for this long → a value on MediaTimeout().
	// DefaultMediaTimeout (30 s); 0 turns it off. The clock starts at NewEndpoint and
	// restarts on SetRemote/SetDirection.
	MediaTimeout time.Duration
	// HoldTimeout replaces MediaTimeout while on hold (direction not SendRecv, or remote address
	// 0.0.0.0): held peers often send nothing. DefaultHoldTimeout (1 h); 0 turns it off.
	HoldTimeout time.Duration
	// RTCPInterval is the mean time between our RTCP reports (RFC 3550 §6.2), each interval
	// randomised to [0.5, 1.5]× (§6.3.1). DefaultRTCPInterval (5 s); 0 turns sending off
	// (reports from the peer are still read).
	RTCPInterval time.Duration
	// SSRC of the outgoing stream; zero picks a random one (RFC 3550 §8.1).
	SSRC uint32
	// Metrics receives the packet counters; nil records nothing.
	Metrics *Metrics
	// DTMFBuffer is the capacity of the DTMF() channel; events beyond it are dropped. Default 16.
	DTMFBuffer int

	// Who may send to the endpoint (strict source; see Endpoint). RTP and RTCP latch at once on
	// a source whose IP is the SDP c= address (SetRemote) or SignalSource; anything else must
	// pass Probation and then wait out LearningWindow, and loses to a matching source.

	// SignalSource is the IP the peer's signalling came from (the INVITE's source for a call we
	// answered, the next hop for one we placed): a NAT'd phone's RTP comes from there, not from
	// the private address in its c=. Zero: only c= matches.
	SignalSource netip.Addr
	// Peer, when set, is the only source accepted, known exactly (an internal relay such as the
	// WebRTC leg's): RTP from Peer, RTCP from Peer's port + 1; nothing is learnt.
	Peer netip.AddrPort
	// Probation is how many packets with consecutive sequence numbers (same source, same SSRC)
	// a source matching neither c= nor SignalSource must send, the last within ProbationWindow
	// of the first, before it may latch. Default (zero or negative) 4, Asterisk's strictrtp
	// probation.
	Probation int
	// ProbationWindow bounds the Probation packets in time. Default (zero or negative) 1 s.
	ProbationWindow time.Duration
	// LearningWindow starts when SetRemote first names a real address and again when a
	// re-INVITE moves it. During it a matching source takes the latch from a lesser one (the
	// c= address and port beat the c= address, which beats SignalSource); a source matching
	// neither latches only once the first window has closed with nobody else latched
	// (rtpengine's learning period). DefaultLearningWindow (3 s); 0: no window (a proven
	// stranger latches at once and nothing takes a latch over unless a re-INVITE moves c= away
	// from it).
	LearningWindow time.Duration
}

// Flow tells a tap which way a packet went.
type Flow uint8

const (
	Received Flow = iota // from the peer to us
	Sent                 // from us to the peer (after rewriting: the continuous outgoing stream)
)

// TapPacket is what a Tap sees of one RTP packet. Payload aliases a buffer that is reused as
// soon as the tap returns: copy what you keep.
type TapPacket struct {
	Flow        Flow
	PayloadType uint8
	Marker      bool
	Sequence    uint16
	Timestamp   uint32
	SSRC        uint32
	Payload     []byte
	At          time.Time // arrival or send time (monotonic reading included)
}

// Tap is called synchronously on the packet path for every RTP packet an endpoint accepts from
// its peer (Received, on the reader goroutine) and every one it sends (Sent, on whichever
// goroutine feeds the stream: the bridged leg's reader, Play, SendDTMF), so the two flows may be
// tapped concurrently. Telephone-event packets are tapped too: check PayloadType. It must not
// block, must not keep Payload, and must not call Close.
type Tap func(p TapPacket)

// DTMFEvent is one key press detected from RFC 4733 telephone-events, reported once when its
// first packet arrives (deduplicated by RTP timestamp, never by the marker bit).
type DTMFEvent struct {
	Digit     rune   // '0'-'9', '*', '#', 'A'-'D'
	Event     uint8  // RFC 4733 §3.2 event code (0-15)
	Timestamp uint32 // RTP timestamp of the event (its identity)
	At        time.Time
}

// Stats is a snapshot of an endpoint's counters (RFC 3550 §6.4, Appendix A.3 and A.8).
type Stats struct {
	PacketsReceived uint64        // valid RTP from the peer's source (any payload type; feeds loss stats)
	PacketsSent     uint64        // RTP sent to the peer
	BytesReceived   uint64        // payload octets received
	BytesSent       uint64        // payload octets sent
	PacketsLost     int64         // expected − received (A.3); negative with duplicates
	Rejected        uint64        // dropped: foreign source, source on probation, malformed, or a payload type not negotiated
	Jitter          time.Duration // interarrival jitter estimate (A.8)
	RemoteLost      int64         // cumulative loss the peer reported for our stream (RR/SR)
	RemoteJitter    time.Duration // jitter the peer reported for our stream
	Latched         bool          // a source was latched (its packets are accepted, ours go to it)
}
