package sip

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpExchangeFrom is udpExchange sent from the loopback address src (127.0.0.2 …): another
// host as far as the gateway can tell, e.g. an attacker spoofing a trunk's network.
func udpExchangeFrom(t *testing.T, src string, port int, msg string, wait time.Duration) string {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lp := c.LocalAddr().(*net.UDPAddr).Port
	msg = strings.ReplaceAll(msg, "LPORT", strconv.Itoa(lp))
	msg = strings.ReplaceAll(msg, "127.0.0.1:"+strconv.Itoa(lp), src+":"+strconv.Itoa(lp))
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(wait)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		if r := string(buf[:n]); !strings.HasPrefix(r, "SIP/2.0 1") {
			return r
		}
	}
}

// uniqueInvite is rawInvite with a Call-ID and branch of its own (rawInvite's come from the
// clock, which two INVITEs built in the same tick would share).
func uniqueInvite(to, tag string) string {
	msg := rawInvite(to, "", pcmuOffer)
	msg = strings.Replace(msg, "Call-ID: ", "Call-ID: "+tag+"-", 1)
	return strings.Replace(msg, "branch=z9hG4bK", "branch=z9hG4bK"+tag, 1)
}

// A carrier's network is trusted by UDP source alone, which anyone can spoof: a flood of
// INVITEs "from the trunk" beyond its calls_per_second is answered 503 with Retry-After and
// counted, and calls get through again once the flood is under the limit.
func TestSpoofedTrunkInviteFloodOverCallsPerSecondGets503RetryAfter(t *testing.T) {
	var served sync.WaitGroup
	g := startGateway(t, func(o *Options) {
		o.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, CallsPerSecond: 2}}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(context.Context, *Call) error {
			served.Add(1)
			defer served.Done()
			return &StatusError{Code: 486, Reason: "Busy Here"}
		})}}
	})
	const flood = 20
	limited, through := 0, 0
	start := time.Now()
	for i := range flood {
		res := udpExchangeFrom(t, "127.0.0.2", g.port(), uniqueInvite("+15550197", fmt.Sprint("flood", i)), 5*time.Second)
		switch statusCode(res) {
		case 503:
			if !strings.Contains(res, "Retry-After: 1\r\n") {
				t.Fatalf("503 without Retry-After: 1\n%s", res)
			}
			limited++
		case 486:
			through++
		default:
			t.Fatalf("flood INVITE %d: %d\n%s", i, statusCode(res), res)
		}
	}
	// A bucket of 2 refilled at 2/s lets 2 + 2*elapsed through.
	if most := 2 + int(2*time.Since(start).Seconds()) + 1; through > most || limited < flood-most {
		t.Fatalf("%d of %d flood INVITEs reached the line, %d got 503; want at most %d through", through, flood, limited, most)
	}
	if v := g.counter("switchboard_security_events_total", "type", "rate_limited"); v != float64(limited) {
		t.Errorf("rate_limited = %v, want %d", v, limited)
	}
	// Under the limit again, the carrier's real call (another source in its network) gets in.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		res := udpExchangeFrom(t, "127.0.0.3", g.port(), uniqueInvite("+15550197", fmt.Sprint("legit", i)), 5*time.Second)
		if statusCode(res) == 486 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call admitted within 5 s of the flood: %d\n%s", statusCode(res), res)
		}
		time.Sleep(250 * time.Millisecond)
	}
	served.Wait()
}

// The trunk's max_calls bounds its concurrent calls below the gateway's.
func TestTrunkOverItsMaxCallsGets503WithRetryAfter(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	g := startGateway(t, func(o *Options) {
		o.MaxCalls = 10
		o.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MaxCalls: 1}}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			_ = c.Ringing()
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return &StatusError{Code: 480, Reason: "Temporarily Unavailable"}
		})}}
	})
	// The first call rings and is held: no final answer (udpExchangeFrom skips 1xx).
	if res := udpExchangeFrom(t, "127.0.0.2", g.port(), uniqueInvite("+15550197", "a"), 500*time.Millisecond); res != "" {
		t.Fatalf("first call: %d\n%s", statusCode(res), res)
	}
	res := udpExchangeFrom(t, "127.0.0.3", g.port(), uniqueInvite("+15550197", "b"), 5*time.Second)
	if statusCode(res) != 503 || !strings.Contains(res, "Retry-After: 30") {
		t.Fatalf("second call over the trunk's max_calls: want 503 with Retry-After\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "rate_limited"); v != 1 {
		t.Errorf("rate_limited = %v, want 1", v)
	}
}

