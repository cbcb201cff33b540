package sip

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var testLocal = Local{Addr: netip.MustParseAddr("203.0.113.7"), Port: 20002, SessionID: 42, Version: 1}

func offerSDP(lines ...string) string {
	return "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" + strings.Join(lines, "\r\n") + "\r\n"
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name      string
		offer     string
		wantErr   error
		wantCodec string
		wantEvent int
		wantDir   Direction
		wantHold  bool
		wantAddr  string
		contains  []string
		absent    []string
	}{
		{
			name:      "peer codec order respected (PCMA first)",
			offer:     offerSDP("m=audio 4000 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000", "a=sendrecv"),
			wantCodec: "PCMA", wantEvent: 101, wantDir: SendRecv, wantAddr: "192.0.2.1:4000",
			contains: []string{"m=audio 20002 RTP/AVP 8 101\r\n", "a=sendrecv"},
		},
		{
			name:      "unsupported codecs skipped, PCMU chosen",
			offer:     offerSDP("m=audio 4000 RTP/AVP 9 18 0", "a=rtpmap:9 G722/8000", "a=rtpmap:18 G729/8000"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: SendRecv, wantAddr: "192.0.2.1:4000",
			contains: []string{"m=audio 20002 RTP/AVP 0\r\n"}, absent: []string{"telephone-event"},
		},
		{
			name:      "telephone-event payload type mirrored",
			offer:     offerSDP("m=audio 4000 RTP/AVP 0 96", "a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-15"),
			wantCodec: "PCMU", wantEvent: 96, wantDir: SendRecv, wantAddr: "192.0.2.1:4000",
			contains: []string{"m=audio 20002 RTP/AVP 0 96\r\n", "a=rtpmap:96 telephone-event/8000"},
		},
		{
			name:    "nothing in common gives ErrNoCommonCodec (488)",
			offer:   offerSDP("m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000"),
			wantErr: ErrNoCommonCodec,
		},
		{
			name:      "hold: sendonly answered recvonly",
			offer:     offerSDP("m=audio 4000 RTP/AVP 0", "a=sendonly"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: RecvOnly, wantHold: true, wantAddr: "192.0.2.1:4000",
			contains: []string{"a=recvonly"},
		},
		{
			name:      "hold: inactive answered inactive",
			offer:     offerSDP("m=audio 4000 RTP/AVP 0", "a=inactive"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: Inactive, wantHold: true, wantAddr: "192.0.2.1:4000",
			contains: []string{"a=inactive"},
		},
		{
			name:      "recvonly answered sendonly",
			offer:     offerSDP("m=audio 4000 RTP/AVP 0", "a=recvonly"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: SendOnly, wantAddr: "192.0.2.1:4000",
			contains: []string{"a=sendonly"},
		},
		{
			name:      "hold: c=0.0.0.0 (RFC 2543) holds",
			offer:     "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			wantCodec: "PCMU", wantEvent: -1, wantDir: RecvOnly, wantHold: true, wantAddr: "invalid AddrPort",
		},
		{
			name:      "session-level direction applies to media",
			offer:     "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 8\r\n",
			wantCodec: "PCMA", wantEvent: -1, wantDir: RecvOnly, wantHold: true, wantAddr: "192.0.2.1:4000",
		},
		{
			name:      "media-level c= overrides session (address change)",
			offer:     offerSDP("m=audio 5000 RTP/AVP 0", "c=IN IP4 198.51.100.9"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: SendRecv, wantAddr: "198.51.100.9:5000",
		},
		{
			name:      "SDP without a final CRLF accepted",
			offer:     strings.TrimRight(offerSDP("m=audio 4000 RTP/AVP 0", "a=sendrecv"), "\r\n"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: SendRecv, wantAddr: "192.0.2.1:4000",
		},
		{
			name:      "bare LF line ends accepted",
			offer:     strings.ReplaceAll(offerSDP("m=audio 4000 RTP/AVP 0"), "\r\n", "\n"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: SendRecv, wantAddr: "192.0.2.1:4000",
		},
		{
			name:      "video rejected with port 0, audio accepted, m-line count kept",
			offer:     offerSDP("m=video 6000 RTP/AVP 96", "a=rtpmap:96 H264/90000", "m=audio 4000 RTP/AVP 0"),
			wantCodec: "PCMU", wantEvent: -1, wantDir: SendRecv, wantAddr: "192.0.2.1:4000",
			contains: []string{"m=video 0 RTP/AVP 96\r\n", "m=audio 20002 RTP/AVP 0\r\n"},
		},
		{
			name:    "empty body is malformed",
			offer:   "",
			wantErr: ErrSDPMalformed,
		},
		{
			name:    "garbage is malformed",
			offer:   "hello world",
			wantErr: ErrSDPMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, m, err := Negotiate([]byte(tt.offer), testLocal)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Negotiate: %v", err)
			}
			if m.Codec.Name != tt.wantCodec || m.EventPT != tt.wantEvent || m.Direction != tt.wantDir || m.Hold != tt.wantHold {
				t.Errorf("media = %+v, want codec %s event %d dir %s hold %v", m, tt.wantCodec, tt.wantEvent, tt.wantDir, tt.wantHold)
			}
			if got := m.Remote.String(); got != tt.wantAddr {
				t.Errorf("remote = %s, want %s", got, tt.wantAddr)
			}
			s := string(ans)
			// Our c= and o= carry the configured external address, never the peer's.
			if !strings.Contains(s, "c=IN IP4 203.0.113.7\r\n") || !strings.Contains(s, "o=switchboard 42 1 IN IP4 203.0.113.7\r\n") {
				t.Errorf("answer lacks external address:\n%s", s)
			}
			for _, c := range tt.contains {
				if !strings.Contains(s, c) {
					t.Errorf("answer lacks %q:\n%s", c, s)
				}
			}
			for _, c := range tt.absent {
				if strings.Contains(s, c) {
					t.Errorf("answer has %q:\n%s", c, s)
				}
			}
			// The answer must itself parse (our own output is valid SDP).
			if _, err := parseRemote(ans); err != nil {
				t.Errorf("answer does not parse: %v", err)
			}
		})
	}
}

func TestOfferAndParseAnswer(t *testing.T) {
	l := testLocal
	l.Direction = SendOnly
	off := string(Offer(l, nil, DefaultEventPayload))
	for _, want := range []string{"m=audio 20002 RTP/AVP 0 8 101\r\n", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000", "a=sendonly", "c=IN IP4 203.0.113.7"} {
		if !strings.Contains(off, want) {
			t.Errorf("offer lacks %q:\n%s", want, off)
		}
	}
	m, err := ParseAnswer([]byte(offerSDP("m=audio 4002 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000", "a=recvonly")))
	if err != nil {
		t.Fatal(err)
	}
	if m.Codec.Name != "PCMA" || m.EventPT != 101 || m.Direction != SendOnly || m.Remote.String() != "192.0.2.1:4002" {
		t.Errorf("ParseAnswer = %+v", m)
	}
	if _, err := ParseAnswer([]byte(offerSDP("m=audio 4002 RTP/AVP 18"))); !errors.Is(err, ErrNoCommonCodec) {
		t.Errorf("answer without G.711: err = %v", err)
	}
}

func TestIPv6Local(t *testing.T) {
	l := Local{Addr: netip.MustParseAddr("::1"), Port: 20000, SessionID: 1, Version: 1}
	off := string(Offer(l, nil, -1))
	if !strings.Contains(off, "c=IN IP6 ::1\r\n") {
		t.Errorf("offer:\n%s", off)
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add([]byte(offerSDP("m=audio 4000 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000", "a=sendrecv")))
	f.Add([]byte(offerSDP("m=audio 4000 RTP/AVP 0", "a=sendonly")))
	f.Add([]byte("v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0"))
	f.Add([]byte(offerSDP("m=video 6000 RTP/AVP 96", "m=audio 4000 RTP/AVP 0", "c=IN IP6 ::1")))
	f.Add([]byte("v=0\nm=audio 99999 RTP/AVP 300 -1 x\na=rtpmap:x"))
	f.Fuzz(func(t *testing.T, offer []byte) {
		ans, m, err := Negotiate(offer, testLocal)
		if err != nil {
			if !errors.Is(err, ErrSDPMalformed) && !errors.Is(err, ErrNoCommonCodec) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if m.Codec.Name != "PCMU" && m.Codec.Name != "PCMA" {
			t.Fatalf("negotiated unsupported codec %+v", m.Codec)
		}
		if _, err := parseRemote(ans); err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, ans)
		}
		_, _ = ParseAnswer(offer)
	})
}
