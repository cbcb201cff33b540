package sip

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// udpPeer is a hand-driven SIP peer on a loopback UDP socket, for dialog rules SIPp cannot
// express easily (missing ACKs, route sets).
type udpPeer struct {
	t    *testing.T
	c    *net.UDPConn
	port int
	gw   *net.UDPAddr
}

func newUDPPeer(t *testing.T, gwPort int) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Room for a flood's responses while the test is still sending (the kernel caps it at
	// net.core.rmem_max): a response dropped here only comes again at its retransmission.
	_ = c.SetReadBuffer(4 << 20)
	return &udpPeer{t: t, c: c, port: c.LocalAddr().(*net.UDPAddr).Port, gw: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: gwPort}}
}

func (p *udpPeer) send(msg string) {
	p.t.Helper()
	msg = strings.ReplaceAll(msg, "LPORT", strconv.Itoa(p.port))
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
	if _, err := p.c.WriteToUDP([]byte(msg), p.gw); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next message within d, or "".
func (p *udpPeer) recv(d time.Duration) string {
	buf := make([]byte, 65535)
	_ = p.c.SetReadDeadline(time.Now().Add(d))
	n, _, err := p.c.ReadFromUDP(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// recvUntil returns the first message for which match holds, within d.
func (p *udpPeer) recvUntil(d time.Duration, match func(string) bool) string {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := p.recv(time.Until(deadline))
		if m != "" && match(m) {
			return m
		}
	}
	return ""
}

func header(msg, name string) []string {
	var out []string
	for _, l := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// answerTarget answers the carrier leg at once and holds the call until ctx ends.
var answerTarget = TargetFunc(func(ctx context.Context, c *Call) error {
	if err := c.Answer(ctx); err != nil {
		return err
	}
	c.MarkAnswered(0)
	<-ctx.Done()
	return nil
})

// TestTwoHundredRetransmittedUntilAckThenBye: without an ACK, our 2xx is retransmitted with
// growing intervals (RFC 3261 §13.3.1.4) and after 64*T1 the call is ended with BYE.
func TestTwoHundredRetransmittedUntilAckThenBye(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
		o.T1 = 50 * time.Millisecond // AckTimeout = 3.2 s
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	oks, start := 0, time.Now()
	var bye string
	for time.Since(start) < 10*time.Second {
		m := p.recv(5 * time.Second)
		if m == "" {
			break
		}
		if strings.HasPrefix(m, "SIP/2.0 200") {
			oks++
		}
		if strings.HasPrefix(m, "BYE ") {
			bye = m
			break
		}
	}
	if oks < 4 {
		t.Errorf("200 OK sent %d times without ACK, want retransmissions", oks)
	}
	if bye == "" {
		t.Fatal("no BYE after the ACK timeout")
	}
	if el := time.Since(start); el < 3*time.Second {
		t.Errorf("BYE after %s, want ≥ 64*T1", el)
	}
	p.send("SIP/2.0 200 OK\n" + "Via: " + header(bye, "Via")[0] + "\nFrom: " + header(bye, "From")[0] + "\nTo: " + header(bye, "To")[0] +
		"\nCall-ID: " + header(bye, "Call-ID")[0] + "\nCSeq: " + header(bye, "CSeq")[0] + "\nContent-Length: 0\n\n")
	evs := g.sink.waitEnded(t, 10*time.Second)
	if e := lastOf(evs, callevent.EventEnded); e == nil {
		t.Fatal("no call.ended")
	}
}

// TestRouteSetOrder: the carrier's Record-Route list becomes our Route headers in the same
// order on requests we send in the dialog (RFC 3261 §12.1.1, §12.2.1.1), sent to the first.
func TestRouteSetOrder(t *testing.T) {
	hang := make(chan *Call, 1)
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			hang <- c
			<-ctx.Done()
			return nil
		})}}
	})
	p := newUDPPeer(t, g.port())
	rr := "Record-Route: <sip:127.0.0.1:LPORT;lr>, <sip:proxy2.invalid;lr>\nRecord-Route: <sip:proxy3.invalid;lr>\n"
	inv := rawInvite("+15550197", rr, pcmuOffer)
	p.send(inv)
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	if got := strings.Join(header(ok, "Record-Route"), ", "); !strings.Contains(got, "proxy2.invalid") {
		t.Errorf("200 lacks the Record-Route list: %q", got)
	}
	to := header(ok, "To")[0]
	p.send(fmt.Sprintf("ACK sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKack1\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		g.port(), to, header(ok, "Call-ID")[0]))
	c := <-hang
	c.Hangup()
	bye := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") })
	if bye == "" {
		t.Fatal("no BYE at the first route")
	}
	routes := header(bye, "Route")
	want := []string{"<sip:127.0.0.1:" + strconv.Itoa(p.port) + ";lr>", "<sip:proxy2.invalid;lr>", "<sip:proxy3.invalid;lr>"}
	if strings.Join(routes, ",") != strings.Join(want, ",") {
		t.Errorf("BYE routes = %q, want %q", routes, want)
	}
	if !strings.HasPrefix(bye, "BYE sip:bob@127.0.0.1:"+strconv.Itoa(p.port)) {
		t.Errorf("BYE Request-URI is not the remote target (Contact): %s", strings.SplitN(bye, "\r\n", 2)[0])
	}
}

// TestSessionTimerExpiry: the caller asked for a 2 s session it refreshes itself (refresher=uac)
// and never does: we send BYE before expiry (RFC 4028 §10).
func TestSessionTimerExpiry(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
		o.MinSE = time.Second
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "Supported: timer\nSession-Expires: 2;refresher=uac\n", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	if se := header(ok, "Session-Expires"); len(se) != 1 || se[0] != "2;refresher=uac" {
		t.Errorf("Session-Expires in 200 = %q", se)
	}
	start := time.Now()
	p.send(fmt.Sprintf("ACK sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKack2\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		g.port(), header(ok, "To")[0], header(ok, "Call-ID")[0]))
	bye := p.recvUntil(6*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") })
	if bye == "" {
		t.Fatal("no BYE at session expiry")
	}
	if el := time.Since(start); el < time.Second || el > 2500*time.Millisecond {
		t.Errorf("BYE after %s, want at expiry − min(32 s, SE/3)", el)
	}
}

// ackFor builds the ACK for a 2xx to our INVITE from udpPeer.
func ackFor(port int, ok string, cseq int) string {
	return fmt.Sprintf("ACK sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKack%d\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: %d ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		port, time.Now().UnixNano(), header(ok, "To")[0], header(ok, "Call-ID")[0], cseq)
}

// byeFor is the caller's BYE in the dialog that ok (our 200) set up.
func byeFor(port int, ok string, cseq int) string {
	return fmt.Sprintf("BYE sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKbye%d\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: %d BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
		port, time.Now().UnixNano(), header(ok, "To")[0], header(ok, "Call-ID")[0], cseq)
}

// TestSessionRefreshAndGlare: with refresher=uas we refresh the session with a re-INVITE at half
// the interval (RFC 4028 §10); a re-INVITE from the peer while ours is pending gets 491
// (RFC 3261 §14.2); our re-INVITE's 2xx is ACKed.
func TestSessionRefreshAndGlare(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
		o.MinSE = time.Second
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "Supported: timer\nSession-Expires: 2;refresher=uas\n", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	if se := header(ok, "Session-Expires"); len(se) != 1 || se[0] != "2;refresher=uas" {
		t.Fatalf("Session-Expires = %q", se)
	}
	p.send(ackFor(g.port(), ok, 1))
	reinv := p.recvUntil(4*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if reinv == "" {
		t.Fatal("no refresh re-INVITE")
	}
	if !strings.Contains(reinv, "m=audio ") {
		t.Errorf("refresh re-INVITE without our offer:\n%s", reinv)
	}
	// Glare: our own re-INVITE in the same dialog while theirs is pending.
	mine := fmt.Sprintf("INVITE sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKglare%d\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: 2 INVITE\nContact: <sip:bob@127.0.0.1:LPORT>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		g.port(), time.Now().UnixNano(), header(ok, "To")[0], header(ok, "Call-ID")[0], len(strings.ReplaceAll(pcmuOffer, "\n", "\r\n")), pcmuOffer)
	p.send(mine)
	if r := p.recvUntil(3*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 ") && strings.Contains(m, "CSeq: 2 INVITE") }); statusCode(r) != 491 {
		t.Fatalf("re-INVITE during ours: %d, want 491\n%s", statusCode(r), r)
	}
	// Answer their refresh; expect the ACK.
	res := "SIP/2.0 200 OK\nVia: " + strings.Join(header(reinv, "Via"), "\nVia: ") + "\nFrom: " + header(reinv, "From")[0] + "\nTo: " + header(reinv, "To")[0] +
		"\nCall-ID: " + header(reinv, "Call-ID")[0] + "\nCSeq: " + header(reinv, "CSeq")[0] + "\nContact: <sip:bob@127.0.0.1:LPORT>\nContent-Type: application/sdp\n" +
		fmt.Sprintf("Content-Length: %d\n\n%s", len(strings.ReplaceAll(pcmuOffer, "\n", "\r\n")), pcmuOffer)
	p.send(res)
	if ack := p.recvUntil(3*time.Second, func(m string) bool { return strings.HasPrefix(m, "ACK ") }); ack == "" {
		t.Fatal("no ACK for the refresh 2xx")
	}
}

// TestMediaTimeoutHangsUp: an answered call that never receives RTP is ended with BYE after the
// configured media timeout.
func TestMediaTimeoutHangsUp(t *testing.T) {
	evs, _ := mediaTimeoutCall(t)
	if e := lastOf(evs, callevent.EventEnded); e.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s", e.Outcome)
	}
}

// mediaTimeoutCall answers a call that then sends no RTP, awaits the gateway's BYE after the
// 1 s media timeout, and returns the call's events and our 200.
func mediaTimeoutCall(t *testing.T) (evs []callevent.Event, ok string) {
	t.Helper()
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
		o.MediaTimeout = time.Second
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	ok = p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	p.send(ackFor(g.port(), ok, 1))
	if bye := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") }); bye == "" {
		t.Fatal("no BYE after the media timeout")
	}
	return g.sink.waitEnded(t, 10*time.Second), ok
}

// TestDrainWaitsForLiveCalls: after StopAccepting, Drain returns only once the live call ended;
// meanwhile new INVITEs get 503.
func TestDrainWaitsForLiveCalls(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	p.send(ackFor(g.port(), ok, 1))
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := g.s.Drain(short); err == nil {
		t.Fatal("Drain returned while a call was live")
	}
	if res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 3*time.Second); statusCode(res) != 503 {
		t.Fatalf("INVITE while draining: %d, want 503", statusCode(res))
	}
	// The caller hangs up; the drain completes.
	p.send(byeFor(g.port(), ok, 2))
	long, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := g.s.Drain(long); err != nil {
		t.Fatalf("Drain after the call ended: %v", err)
	}
	if g.s.ActiveCalls() != 0 {
		t.Errorf("active calls = %d", g.s.ActiveCalls())
	}
}

// TestBadReinviteKeepsCall: a re-INVITE we cannot accept gets 488 and leaves the session as it
// was (RFC 3261 §14.2): a later BYE still finds the call.
func TestBadReinviteKeepsCall(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	p.send(ackFor(g.port(), ok, 1))
	g729 := strings.Replace(pcmuOffer, "RTP/AVP 0", "RTP/AVP 18", 1)
	reinv := fmt.Sprintf("INVITE sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKre%d\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: 2 INVITE\nContact: <sip:bob@127.0.0.1:LPORT>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		g.port(), time.Now().UnixNano(), header(ok, "To")[0], header(ok, "Call-ID")[0], len(strings.ReplaceAll(g729, "\n", "\r\n")), g729)
	p.send(reinv)
	if r := p.recvUntil(3*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 4") }); statusCode(r) != 488 {
		t.Fatalf("re-INVITE without a common codec: %d, want 488", statusCode(r))
	}
	p.send(byeFor(g.port(), ok, 3))
	if r := p.recvUntil(3*time.Second, func(m string) bool { return strings.Contains(m, "CSeq: 3 BYE") }); statusCode(r) != 200 {
		t.Fatalf("BYE after the failed re-INVITE: %d, want 200", statusCode(r))
	}
	if e := lastOf(g.sink.waitEnded(t, 10*time.Second), callevent.EventEnded); e.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s", e.Outcome)
	}
}

// TestCancelGives487WithOurTag: CANCEL of a ringing call gets 200, the INVITE 487 with the same
// To tag as our 180 (RFC 3261 §8.2.6.2, §9.2), and the call ends abandoned.
func TestCancelGives487WithOurTag(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			_ = c.Ringing()
			<-ctx.Done()
			return nil
		})}}
	})
	p := newUDPPeer(t, g.port())
	inv := rawInvite("+15550197", "", pcmuOffer)
	p.send(inv)
	ringing := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 180") })
	if ringing == "" {
		t.Fatal("no 180")
	}
	var via, callID string
	for _, l := range strings.Split(inv, "\n") {
		if strings.HasPrefix(l, "Via: ") {
			via = strings.TrimPrefix(l, "Via: ")
		}
		if strings.HasPrefix(l, "Call-ID: ") {
			callID = strings.TrimPrefix(l, "Call-ID: ")
		}
	}
	p.send("CANCEL sip:+15550197@127.0.0.1 SIP/2.0\nVia: " + via + "\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: <sip:+15550197@127.0.0.1>\nCall-ID: " + callID + "\nCSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n")
	final := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 487") })
	if final == "" {
		t.Fatal("no 487")
	}
	if header(final, "To")[0] != header(ringing, "To")[0] {
		t.Errorf("487 To %q differs from 180 To %q", header(final, "To")[0], header(ringing, "To")[0])
	}
	if e := lastOf(g.sink.waitEnded(t, 10*time.Second), callevent.EventEnded); e.Outcome != callevent.OutcomeAbandoned {
		t.Errorf("outcome = %s", e.Outcome)
	}
}

