package sip

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// fmtSessionHeader and fmtAudio are how our SDP was written with fmt before session 11
// (appendSessionHeader, appendAudio): the reference the strconv writers must match byte for
// byte.
func fmtSessionHeader(b *strings.Builder, l Local) {
	ipv := "IP4"
	if l.Addr.Is6() && !l.Addr.Is4In6() {
		ipv = "IP6"
	}
	addr := l.Addr.Unmap().String()
	fmt.Fprintf(b, "v=0\r\no=switchboard %d %d IN %s %s\r\ns=switchboard\r\nc=IN %s %s\r\nt=0 0\r\n",
		l.SessionID, l.Version, ipv, addr, ipv, addr)
}

func fmtAudio(b *strings.Builder, port int, proto string, codecs []Codec, eventPT int, dir Direction) {
	fmt.Fprintf(b, "m=audio %d %s", port, proto)
	for _, c := range codecs {
		fmt.Fprintf(b, " %d", c.PT)
	}
	if eventPT >= 0 {
		fmt.Fprintf(b, " %d", eventPT)
	}
	b.WriteString("\r\n")
	for _, c := range codecs {
		fmt.Fprintf(b, "a=rtpmap:%d %s/%d\r\n", c.PT, c.Name, c.Rate)
	}
	if eventPT >= 0 {
		fmt.Fprintf(b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", eventPT, eventPT)
	}
	b.WriteString("a=ptime:20\r\n")
	fmt.Fprintf(b, "a=%s\r\n", dir)
}

// TestSDPWritersMatchTheFmtReference: our offers' and answers' lines are the same bytes as
// when they were written with fmt, for IPv4, IPv6, a mapped and the zero address, large
// session ids, every direction, with and without telephone-event.
func TestSDPWritersMatchTheFmtReference(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("2001:db8::7"),
		netip.MustParseAddr("::ffff:192.0.2.9"), netip.MustParseAddr("fe80::1%eth0"), {}}
	codecs := [][]Codec{nil, {{PT: 0, Name: "PCMU", Rate: 8000}}, {{PT: 8, Name: "PCMA", Rate: 8000}, {PT: 0, Name: "PCMU", Rate: 8000}}}
	for _, a := range addrs {
		for _, id := range []uint64{0, 1, 1<<63 + 12345} {
			l := Local{Addr: a, Port: 20000, SessionID: id, Version: id / 3}
			var want strings.Builder
			fmtSessionHeader(&want, l)
			if got := string(appendSessionHeader(nil, l)); got != want.String() {
				t.Errorf("session header of %+v:\n got %q\nwant %q", l, got, want.String())
			}
		}
	}
	for _, cs := range codecs {
		for _, ev := range []int{-1, 101, 127} {
			for _, dir := range []Direction{SendRecv, SendOnly, RecvOnly, Inactive} {
				for _, port := range []int{0, 2, 65534} {
					var want strings.Builder
					fmtAudio(&want, port, "RTP/AVP", cs, ev, dir)
					if got := string(appendAudio(nil, port, "RTP/AVP", cs, ev, dir)); got != want.String() {
						t.Errorf("audio %v %d %v %d:\n got %q\nwant %q", cs, ev, dir, port, got, want.String())
					}
				}
			}
		}
	}
	// A whole answer with a rejected stream, and an offer.
	offer := []byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96 97\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\nm=application 6000 UDP/BFCP *\r\n")
	l := Local{Addr: netip.MustParseAddr("198.51.100.4"), Port: 30000, SessionID: 77, Version: 2}
	got, _, err := Negotiate(offer, l)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	fmtSessionHeader(&want, l)
	want.WriteString("m=video 0 RTP/AVP 96 97\r\n")
	fmtAudio(&want, 30000, "RTP/AVP", []Codec{{PT: 8, Name: "PCMA", Rate: 8000}}, 101, RecvOnly)
	want.WriteString("m=application 0 UDP/BFCP *\r\n")
	if string(got) != want.String() {
		t.Errorf("answer:\n got %q\nwant %q", got, want.String())
	}
	var wantOffer strings.Builder
	fmtSessionHeader(&wantOffer, l)
	fmtAudio(&wantOffer, 30000, "RTP/AVP", []Codec{{PT: 0, Name: "PCMU", Rate: 8000}, {PT: 8, Name: "PCMA", Rate: 8000}}, 101, SendRecv)
	if got := string(Offer(l, nil, 101)); got != wantOffer.String() {
		t.Errorf("offer:\n got %q\nwant %q", got, wantOffer.String())
	}
}
