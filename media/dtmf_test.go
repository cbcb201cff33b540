package media

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func ev(event uint8, end bool, dur uint16) []byte {
	return TelephoneEvent{Event: event, End: end, Volume: 10, Duration: dur}.AppendTo(nil)
}

func TestParseTelephoneEvent(t *testing.T) {
	got, err := ParseTelephoneEvent([]byte{0x0B, 0x8A, 0x03, 0x20})
	if err != nil {
		t.Fatal(err)
	}
	want := TelephoneEvent{Event: 11, End: true, Volume: 10, Duration: 800}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if b := want.AppendTo(nil); string(b) != "\x0b\x8a\x03\x20" {
		t.Errorf("AppendTo = %x", b)
	}
	if _, err := ParseTelephoneEvent([]byte{1, 2, 3}); err == nil {
		t.Error("3-byte payload accepted")
	}
	for i, r := range "0123456789*#ABCD" {
		if e, ok := EventOf(r); !ok || int(e) != i {
			t.Errorf("EventOf(%q) = %d, %v", r, e, ok)
		}
		if d, ok := DigitOf(uint8(i)); !ok || d != r {
			t.Errorf("DigitOf(%d) = %q", i, d)
		}
	}
	if _, ok := DigitOf(16); ok {
		t.Error("event 16 (flash) is not a DTMF key")
	}
	if _, ok := EventOf('x'); ok {
		t.Error("'x' is not a DTMF key")
	}
}

// Rule (RFC 4733 §2.5): a key press is identified by its RTP timestamp, never the marker bit.
func TestDTMFDetectorDeduplicatesByTimestamp(t *testing.T) {
	type pkt struct {
		ts      uint32
		payload []byte
	}
	cases := []struct {
		name string
		pkts []pkt
		want string
	}{
		{"start, updates, three ends", []pkt{{100, ev(1, false, 160)}, {100, ev(1, false, 320)}, {100, ev(1, true, 480)}, {100, ev(1, true, 480)}, {100, ev(1, true, 480)}}, "1"},
		{"start packet (the marked one) lost", []pkt{{100, ev(2, false, 320)}, {100, ev(2, true, 480)}, {100, ev(2, true, 480)}}, "2"},
		{"only the end packets arrive", []pkt{{100, ev(3, true, 480)}, {100, ev(3, true, 480)}, {100, ev(3, true, 480)}}, "3"},
		{"same key twice is two presses", []pkt{{100, ev(4, false, 160)}, {100, ev(4, true, 320)}, {900, ev(4, false, 160)}, {900, ev(4, true, 320)}}, "44"},
		{"late retransmission of an earlier event", []pkt{{100, ev(5, true, 320)}, {900, ev(6, false, 160)}, {100, ev(5, true, 320)}, {900, ev(6, true, 320)}}, "56"},
		{"non-DTMF events and short payloads ignored", []pkt{{100, ev(16, false, 160)}, {200, []byte{1}}, {300, ev(11, false, 160)}}, "#"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d DTMFDetector
			got := ""
			for _, p := range c.pkts {
				if e, ok := d.Detect(p.ts, p.payload); ok {
					r, _ := DigitOf(e)
					got += string(r)
				}
			}
			if got != c.want {
				t.Errorf("detected %q, want %q", got, c.want)
			}
		})
	}
}

// Rule: the endpoint detects digits from packets without any marker bit.
func TestEndpointDetectsDTMFWithoutMarker(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{})
	e.SetCodec(0, PCMU)
	e.SetDTMFPayloadType(101)
	p := newPeer(t)
	seq := uint16(1)
	for _, k := range []struct {
		event uint8
		ts    uint32
	}{{9, 1000}, {9, 3000}, {10, 5000}} {
		for i, end := range []bool{false, true, true, true} {
			p.send(e.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: seq, Timestamp: k.ts, SSRC: 1},
				Payload: ev(k.event, end, uint16(160*(i+1)))})
			seq++
		}
	}
	got := ""
	for range 3 {
		select {
		case d := <-e.DTMF():
			got += string(d.Digit)
		case <-time.After(wait):
			t.Fatalf("detected only %q", got)
		}
	}
	if got != "99*" {
		t.Errorf("detected %q, want 99*", got)
	}
}

