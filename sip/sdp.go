package sip

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Payload types and names of the codecs the gateway speaks (RFC 3551 §6 static types). The
// media path never transcodes: both legs of a bridge must agree on one of these.
const (
	PayloadPCMU = 0
	PayloadPCMA = 8
	// DefaultEventPayload is the telephone-event (RFC 4733) payload type we put in our own
	// offers; in answers we mirror the peer's.
	DefaultEventPayload = 101
)

// Direction is an SDP media direction attribute (RFC 3264 §5.1, §6.1).
type Direction int

// The four media directions. The zero value is SendRecv, the default when no attribute is given.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

// String returns the SDP attribute name of d.
func (d Direction) String() string {
	switch d {
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	default:
		return "sendrecv"
	}
}

// Reverse returns the direction an answerer uses to mirror an offer's direction
// (RFC 3264 §6.1: sendonly → recvonly, recvonly → sendonly, inactive → inactive).
func (d Direction) Reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	default:
		return d
	}
}

// Sentinel errors of SDP negotiation; call control maps them to SIP statuses at the edge.
var (
	// ErrSDPMalformed: the body is not a parseable SDP (answered 400, or 488 when in an INVITE).
	ErrSDPMalformed = errors.New("sdp: malformed session description")
	// ErrNoCommonCodec: no audio stream offers PCMU or PCMA (answered 488 Not Acceptable Here).
	ErrNoCommonCodec = errors.New("sdp: no common codec")
)

// Codec is one RTP payload format of an audio stream.
type Codec struct {
	PT   uint8
	Name string // upper-case encoding name, e.g. PCMU
	Rate int
}

// Media is what a negotiation settles for one leg: where to send RTP, which codec to send,
// the telephone-event payload type, and the direction seen from our side.
type Media struct {
	// Remote is the peer's RTP address. It is invalid when the peer gave c=0.0.0.0 (RFC 2543 hold)
	// or no usable address.
	Remote netip.AddrPort
	// Codec is the one audio codec both sides use (the first of the offerer's list we support).
	Codec Codec
	// EventPT is the RFC 4733 telephone-event payload type, or -1 when the peer has none.
	EventPT int
	// Direction is our direction (what we may do): in an answer, the mirror of the offer.
	Direction Direction
	// Hold is true when the peer put the call on hold: it offered sendonly or inactive, or
	// a zero connection address (RFC 3264 §8.4, RFC 2543 c=0.0.0.0).
	Hold bool
}

// Local describes our side of a session description: the external address written into o= and
// c= (never a wildcard), the even RTP port of the leg's endpoint, and the session id and version
// for o= (RFC 4566 §5.2; the version must grow with every new description of the session).
type Local struct {
	Addr      netip.Addr
	Port      int
	SessionID uint64
	Version   uint64
	Direction Direction
}

// remoteStream is one parsed m= line of a peer's description.
type remoteStream struct {
	media   string
	port    int
	proto   string
	formats []string
	codecs  []Codec // in the peer's order, only those whose PT is in formats
	eventPT int
	dir     Direction
	conn    string
}

type remoteDesc struct {
	streams []remoteStream
}

// normalizeSDP accepts bodies whose last line has no final CRLF or uses bare LF line ends
// (seen from real peers), which pion's strict lexer rejects.
func normalizeSDP(body []byte) []byte {
	b := bytes.TrimRight(body, "\r\n\x00 \t")
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	return append(b, '\r', '\n')
}

// parseRemote parses a peer's SDP (offer or answer) into its streams.
func parseRemote(body []byte) (*remoteDesc, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrSDPMalformed)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(normalizeSDP(body)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSDPMalformed, err)
	}
	sessConn := ""
	if sd.ConnectionInformation != nil && sd.ConnectionInformation.Address != nil {
		sessConn = sd.ConnectionInformation.Address.Address
	}
	sessDir := SendRecv
	for _, a := range sd.Attributes {
		if d, ok := parseDirection(a.Key); ok {
			sessDir = d
		}
	}
	rd := &remoteDesc{}
	for _, m := range sd.MediaDescriptions {
		st := remoteStream{
			media:   m.MediaName.Media,
			port:    m.MediaName.Port.Value,
			proto:   strings.Join(m.MediaName.Protos, "/"),
			formats: m.MediaName.Formats,
			eventPT: -1,
			dir:     sessDir,
			conn:    sessConn,
		}
		if m.ConnectionInformation != nil && m.ConnectionInformation.Address != nil {
			st.conn = m.ConnectionInformation.Address.Address
		}
		rtpmap := map[int]Codec{}
		for _, a := range m.Attributes {
			if d, ok := parseDirection(a.Key); ok {
				st.dir = d
				continue
			}
			if a.Key != "rtpmap" {
				continue
			}
			c, ok := parseRtpmap(a.Value)
			if ok {
				rtpmap[int(c.PT)] = c
			}
		}
		for _, f := range m.MediaName.Formats {
			pt, err := strconv.Atoi(f)
			if err != nil || pt < 0 || pt > 127 {
				continue
			}
			c, ok := rtpmap[pt]
			if !ok {
				// RFC 3551 static types need no rtpmap.
				switch pt {
				case PayloadPCMU:
					c = Codec{PT: PayloadPCMU, Name: "PCMU", Rate: 8000}
				case PayloadPCMA:
					c = Codec{PT: PayloadPCMA, Name: "PCMA", Rate: 8000}
				default:
					continue
				}
			}
			if c.Name == "TELEPHONE-EVENT" {
				if c.Rate == 8000 && st.eventPT < 0 {
					st.eventPT = int(c.PT)
				}
				continue
			}
			st.codecs = append(st.codecs, c)
		}
		rd.streams = append(rd.streams, st)
	}
	return rd, nil
}