// A spoofed INVITE is answered to an address that never ACKs. Its call must give back the
// max_calls slot within AnswerAckTimeout (plus a short BYE), not after 64*T1 + 64*T1.
func TestSpoofedInviteNeverAckedReleasesItsSlotAfterShortAckWait(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.MaxCalls = 1
		o.T1 = 100 * time.Millisecond // 64*T1 = 6.4 s
		o.AnswerAckTimeout = time.Second
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		})}}
	})
	spoofed := udpExchangeFrom(t, "127.0.0.2", g.port(), uniqueInvite("+15550197", "spoof"), 5*time.Second)
	if statusCode(spoofed) != 200 {
		t.Fatalf("spoofed INVITE: %d, want 200\n%s", statusCode(spoofed), spoofed)
	}
	sent := time.Now()
	// Never ACKed. The slot is taken now…
	if res := udpExchangeFrom(t, "127.0.0.3", g.port(), uniqueInvite("+15550197", "early"), 5*time.Second); statusCode(res) != 503 {
		t.Fatalf("a second call while the first holds max_calls: %d, want 503\n%s", statusCode(res), res)
	}
	// …and free again well before 64*T1.
	for i := 0; ; i++ {
		res := udpExchangeFrom(t, "127.0.0.3", g.port(), uniqueInvite("+15550197", fmt.Sprint("later", i)), 5*time.Second)
		if statusCode(res) == 200 {
			break
		}
		if time.Since(sent) > 4*time.Second {
			t.Fatalf("slot still held %s after the unACKed answer: %d\n%s", time.Since(sent).Round(time.Millisecond), statusCode(res), res)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An auth-only trunk (credentials, no source networks) takes calls from any source that
// proves the credentials, but such sources stay under the per-source rate limit: an
// unauthenticated INVITE flood from 127.0.0.2 is challenged, then dropped.
func TestAuthOnlyTrunkTakesDigestCallsButItsSourcesStayRateLimited(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Trunks = []Trunk{{Name: "cloud", Username: "cloud", Password: "s3cret"}}
		o.RateLimit = RateLimit{PerSecond: 1, Burst: 3}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(context.Context, *Call) error {
			return &StatusError{Code: 486, Reason: "Busy Here"}
		})}}
	})
	res := udpExchangeFrom(t, "127.0.0.2", g.port(), uniqueInvite("+15550197", "noauth"), 5*time.Second)
	if statusCode(res) != 401 || !strings.Contains(res, "WWW-Authenticate: Digest") {
		t.Fatalf("INVITE without credentials to an auth-only trunk: %d, want 401\n%s", statusCode(res), res)
	}
	nonce := between(res, `nonce="`, `"`)
	uri := "sip:+15550197@127.0.0.1"
	ha1 := md5hex("cloud:switchboard:s3cret")
	resp := md5hex(ha1 + ":" + nonce + ":" + md5hex("INVITE:"+uri))
	auth := fmt.Sprintf("Authorization: Digest username=\"cloud\", realm=\"switchboard\", nonce=\"%s\", uri=\"%s\", response=\"%s\"\n", nonce, uri, resp)
	msg := strings.Replace(uniqueInvite("+15550197", "auth"), "Max-Forwards: 70\n", "Max-Forwards: 70\n"+auth, 1)
	if res := udpExchangeFrom(t, "127.0.0.2", g.port(), msg, 5*time.Second); statusCode(res) != 486 {
		t.Fatalf("INVITE with the trunk's credentials: %d, want 486 from the line\n%s", statusCode(res), res)
	}
	// The source is no trunk's: the per-source bucket (burst 3, two used) drops the rest.
	dropped := 0
	for i := range 6 {
		if res := udpExchangeFrom(t, "127.0.0.2", g.port(), uniqueInvite("+15550197", fmt.Sprint("f", i)), 300*time.Millisecond); res == "" {
			dropped++
		}
	}
	if dropped < 4 {
		t.Fatalf("%d of 6 flood INVITEs dropped by the per-source limit, want at least 4", dropped)
	}
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

// openTCP opens n connections from src to the gateway's SIP TCP port.
func openTCP(t *testing.T, src string, port, n int) []net.Conn {
	t.Helper()
	var out []net.Conn
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	for range n {
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
		t.Cleanup(func() { c.Close() })
	}
	return out
}

// closedWithin reports whether the peer closed c within d (a read returns EOF or a reset).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(max(d, time.Millisecond)))
	buf := make([]byte, 64)
	for range 100 { // data (a keep-alive pong) is read past
		_, err := c.Read(buf)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false
		}
		if err != nil {
			return true
		}
	}
	return false
}