// respondTo builds a response to a request received by udpPeer.
func respondTo(req string, code int, reason, extra string) string {
	to := header(req, "To")[0]
	if !strings.Contains(to, "tag=") {
		to += ";tag=peer1"
	}
	return fmt.Sprintf("SIP/2.0 %d %s\nVia: %s\nFrom: %s\nTo: %s\nCall-ID: %s\nCSeq: %s\n%sContent-Length: 0\n\n",
		code, reason, strings.Join(header(req, "Via"), "\nVia: "), header(req, "From")[0], to, header(req, "Call-ID")[0], header(req, "CSeq")[0], extra)
}

// TestOriginateProxyAuthThenBusy: the carrier challenges with 407; we retry with
// Proxy-Authorization (valid for the trunk's credentials, new CSeq) and relay its 486 as a
// no_answer outcome.
func TestOriginateProxyAuthThenBusy(t *testing.T) {
	p := newUDPPeer(t, 0) // the carrier; it learns the gateway's port below
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", p.port)
		o.Trunks[0].OutboundUsername, o.Trunks[0].OutboundPassword = "trunkuser", "trunkpass"
	})
	p.gw.Port = g.port()
	_, err := g.s.Originate(context.Background(), OriginateOptions{Trunk: "carrier", Number: "+15557654321", Line: "+15550197",
		Answered: func(ctx context.Context, c *Call, leg *OutboundLeg) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	inv := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("no INVITE")
	}
	if from := header(inv, "From")[0]; !strings.Contains(from, "sip:+15550197@") {
		t.Errorf("caller ID = %q, want the line", from)
	}
	p.send(respondTo(inv, 407, "Proxy Authentication Required", "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"n0nce\", qop=\"auth\"\n"))
	inv2 := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv2 == "" {
		t.Fatal("no INVITE with credentials")
	}
	if header(inv2, "CSeq")[0] != "2 INVITE" {
		t.Errorf("retried CSeq = %q, want 2 INVITE", header(inv2, "CSeq")[0])
	}
	pa := header(inv2, "Proxy-Authorization")
	if len(pa) != 1 || !verifyDigest(parseDigest(pa[0]), "INVITE", "trunkuser", "trunkpass", "carrier", func(n string) bool { return n == "n0nce" }) {
		t.Fatalf("Proxy-Authorization does not verify: %q", pa)
	}
	p.send(respondTo(inv2, 486, "Busy Here", ""))
	evs := g.sink.waitEnded(t, 10*time.Second)
	if e := lastOf(evs, callevent.EventEnded); e.Outcome != callevent.OutcomeNoAnswer {
		t.Errorf("outcome = %s, want no_answer", e.Outcome)
	}
}

