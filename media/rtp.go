package media

import (
	"encoding/binary"
	"fmt"
)

// rtpHeader is the part of an RTP fixed header (RFC 3550 §5.1) the media path uses. Parsing
// into this value type, instead of pion's rtp.Packet, keeps the receive path allocation-free.
type rtpHeader struct {
	marker      bool
	payloadType uint8
	seq         uint16
	timestamp   uint32
	ssrc        uint32
}

const rtpHeaderSize = 12

// parseRTP validates b as an RTP packet (RFC 3550 §5.1, §A.1 checks) and returns its header and
// payload (aliasing b). CSRCs and header extensions (§5.3.1) are skipped, padding removed.
// RTCP sent to the RTP port (packet types 200-204, RFC 5761 §4) is rejected.
func parseRTP(b []byte) (rtpHeader, []byte, error) {
	if len(b) < rtpHeaderSize {
		return rtpHeader{}, nil, fmt.Errorf("media: parse RTP: %d bytes: %w", len(b), ErrMalformed)
	}
	if b[0]>>6 != 2 {
		return rtpHeader{}, nil, fmt.Errorf("media: parse RTP: version %d: %w", b[0]>>6, ErrMalformed)
	}
	if b[1] >= 200 && b[1] <= 204 {
		return rtpHeader{}, nil, fmt.Errorf("media: parse RTP: RTCP packet type %d: %w", b[1], ErrMalformed)
	}
	off := rtpHeaderSize + 4*int(b[0]&0x0F)
	if b[0]&0x10 != 0 { // header extension
		if len(b) < off+4 {
			return rtpHeader{}, nil, fmt.Errorf("media: parse RTP: truncated extension: %w", ErrMalformed)
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	if len(b) < off {
		return rtpHeader{}, nil, fmt.Errorf("media: parse RTP: header of %d bytes in %d: %w", off, len(b), ErrMalformed)
	}
	payload := b[off:]
	if b[0]&0x20 != 0 { // padding: last octet counts the padding octets, itself included
		if len(payload) == 0 {
			return rtpHeader{}, nil, fmt.Errorf("media: parse RTP: padding without payload: %w", ErrMalformed)
		}
		p := int(payload[len(payload)-1])
		if p == 0 || p > len(payload) {
			return rtpHeader{}, nil, fmt.Errorf("media: parse RTP: padding %d of %d: %w", p, len(payload), ErrMalformed)
		}
		payload = payload[:len(payload)-p]
	}
	return rtpHeader{
		marker:      b[1]&0x80 != 0,
		payloadType: b[1] & 0x7F,
		seq:         binary.BigEndian.Uint16(b[2:]),
		timestamp:   binary.BigEndian.Uint32(b[4:]),
		ssrc:        binary.BigEndian.Uint32(b[8:]),
	}, payload, nil
}

// putRTPHeader writes a 12-byte header (no CSRC, no extension, no padding) into b.
func putRTPHeader(b []byte, h rtpHeader) {
	b[0] = 0x80
	b[1] = h.payloadType & 0x7F
	if h.marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], h.seq)
	binary.BigEndian.PutUint32(b[4:], h.timestamp)
	binary.BigEndian.PutUint32(b[8:], h.ssrc)
}

// seqNewer reports whether a follows b in 16-bit serial arithmetic (RFC 1982).
func seqNewer(a, b uint16) bool { return a != b && a-b < 0x8000 }

// tsNewer reports whether a follows b in 32-bit serial arithmetic.
func tsNewer(a, b uint32) bool { return a != b && a-b < 0x80000000 }
