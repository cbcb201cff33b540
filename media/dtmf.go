package media

import (
	"encoding/binary"
	"fmt"
)

// TelephoneEvent is one RFC 4733 §2.3 named-event payload (the 4-byte telephone-event block).
type TelephoneEvent struct {
	Event    uint8  // §3.2: 0-9 digits, 10 '*', 11 '#', 12-15 'A'-'D'
	End      bool   // E bit: the last packet(s) of the event (sent three times, §2.5.1.4)
	Volume   uint8  // power level in −dBm0, 0-63
	Duration uint16 // in timestamp units since the event's RTP timestamp
}

// telephoneEventSize is the size of one event block (RFC 4733 §2.3).
const telephoneEventSize = 4

// ParseTelephoneEvent decodes the first event block of an RFC 4733 payload. Payloads shorter
// than 4 bytes return an error wrapping ErrMalformed.
func ParseTelephoneEvent(payload []byte) (TelephoneEvent, error) {
	if len(payload) < telephoneEventSize {
		return TelephoneEvent{}, fmt.Errorf("media: parse telephone-event (%d bytes): %w", len(payload), ErrMalformed)
	}
	return TelephoneEvent{
		Event:    payload[0],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3F,
		Duration: binary.BigEndian.Uint16(payload[2:4]),
	}, nil
}

// AppendTo appends the 4-byte encoding of ev to b (R bit zero, volume masked to 6 bits).
func (ev TelephoneEvent) AppendTo(b []byte) []byte {
	flags := ev.Volume & 0x3F
	if ev.End {
		flags |= 0x80
	}
	return append(b, ev.Event, flags, byte(ev.Duration>>8), byte(ev.Duration))
}

// DigitOf maps an RFC 4733 §3.2 DTMF event code to its key, and ok=false for other events.
func DigitOf(event uint8) (rune, bool) {
	switch {
	case event <= 9:
		return rune('0' + event), true
	case event == 10:
		return '*', true
	case event == 11:
		return '#', true
	case event <= 15:
		return rune('A' + event - 12), true
	}
	return 0, false
}

// EventOf maps a key ('0'-'9', '*', '#', 'A'-'D', lower case accepted) to its event code.
func EventOf(digit rune) (uint8, bool) {
	switch {
	case digit >= '0' && digit <= '9':
		return uint8(digit - '0'), true
	case digit == '*':
		return 10, true
	case digit == '#':
		return 11, true
	case digit >= 'A' && digit <= 'D':
		return uint8(digit-'A') + 12, true
	case digit >= 'a' && digit <= 'd':
		return uint8(digit-'a') + 12, true
	}
	return 0, false
}

// dtmfMemory is how many recent event timestamps the detector remembers: enough to absorb
// reordered and retransmitted packets of the last few key presses.
const dtmfMemory = 8

// DTMFDetector turns a stream of telephone-event packets into key presses. An event is identified
// by its RTP timestamp (RFC 4733 §2.5.1.2: all packets of one event carry the event's start
// timestamp), so the first packet seen of an event reports it — whether it is the marked start
// packet, an update, or one of the three end packets when everything before was lost — and every
// later packet with the same timestamp is a duplicate. The marker bit is deliberately ignored:
// the start packet is the one most often lost, and some gateways never set it.
// The zero value is ready to use; not safe for concurrent use.
type DTMFDetector struct {
	recent [dtmfMemory]uint32
	n      int // how many of recent are valid (≤ dtmfMemory)
	next   int // ring position
}

// Detect feeds one telephone-event packet (its RTP timestamp and payload). It returns the
// event code and true when the packet starts a DTMF event not seen before.
func (d *DTMFDetector) Detect(timestamp uint32, payload []byte) (uint8, bool) {
	ev, err := ParseTelephoneEvent(payload)
	if err != nil {
		return 0, false
	}
	if _, ok := DigitOf(ev.Event); !ok {
		return 0, false
	}
	for i := range d.n {
		if d.recent[i] == timestamp {
			return 0, false
		}
	}
	d.recent[d.next] = timestamp
	d.next = (d.next + 1) % dtmfMemory
	if d.n < dtmfMemory {
		d.n++
	}
	return ev.Event, true
}
