package sip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// rawInvite is an INVITE from 127.0.0.1 (LPORT is replaced with the sender's port).
func rawInvite(to string, extra string, body string) string {
	msg := "INVITE sip:" + to + "@127.0.0.1 SIP/2.0\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bK" + fmt.Sprint(time.Now().UnixNano()) + "\n" +
		"From: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\n" +
		"To: <sip:" + to + "@127.0.0.1>\n" +
		"Call-ID: " + fmt.Sprint(time.Now().UnixNano()) + "@test\n" +
		"CSeq: 1 INVITE\n" +
		"Contact: <sip:bob@127.0.0.1:LPORT>\n" +
		"Max-Forwards: 70\n" + extra
	if body != "" {
		body = strings.ReplaceAll(body, "\r\n", "\n")
		msg += "Content-Type: application/sdp\n" + fmt.Sprintf("Content-Length: %d\n\n", len(strings.ReplaceAll(body, "\n", "\r\n"))) + body
	} else {
		msg += "Content-Length: 0\n\n"
	}
	return msg
}

const pcmuOffer = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 40000 RTP/AVP 0\n"

func TestAdmission(t *testing.T) {
	block := TargetFunc(func(_ctx context.Context, c *Call) error {
		return &StatusError{Code: 486, Reason: "Busy Here", Outcome: "no_answer"}
	})
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: block}}
	})
	port := g.port()
	tests := []struct {
		name string
		msg  string
		want int
		hdr  string
	}{
		{"unknown line gets 404", rawInvite("+15559999", "", pcmuOffer), 404, ""},
		{"known line, target rejects busy: 486 relayed", rawInvite("15550197", "", pcmuOffer), 486, ""},
		{"no common codec gets 488", rawInvite("+15550197", "", strings.Replace(pcmuOffer, "RTP/AVP 0", "RTP/AVP 18", 1)), 488, ""},
		{"Require: 100rel gets 420 with Unsupported", rawInvite("+15550197", "Require: 100rel\n", pcmuOffer), 420, "Unsupported: 100rel"},
		{"Session-Expires below Min-SE gets 422", rawInvite("+15550197", "Session-Expires: 30\nSupported: timer\n", pcmuOffer), 422, "Min-SE: 90"},
		{"OPTIONS gets 200 with Allow", strings.Replace(strings.Replace(rawInvite("+15550197", "", ""), "INVITE sip", "OPTIONS sip", 1), "1 INVITE", "1 OPTIONS", 1), 200, "Allow: INVITE"},
		{"unsupported method gets 405 with Allow", strings.Replace(strings.Replace(rawInvite("+15550197", "", ""), "INVITE sip", "SUBSCRIBE sip", 1), "1 INVITE", "1 SUBSCRIBE", 1), 405, "Allow: INVITE"},
		{"Max-Forwards 0 gets 483 (RFC 3261 §16.3, carried across the B2BUA)", strings.Replace(rawInvite("+15550197", "", pcmuOffer), "Max-Forwards: 70", "Max-Forwards: 0", 1), 483, ""},
		{"BYE outside a dialog gets 481", strings.Replace(strings.Replace(rawInvite("+15550197", "", ""), "INVITE sip", "BYE sip", 1), "1 INVITE", "1 BYE", 1), 481, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := udpExchange(t, port, tt.msg, 5*time.Second)
			if got := statusCode(res); got != tt.want {
				t.Fatalf("status = %d, want %d\n%s", got, tt.want, res)
			}
			if tt.hdr != "" && !strings.Contains(res, tt.hdr) {
				t.Errorf("response lacks %q:\n%s", tt.hdr, res)
			}
		})
	}
}

func TestNotATrunkGets403AndNoDialOut(t *testing.T) {
	dialled := make(chan struct{}, 1)
	g := startGateway(t, func(o *Options) {
		o.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(_ context.Context, c *Call) error { dialled <- struct{}{}; return nil })}}
	})
	res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second)
	if statusCode(res) != 403 {
		t.Fatalf("status = %d, want 403\n%s", statusCode(res), res)
	}
	select {
	case <-dialled:
		t.Fatal("a call from a non-trunk source reached a target")
	default:
	}
	if v := g.counter("switchboard_security_events_total", "type", "acl_reject"); v != 1 {
		t.Errorf("acl_reject = %v", v)
	}
}