// TestRetransmitted2xxToOurInviteIsAckedAgain: a far end whose ACK was lost (or came late on a
// loaded machine) retransmits its 2xx, and every retransmission must be ACKed again (RFC 3261
// §13.2.2.4; the INVITE client transaction stays in "Accepted" for Timer M, RFC 6026 §7.2).
// Before the fix the transaction was terminated at the first 2xx: the retransmissions were
// dropped unanswered ("Unhandled sip response") and the far end, never ACKed, hung up.
func TestRetransmitted2xxToOurInviteIsAckedAgain(t *testing.T) {
	p := newUDPPeer(t, 0) // the carrier's far end; it learns the gateway's port below
	g := startGateway(t, func(o *Options) { o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", p.port) })
	p.gw.Port = g.port()
	_, err := g.s.Originate(context.Background(), OriginateOptions{Trunk: "carrier", Number: "+15557654321", Line: "+15550197",
		Answered: func(ctx context.Context, c *Call, leg *OutboundLeg) error { <-ctx.Done(); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	inv := p.recvUntil(10*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("no INVITE to the trunk")
	}
	sdp := strings.ReplaceAll(pcmuOffer, "\n", "\r\n")
	ok := strings.Replace(respondTo(inv, 200, "OK", "Contact: <sip:far@127.0.0.1:LPORT>\nContent-Type: application/sdp\n"),
		"Content-Length: 0\n\n", fmt.Sprintf("Content-Length: %d\n\n%s", len(sdp), sdp), 1)
	isAck := func(m string) bool { return strings.HasPrefix(m, "ACK ") }
	p.send(ok)
	if p.recvUntil(10*time.Second, isAck) == "" {
		t.Fatal("no ACK for the 200")
	}
	for i := 1; i <= 3; i++ { // as if each ACK had been lost
		p.send(ok)
		if p.recvUntil(10*time.Second, isAck) == "" {
			t.Fatalf("retransmission %d of the 200 was not ACKed", i)
		}
	}
}
