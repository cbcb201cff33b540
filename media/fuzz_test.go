package media

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// rtpSeeds are packets the tests use, plus edge cases of the header format.
func rtpSeeds() [][]byte {
	var seeds [][]byte
	for _, p := range []*rtp.Packet{
		audio(0, 1, 160, 7, 0xFF),
		audio(8, 65535, 1<<31, 0x2222, 0xD5),
		{Header: rtp.Header{Version: 2, PayloadType: 101, Marker: true, SequenceNumber: 8, Timestamp: 230, SSRC: 3}, Payload: ev(5, false, 160)},
		{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: 9, Timestamp: 230, SSRC: 3}, Payload: ev(5, true, 480)},
		{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 2, Timestamp: 320, SSRC: 7, CSRC: []uint32{1, 2}}, Payload: []byte{1, 2, 3}},
	} {
		b, _ := p.Marshal()
		seeds = append(seeds, b)
	}
	ext := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 3, SSRC: 7}, Payload: []byte{0xFF}}
	_ = ext.SetExtension(1, []byte{0xAA, 0xBB})
	b, _ := ext.Marshal()
	seeds = append(seeds, b,
		[]byte{0xA0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xFF, 2}, // padding
		[]byte{0xA0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x09},    // padding larger than the payload
		[]byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0xFF, 0xFF},
		[]byte{0x80, 200, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, // RTCP on the RTP port
		[]byte{0x80}, nil)
	return seeds
}

// FuzzParseRTP drives the whole receive path (parse, latch, stats, DTMF, tap, bridge forwarding
// with transcoding) with arbitrary datagrams: it must never panic, and what parses must be
// consistent with pion's parser.
func FuzzParseRTP(f *testing.F) {
	for _, s := range rtpSeeds() {
		f.Add(s)
	}
	// Real traffic when SIPp's captures are installed: G.711 A-law audio and RFC 2833 events.
	for _, name := range []string{"g711a.pcap", "dtmf_2833_1.pcap"} {
		if payloads, err := pcapUDPPayloads("/usr/share/sip-tester/" + name); err == nil {
			for _, p := range payloads[:min(len(payloads), 8)] {
				f.Add(p)
			}
		}
	}
	alloc := testAllocator(f, 4)
	a := newTestEndpoint(f, EndpointOptions{Allocator: alloc, MediaTimeout: -1})
	b := newTestEndpoint(f, EndpointOptions{Allocator: alloc, MediaTimeout: -1})
	a.SetCodec(0, PCMU)
	a.SetDTMFPayloadType(101)
	b.SetCodec(8, PCMA)
	b.SetDTMFPayloadType(96)
	sink := newPeer(f)
	b.SetRemote(sink.addr())
	a.AddTap(func(TapPacket) {})
	if _, err := Bridge(a, b); err != nil {
		f.Fatal(err)
	}
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	f.Fuzz(func(t *testing.T, data []byte) {
		h, payload, err := parseRTP(data)
		if err == nil {
			var p rtp.Packet
			if perr := p.Unmarshal(data); perr == nil {
				if p.SequenceNumber != h.seq || p.Timestamp != h.timestamp || p.SSRC != h.ssrc || p.PayloadType != h.payloadType {
					t.Fatalf("header differs from pion: %+v vs %+v", h, p.Header)
				}
				if len(payload) > len(data) {
					t.Fatal("payload longer than the packet")
				}
			}
		}
		a.handleRTP(data, src, time.Now(), nil)
	})
}

// FuzzDTMFPayload: parsing and detection never panic; what parses re-encodes to the same bytes.
func FuzzDTMFPayload(f *testing.F) {
	for _, s := range [][]byte{ev(1, false, 160), ev(11, true, 800), ev(16, false, 0), {1, 2, 3}, nil, {0xFF, 0xFF, 0xFF, 0xFF, 0xFF}} {
		f.Add(uint32(100), s)
	}
	var d DTMFDetector
	f.Fuzz(func(t *testing.T, ts uint32, data []byte) {
		e, err := ParseTelephoneEvent(data)
		if err == nil {
			b := e.AppendTo(nil)
			if b[0] != data[0] || b[1] != data[1]&0xBF || b[2] != data[2] || b[3] != data[3] {
				t.Fatalf("re-encoded %x from %x", b, data[:4])
			}
		}
		if ev, ok := d.Detect(ts, data); ok {
			if _, isDigit := DigitOf(ev); !isDigit || err != nil {
				t.Fatalf("detected event %d from %x", ev, data)
			}
			if _, again := d.Detect(ts, data); again {
				t.Fatal("the same timestamp was detected twice")
			}
		}
	})
}

// FuzzRTCP drives the RTCP receive path with arbitrary datagrams: it must never panic.
func FuzzRTCP(f *testing.F) {
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 1, NTPTime: 0x0102030405060708,
		Reports: []rtcp.ReceptionReport{{SSRC: 5, TotalLost: 0xFFFFFF, Jitter: 80}}}, rtcp.NewCNAMESourceDescription(1, "x")})
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 5, FractionLost: 3}}}})
	bye, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.Goodbye{Sources: []uint32{1}}})
	for _, s := range [][]byte{sr, rr, bye, sr[:10], {0x80, 201, 0, 0}, nil} {
		f.Add(s)
	}
	e := newTestEndpoint(f, EndpointOptions{SSRC: 5, MediaTimeout: -1})
	f.Fuzz(func(t *testing.T, data []byte) {
		e.handleRTCP(data)
		_ = e.Stats()
	})
}