// Rule (RFC 4733 §2.5.1): the generator sends marker first, growing durations every 20 ms, three
// end packets, all with the event's timestamp, on the endpoint's continuous stream; the
// detector on the far endpoint reads the digits back.
func TestSendDTMFRoundTrip(t *testing.T) {
	alloc := testAllocator(t, 8)
	a := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	b := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	for _, e := range []*Endpoint{a, b} {
		e.SetCodec(0, PCMU)
		e.SetDTMFPayloadType(101)
	}
	raw := newPeer(t)
	a.SetRemote(raw.addr())
	if err := a.SendDTMF(ctxTimeout(t), '7', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var pkts []*rtp.Packet
	for range 5 { // 3 steps (the 3rd is the first end) + 2 more ends
		pkts = append(pkts, raw.recv())
	}
	for i, p := range pkts {
		e, err := ParseTelephoneEvent(p.Payload)
		if err != nil || e.Event != 7 || p.PayloadType != 101 {
			t.Fatalf("packet %d: PT %d %+v %v", i, p.PayloadType, e, err)
		}
		if p.Marker != (i == 0) {
			t.Errorf("packet %d: marker %v", i, p.Marker)
		}
		if p.Timestamp != pkts[0].Timestamp {
			t.Errorf("packet %d: timestamp %d, want the event's %d", i, p.Timestamp, pkts[0].Timestamp)
		}
		if i > 0 && p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Errorf("packet %d: seq %d", i, p.SequenceNumber)
		}
		wantDur := uint16(min(i+1, 3) * FrameSize)
		if e.Duration != wantDur || e.End != (i >= 2) {
			t.Errorf("packet %d: duration %d end %v, want %d %v", i, e.Duration, e.End, wantDur, i >= 2)
		}
	}
	// Audio after the event continues the stream past the event's duration.
	if err := a.Play(ctxTimeout(t), bytesOf(FrameSize, 0xFF), PCMU); err != nil {
		t.Fatal(err)
	}
	after := raw.recv()
	if after.SequenceNumber != pkts[4].SequenceNumber+1 || after.Timestamp-pkts[0].Timestamp < 3*FrameSize {
		t.Errorf("audio after the event: seq %d ts %d; event seq %d ts %d", after.SequenceNumber, after.Timestamp, pkts[4].SequenceNumber, pkts[0].Timestamp)
	}

	// Round trip through a real endpoint's detector.
	a.SetRemote(b.LocalAddr())
	want := "0123456789*#ABCD"
	for _, r := range want {
		if err := a.SendDTMF(ctxTimeout(t), r, 40*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	got := ""
	for range len(want) {
		select {
		case d := <-b.DTMF():
			got += string(d.Digit)
		case <-time.After(wait):
			t.Fatalf("detected only %q", got)
		}
	}
	if got != want {
		t.Errorf("round trip %q, want %q", got, want)
	}
	if err := a.SendDTMF(ctxTimeout(t), 'x', 0); err == nil {
		t.Error("'x' accepted")
	}
}

// Cancelling SendDTMF mid-event still ends the event (no stuck tone at the far end).
func TestSendDTMFCancelledStillEnds(t *testing.T) {
	a := newTestEndpoint(t, EndpointOptions{})
	a.SetCodec(0, PCMU)
	a.SetDTMFPayloadType(101)
	raw := newPeer(t)
	a.SetRemote(raw.addr())
	ctx, cancel := contextWithCancel(t)
	done := make(chan error, 1)
	go func() { done <- a.SendDTMF(ctx, '1', 5*time.Second) }()
	first := raw.recv() // the event started
	cancel()
	if err := <-done; err == nil {
		t.Error("cancelled SendDTMF returned nil")
	}
	ends := 0
	for range 300 {
		p := raw.recv()
		if e, _ := ParseTelephoneEvent(p.Payload); e.End {
			ends++
			if p.Timestamp != first.Timestamp {
				t.Errorf("end packet timestamp %d, event %d", p.Timestamp, first.Timestamp)
			}
			if ends == 3 {
				return
			}
		}
	}
	t.Errorf("%d end packets after cancel, want 3", ends)
}

// SIPp ships RFC 2833 captures of every key (Debian sip-tester); the detector reads each one.
func TestDTMFFromSIPpCaptures(t *testing.T) {
	dir := "/usr/share/sip-tester"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("sip-tester captures not installed")
	}
	keys := map[string]rune{"pound": '#', "star": '*'}
	for i := range 10 {
		keys[fmt.Sprint(i)] = rune('0' + i)
	}
	for name, want := range keys {
		payloads, err := pcapUDPPayloads(filepath.Join(dir, "dtmf_2833_"+name+".pcap"))
		if err != nil {
			t.Fatal(err)
		}
		var d DTMFDetector
		var got []rune
		for _, b := range payloads {
			h, payload, err := parseRTP(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if h.payloadType != 101 {
				continue
			}
			if e, ok := d.Detect(h.timestamp, payload); ok {
				r, _ := DigitOf(e)
				got = append(got, r)
			}
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: detected %q, want %q once", name, string(got), want)
		}
	}
}

// pcapUDPPayloads reads a classic little-endian libpcap file of Ethernet/IPv4/UDP frames.
func pcapUDPPayloads(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		return nil, fmt.Errorf("%s: not a little-endian Ethernet pcap", path)
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+16 : min(off+16+n, len(b))]
		off += 16 + n
		if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0F) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		out = append(out, ip[ihl+8:])
	}
	return out, nil
}