func parseDirection(key string) (Direction, bool) {
	switch key {
	case "sendrecv":
		return SendRecv, true
	case "sendonly":
		return SendOnly, true
	case "recvonly":
		return RecvOnly, true
	case "inactive":
		return Inactive, true
	}
	return SendRecv, false
}

// parseRtpmap parses "PT NAME/RATE[/CHANNELS]" (RFC 4566 §6).
func parseRtpmap(v string) (Codec, bool) {
	ptStr, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return Codec{}, false
	}
	pt, err := strconv.Atoi(ptStr)
	if err != nil || pt < 0 || pt > 127 {
		return Codec{}, false
	}
	parts := strings.Split(strings.TrimSpace(rest), "/")
	if len(parts) < 2 {
		return Codec{}, false
	}
	rate, err := strconv.Atoi(parts[1])
	if err != nil {
		return Codec{}, false
	}
	return Codec{PT: uint8(pt), Name: strings.ToUpper(parts[0]), Rate: rate}, true
}

// supported reports whether we can carry c without transcoding (G.711 at 8 kHz).
func supported(c Codec) bool {
	return c.Rate == 8000 && (c.Name == "PCMU" || c.Name == "PCMA")
}

func isRTPAudio(st remoteStream) bool {
	return st.media == "audio" && (st.proto == "RTP/AVP" || st.proto == "RTP/AVPF") && st.port > 0
}