// An idle TCP connection flood to the SIP port: connections beyond the per-source and total
// caps are closed at once, the rest once they stay silent past the handshake deadline, and
// meanwhile a call over UDP still gets its RTP port.
func TestIdleTCPConnectionFloodIsCappedAndTimedOut(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Conn.Max, o.Conn.PerSource, o.Conn.HandshakeTimeout, o.Conn.IdleTimeout = 6, 4, 2*time.Second, 3*time.Second
		o.AnswerAckTimeout = 500 * time.Millisecond // the call below is never ACKed
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			return c.Answer(ctx)
		})}}
	})
	port := int(g.s.Addr("tcp").Port())
	flood := openTCP(t, "127.0.0.2", port, 10)
	other := openTCP(t, "127.0.0.3", port, 4)
	// kept returns the connections the gateway did not close within 300 ms (all waited at once).
	kept := func(cs []net.Conn) (open []net.Conn) {
		until := time.Now().Add(300 * time.Millisecond)
		for _, c := range cs {
			if !closedWithin(c, time.Until(until)) {
				open = append(open, c)
			}
		}
		return open
	}
	openFlood, openOther := kept(flood), kept(other)
	if len(openFlood) != 4 {
		t.Errorf("127.0.0.2 kept %d of 10 connections, want its per-source cap 4", len(openFlood))
	}
	if len(openOther) != 2 {
		t.Errorf("127.0.0.3 kept %d of 4 connections, want 2 (total cap 6)", len(openOther))
	}
	if v := g.counter("switchboard_security_events_total", "type", "connection_limited"); v != 8 {
		t.Errorf("connection_limited = %v, want 8", v)
	}
	// One connection speaks (an RFC 5626 keep-alive), so it is held to the idle timeout.
	if len(openOther) > 0 {
		if _, err := openOther[0].Write([]byte("\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}

	// The flood holds no RTP ports hostage: a call over UDP is answered with media.
	res := udpExchangeFrom(t, "127.0.0.4", g.port(), uniqueInvite("+15550197", "call"), 5*time.Second)
	if statusCode(res) != 200 || !strings.Contains(res, "m=audio ") || strings.Contains(res, "m=audio 0 ") {
		t.Fatalf("call during the flood: %d\n%s", statusCode(res), res)
	}

	// The silent ones are closed at the handshake deadline, the speaking one at its idle timeout.
	for i, c := range append(openFlood, openOther...) {
		if !closedWithin(c, 5*time.Second) {
			t.Errorf("connection %d still open 5 s after its deadline", i)
		}
	}
	// Closed connections give their places back.
	again := kept(openTCP(t, "127.0.0.2", port, 4))
	if len(again) != 4 {
		t.Errorf("after the timeouts 127.0.0.2 got %d of 4 connections back", len(again))
	}
}

// A TLS client that connects and never finishes its handshake is cut at the handshake
// deadline.
func TestTLSHandshakeNeverFinishedIsCut(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.TLSAddr = "127.0.0.1:0"
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}, MinVersion: tls.VersionTLS12}
		o.Conn.HandshakeTimeout = time.Second
	})
	port := int(g.s.Addr("tls").Port())
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Half a ClientHello record header, then silence.
	if _, err := c.Write([]byte{0x16, 0x03}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("a stalled TLS handshake is still open after 5 s")
	}
	if e := time.Since(start); e < 500*time.Millisecond {
		t.Errorf("closed after %s, before the handshake deadline", e)
	}
}

// Connections opened and closed from several goroutines at once (the accept goroutine, sipgo's
// readers and the closers race on the counters): every place is given back.
func TestConnectionCapCountersSurviveConcurrentOpenClose(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Conn.Max, o.Conn.PerSource, o.Conn.HandshakeTimeout, o.Conn.IdleTimeout = 16, 8, 200*time.Millisecond, time.Second
	})
	port := int(g.s.Addr("tcp").Port())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+w%2))}, Timeout: 2 * time.Second}
			for i := range 50 {
				c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					continue
				}
				if i%3 == 0 {
					_, _ = c.Write([]byte("\r\n\r\n"))
				}
				_ = c.Close()
			}
		}()
	}
	wg.Wait()
	var cl *connListener
	g.s.mu.Lock()
	for _, l := range g.s.listeners {
		if c, ok := l.(*connListener); ok {
			cl = c
		}
	}
	g.s.mu.Unlock()
	if cl == nil {
		t.Fatal("the TCP listener is not limited")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl.mu.Lock()
		total, sources := cl.total, len(cl.per)
		cl.mu.Unlock()
		if total == 0 && sources == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after every connection closed: total %d, sources %d; want 0", total, sources)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rate_limit.limit_trunks: a flood from a trunk's (spoofable) network is dropped by the
// per-source bucket when the key is on, and passes when it is off.
func TestLimitTrunksPutsTrunkSourcesUnderThePerSourceLimit(t *testing.T) {
	options := strings.Replace(strings.Replace(rawInvite("+15550197", "", ""), "INVITE sip", "OPTIONS sip", 1), "1 INVITE", "1 OPTIONS", 1)
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("limit_trunks=", on), func(t *testing.T) {
			g := startGateway(t, func(o *Options) {
				o.RateLimit = RateLimit{PerSecond: 1, Burst: 2, LimitTrunks: on}
			})
			answered := 0
			for i := range 8 {
				msg := strings.Replace(options, "Call-ID: ", fmt.Sprintf("Call-ID: o%d-", i), 1)
				if udpExchangeFrom(t, "127.0.0.2", g.port(), msg, 300*time.Millisecond) != "" {
					answered++
				}
			}
			switch {
			case !on && answered != 8:
				t.Errorf("limit_trunks off: %d of 8 OPTIONS from the trunk answered, want all", answered)
			case on && answered > 4:
				t.Errorf("limit_trunks on: %d of 8 OPTIONS from the trunk answered, want at most 4 (burst 2)", answered)
			}
		})
	}
}