func TestOverMaxCallsGets503WithRetryAfter(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	started := make(chan struct{}, 1)
	g := startGateway(t, func(o *Options) {
		o.MaxCalls = 1
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			_ = c.Ringing()
			started <- struct{}{}
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return &StatusError{Code: 480, Reason: "Temporarily Unavailable"}
		})}}
	})
	first := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second)
	if statusCode(first) != 180 {
		t.Fatalf("first call: %d, want 180\n%s", statusCode(first), first)
	}
	<-started
	res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second)
	if statusCode(res) != 503 || !strings.Contains(res, "Retry-After: 30") {
		t.Fatalf("second call: want 503 with Retry-After\n%s", res)
	}
}

func TestDrainingGets503(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: BridgeTo("sip:desk@127.0.0.1:9")}}
	})
	if !g.s.Ready() {
		t.Fatal("not ready after Start")
	}
	g.s.StopAccepting()
	if g.s.Ready() {
		t.Error("Ready while draining")
	}
	res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second)
	if statusCode(res) != 503 {
		t.Fatalf("status = %d, want 503\n%s", statusCode(res), res)
	}
}

func TestDigestAuthChallenge(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].Username, o.Trunks[0].Password = "carrier", "secret"
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(_ context.Context, c *Call) error {
			return &StatusError{Code: 486, Reason: "Busy Here"}
		})}}
	})
	res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second)
	if statusCode(res) != 401 || !strings.Contains(res, "WWW-Authenticate: Digest") {
		t.Fatalf("want 401 challenge\n%s", res)
	}
	var nonce string
	for _, line := range strings.Split(res, "\r\n") {
		if strings.HasPrefix(line, "WWW-Authenticate:") {
			nonce = parseDigest(strings.TrimPrefix(line, "WWW-Authenticate: "))["nonce"]
		}
	}
	uri := "sip:+15550197@127.0.0.1"
	resp := md5hex(md5hex("carrier:switchboard:secret") + ":" + nonce + ":" + md5hex("INVITE:"+uri))
	auth := fmt.Sprintf("Authorization: Digest username=\"carrier\", realm=\"switchboard\", nonce=\"%s\", uri=\"%s\", response=\"%s\"\n", nonce, uri, resp)
	res = udpExchange(t, g.port(), rawInvite("+15550197", auth, pcmuOffer), 5*time.Second)
	if statusCode(res) != 486 {
		t.Fatalf("with credentials: want the target's 486\n%s", res)
	}
	bad := strings.Replace(auth, resp, strings.Repeat("0", 32), 1)
	res = udpExchange(t, g.port(), rawInvite("+15550197", bad, pcmuOffer), 5*time.Second)
	if statusCode(res) != 401 {
		t.Fatalf("wrong credentials: want 401\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 1 {
		t.Errorf("auth_failure = %v", v)
	}
}

func TestScannerDroppedSilently(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
	})
	msg := strings.Replace(rawInvite("100", "User-Agent: friendly-scanner\n", ""), "INVITE sip", "OPTIONS sip", 1)
	msg = strings.Replace(msg, "1 INVITE", "1 OPTIONS", 1)
	if res := udpExchange(t, g.port(), msg, 500*time.Millisecond); res != "" {
		t.Fatalf("scanner got an answer:\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "scanner_drop"); v != 1 {
		t.Errorf("scanner_drop = %v", v)
	}
}

func TestRateLimitPerSource(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
		o.RateLimit = RateLimit{PerSecond: 0.001, Burst: 3}
	})
	opts := strings.Replace(strings.Replace(rawInvite("100", "", ""), "INVITE sip", "OPTIONS sip", 1), "1 INVITE", "1 OPTIONS", 1)
	answered := 0
	for i := 0; i < 6; i++ {
		msg := strings.Replace(opts, "branch=z9hG4bK", fmt.Sprintf("branch=z9hG4bK%d", i), 1)
		if res := udpExchange(t, g.port(), msg, 300*time.Millisecond); statusCode(res) == 200 {
			answered++
		}
	}
	if answered != 3 {
		t.Errorf("answered %d of 6 with a burst of 3", answered)
	}
	if v := g.counter("switchboard_security_events_total", "type", "rate_limited"); v != 3 {
		t.Errorf("rate_limited = %v", v)
	}
}

func FuzzParseDigest(f *testing.F) {
	f.Add(`Digest username="carrier", realm="switchboard", nonce="abc.def", uri="sip:x", response="0123"`)
	f.Add(`Digest realm=x, qop="auth,auth-int", nonce=1`)
	f.Add(`Basic abc`)
	f.Add(`Digest a="unterminated`)
	f.Fuzz(func(t *testing.T, h string) {
		c := parseDigest(h)
		_ = trunkDigestOK(c, Trunk{Username: "u", Password: "p", Realm: "r"}, "r", "INVITE")
	})
}