func remoteAddr(conn string, port int) (netip.AddrPort, bool) {
	a, err := netip.ParseAddr(conn)
	if err != nil || a.IsUnspecified() || port <= 0 || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// Negotiate answers a peer's offer (RFC 3264 §6): the first audio RTP stream with a G.711 codec
// is accepted with the first supported codec in the offerer's order, the telephone-event
// payload type is mirrored, the direction is reversed (sendonly → recvonly, inactive →
// inactive), and every other m= line is rejected with port 0 so the answer has as many m= lines
// as the offer. A stream on hold (sendonly, inactive or c=0.0.0.0) is still accepted.
// It returns the answer body and the settled Media, or ErrSDPMalformed / ErrNoCommonCodec.
// local.Direction is ignored: the answer's direction is derived from the offer.
func Negotiate(offer []byte, local Local) ([]byte, Media, error) {
	rd, err := parseRemote(offer)
	if err != nil {
		return nil, Media{}, err
	}
	return negotiate(rd, local, true)
}

// negotiate is Negotiate of an offer parsed already; with answer false it settles the Media
// and writes no answer (a check that the offer is answerable, or which codec it prefers).
func negotiate(rd *remoteDesc, local Local, answer bool) ([]byte, Media, error) {
	chosen := -1
	var m Media
	for i, st := range rd.streams {
		if !isRTPAudio(st) {
			continue
		}
		for _, c := range st.codecs {
			if supported(c) {
				m.Codec = Codec{PT: c.PT, Name: c.Name, Rate: 8000}
				chosen = i
				break
			}
		}
		if chosen >= 0 {
			break
		}
	}
	if chosen < 0 {
		return nil, Media{}, ErrNoCommonCodec
	}
	st := rd.streams[chosen]
	m.EventPT = st.eventPT
	addr, ok := remoteAddr(st.conn, st.port)
	if ok {
		m.Remote = addr
	}
	m.Hold = st.dir == SendOnly || st.dir == Inactive || !ok
	m.Direction = st.dir.Reverse()
	if !ok && m.Direction == SendRecv {
		// RFC 2543 hold (c=0.0.0.0 with sendrecv): the peer cannot receive, so we only receive.
		m.Direction = RecvOnly
	}
	if !answer {
		return nil, m, nil
	}

	b := make([]byte, 0, 256)
	b = appendSessionHeader(b, local)
	for i, rs := range rd.streams {
		if i != chosen {
			// RFC 3264 §6: a rejected stream keeps its m= line with port 0.
			f := "0"
			if len(rs.formats) > 0 {
				f = strings.Join(rs.formats, " ")
			}
			b = append(append(append(append(append(append(append(b, "m="...), rs.media...), " 0 "...), rs.proto...), ' '), f...), "\r\n"...)
			continue
		}
		b = appendAudio(b, local.Port, st.proto, []Codec{m.Codec}, m.EventPT, m.Direction)
	}
	return b, m, nil
}

// Offer builds our own offer (RFC 3264 §5): PCMU, PCMA (or the given codecs, in that order) and
// telephone-event/8000, with local.Direction.
func Offer(local Local, codecs []Codec, eventPT int) []byte {
	if len(codecs) == 0 {
		codecs = []Codec{{PT: PayloadPCMU, Name: "PCMU", Rate: 8000}, {PT: PayloadPCMA, Name: "PCMA", Rate: 8000}}
	}
	b := appendSessionHeader(make([]byte, 0, 256), local)
	return appendAudio(b, local.Port, "RTP/AVP", codecs, eventPT, local.Direction)
}

// ParseAnswer reads a peer's answer to an offer of ours (RFC 3264 §7): the first audio stream's
// first supported codec, its telephone-event payload type and direction.
func ParseAnswer(answer []byte) (Media, error) {
	rd, err := parseRemote(answer)
	if err != nil {
		return Media{}, err
	}
	for _, st := range rd.streams {
		if !isRTPAudio(st) {
			continue
		}
		for _, c := range st.codecs {
			if !supported(c) {
				continue
			}
			m := Media{Codec: Codec{PT: c.PT, Name: c.Name, Rate: 8000}, EventPT: st.eventPT, Direction: st.dir.Reverse()}
			addr, ok := remoteAddr(st.conn, st.port)
			m.Remote = addr
			m.Hold = st.dir == SendOnly || st.dir == Inactive || !ok
			return m, nil
		}
	}
	return Media{}, ErrNoCommonCodec
}

// appendSessionHeader appends our session-level lines (v=, o=, s=, c=, t=) to b; built with
// strconv rather than fmt: every call answers and offers with it.
func appendSessionHeader(b []byte, l Local) []byte {
	ipv := "IP4"
	if l.Addr.Is6() && !l.Addr.Is4In6() {
		ipv = "IP6"
	}
	b = append(b, "v=0\r\no=switchboard "...)
	b = strconv.AppendUint(b, l.SessionID, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, l.Version, 10)
	b = append(append(append(b, " IN "...), ipv...), ' ')
	b = appendAddr(b, l.Addr.Unmap())
	b = append(append(append(b, "\r\ns=switchboard\r\nc=IN "...), ipv...), ' ')
	b = appendAddr(b, l.Addr.Unmap())
	return append(b, "\r\nt=0 0\r\n"...)
}

// appendAddr appends a's String form (AppendTo writes nothing for the zero Addr).
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, a.String()...)
	}
	return a.AppendTo(b)
}

// appendAudio appends an audio m= line and its attributes to b.
func appendAudio(b []byte, port int, proto string, codecs []Codec, eventPT int, dir Direction) []byte {
	b = append(b, "m=audio "...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(append(b, ' '), proto...)
	for _, c := range codecs {
		b = strconv.AppendUint(append(b, ' '), uint64(c.PT), 10)
	}
	if eventPT >= 0 {
		b = strconv.AppendInt(append(b, ' '), int64(eventPT), 10)
	}
	b = append(b, "\r\n"...)
	for _, c := range codecs {
		b = strconv.AppendUint(append(b, "a=rtpmap:"...), uint64(c.PT), 10)
		b = append(append(append(b, ' '), c.Name...), '/')
		b = append(strconv.AppendInt(b, int64(c.Rate), 10), "\r\n"...)
	}
	if eventPT >= 0 {
		b = strconv.AppendInt(append(b, "a=rtpmap:"...), int64(eventPT), 10)
		b = strconv.AppendInt(append(b, " telephone-event/8000\r\na=fmtp:"...), int64(eventPT), 10)
		b = append(b, " 0-16\r\n"...)
	}
	b = append(b, "a=ptime:20\r\n"...)
	return append(append(append(b, "a="...), dir.String()...), "\r\n"...)
}
