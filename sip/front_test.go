package sip

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseFrontSource(t *testing.T) {
	good := []struct {
		in, tp, addr string
	}{
		{"udp 203.0.113.7:5060", "udp", "203.0.113.7:5060"},
		{"tcp 127.0.0.2:1", "tcp", "127.0.0.2:1"},
		{"tls [2001:db8::7]:5061", "tls", "[2001:db8::7]:5061"},
		{"wss [::ffff:192.0.2.1]:443", "wss", "192.0.2.1:443"}, // IPv4-mapped: unmapped
		{"sctp 10.0.0.1:65535", "sctp", "10.0.0.1:65535"},
		{"ws 10.0.0.1:80", "ws", "10.0.0.1:80"},
	}
	for _, c := range good {
		fs, err := ParseFrontSource(c.in)
		if err != nil || fs.Transport != c.tp || fs.Addr.String() != c.addr {
			t.Errorf("ParseFrontSource(%q) = %+v, %v; want %s %s", c.in, fs, err, c.tp, c.addr)
		}
	}
	bad := []string{
		"", "udp", "udp ", " udp 192.0.2.1:5060", "udp 192.0.2.1:5060 ", "udp  192.0.2.1:5060",
		"UDP 192.0.2.1:5060", "http 192.0.2.1:5060", "udp\t192.0.2.1:5060",
		"udp 192.0.2.1", "udp 192.0.2.1:0", "udp 192.0.2.1:65536", "udp 192.0.2.1:-1", "udp 192.0.2.01:5060",
		"udp 2001:db8::7:5060", "udp [2001:db8::7]", "udp [fe80::1%eth0]:5060",
		"udp 0.0.0.0:5060", "udp [::]:5060", "udp 224.0.0.1:5060", "udp 255.255.255.255:5060", "udp [ff02::1]:5060",
		"udp host.example.com:5060", "udp 192.0.2.1:5060, udp 198.51.100.1:5060", "udp 192.0.2.1:5060\x00",
		"udp 192.0.2.1:5060;received=1", strings.Repeat("u", 70),
	}
	for _, in := range bad {
		if fs, err := ParseFrontSource(in); err == nil {
			t.Errorf("ParseFrontSource(%q) = %+v, want an error", in, fs)
		}
	}
}

// FuzzParseFrontSource: the parser never panics, and what it accepts is a sender's address
// with a known transport that reads back the same.
func FuzzParseFrontSource(f *testing.F) {
	for _, s := range []string{"udp 203.0.113.7:5060", "tls [2001:db8::7]:5061", "tcp 127.0.0.1:0", "udp [::ffff:1.2.3.4]:9", "x y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fs, err := ParseFrontSource(in)
		if err != nil {
			return
		}
		a := fs.Addr.Addr()
		if len(in) > maxSourceHeader || !fs.Addr.IsValid() || fs.Addr.Port() == 0 || a.Is4In6() || a.Zone() != "" ||
			a.IsUnspecified() || a.IsMulticast() {
			t.Fatalf("ParseFrontSource(%q) accepted %+v", in, fs)
		}
		back, err := ParseFrontSource(fs.Transport + " " + fs.Addr.String())
		if err != nil || back != fs {
			t.Fatalf("ParseFrontSource(%q) = %+v does not read back: %+v, %v", in, fs, back, err)
		}
	})
}

// frontGateway is a gateway behind a trusted front at 127.0.0.4 whose only trunk is the
// carrier at 127.0.0.3 (127.0.0.2 plays the attacker); its JSON log lines are kept.
func frontGateway(t *testing.T, mod func(*Options)) (*testGateway, *securityLog) {
	t.Helper()
	sl := &securityLog{}
	g := startGateway(t, func(o *Options) {
		o.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}}
		o.TrustedFronts = []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32")}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(context.Context, *Call) error {
			return &StatusError{Code: 486, Reason: "Busy Here", Outcome: "no_answer"}
		})}}
		o.Logger = slog.New(slog.NewJSONHandler(sl, &slog.HandlerOptions{Level: slog.LevelInfo}))
		if mod != nil {
			mod(o)
		}
	})
	return g, sl
}

// securityLog collects a gateway's JSON log for the test to read its security events.
type securityLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *securityLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// events returns the "sip: security event" lines of type typ.
func (l *securityLog) events(t *testing.T, typ string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if line == "" || json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m["msg"] == "sip: security event" && m["security_event"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// withSource adds an X-Switchboard-Source header naming v to an INVITE from uniqueInvite.
func withSource(msg, v string) string {
	return strings.Replace(msg, "Max-Forwards: 70\n", "Max-Forwards: 70\n"+SourceHeader+": "+v+"\n", 1)
}

// Behind a trusted front the trunk ACL sees the client the front names, not the front: the
// carrier's call through the front gets in, the attacker's is refused and its security event
// names the attacker (with the front beside it), and the front's own address is no trunk.
func TestTrustedFrontsHeaderDecidesTheTrunkACL(t *testing.T) {
	g, logs := frontGateway(t, nil)
	if res := udpExchangeFrom(t, "127.0.0.4", g.port(), withSource(uniqueInvite("+15550197", "carrier"), "udp 127.0.0.3:5060"), 5*time.Second); statusCode(res) != 486 {
		t.Fatalf("the carrier's INVITE through the front: %d, want the line's 486\n%s", statusCode(res), res)
	}
	if res := udpExchangeFrom(t, "127.0.0.4", g.port(), withSource(uniqueInvite("+15550197", "attacker"), "udp 127.0.0.2:5099"), 5*time.Second); statusCode(res) != 403 {
		t.Fatalf("the attacker's INVITE through the front: %d, want 403\n%s", statusCode(res), res)
	}
	if res := udpExchangeFrom(t, "127.0.0.4", g.port(), uniqueInvite("+15550197", "bare"), 5*time.Second); statusCode(res) != 403 {
		t.Fatalf("an INVITE of the front's own, without the header: %d, want 403 (the front is no trunk)\n%s", statusCode(res), res)
	}
	evs := logs.events(t, secACLReject)
	if len(evs) != 2 || evs[0]["source"] != "127.0.0.2:5099" || !strings.HasPrefix(fmt.Sprint(evs[0]["front"]), "127.0.0.4:") {
		t.Fatalf("acl_reject lines %v, want the first naming source 127.0.0.2:5099 and front 127.0.0.4", evs)
	}
	if _, ok := evs[1]["front"]; ok || !strings.HasPrefix(fmt.Sprint(evs[1]["source"]), "127.0.0.4:") {
		t.Errorf("the front's own INVITE logged %v, want source 127.0.0.4 and no front", evs[1])
	}
	if v := g.counter("switchboard_security_events_total", "type", secSourceSpoofed); v != 0 {
		t.Errorf("source_spoofed = %v for the trusted front's headers, want 0", v)
	}
}

// A client writing the header itself, straight to the gateway, is not believed: it is judged
// by its packet's address (403 here), counted as source_spoofed and logged under its own
// address. With no trusted front configured the header means nothing and is not counted.
func TestSourceHeaderFromAClientIsIgnoredAndCountedAsSpoofed(t *testing.T) {
	g, logs := frontGateway(t, nil)
	if res := udpExchangeFrom(t, "127.0.0.2", g.port(), withSource(uniqueInvite("+15550197", "forged"), "udp 127.0.0.3:5060"), 5*time.Second); statusCode(res) != 403 {
		t.Fatalf("a forged header from 127.0.0.2: %d, want 403 (127.0.0.2 is no trunk)\n%s", statusCode(res), res)
	}
	if v := g.counter("switchboard_security_events_total", "type", secSourceSpoofed); v != 1 {
		t.Errorf("source_spoofed = %v, want 1", v)
	}
	for _, typ := range []string{secSourceSpoofed, secACLReject} {
		evs := logs.events(t, typ)
		if len(evs) != 1 || !strings.HasPrefix(fmt.Sprint(evs[0]["source"]), "127.0.0.2:") || evs[0]["front"] != nil {
			t.Errorf("%s lines %v, want one naming source 127.0.0.2 and no front", typ, evs)
		}
	}

	off, _ := frontGateway(t, func(o *Options) { o.TrustedFronts = nil })
	if res := udpExchangeFrom(t, "127.0.0.4", off.port(), withSource(uniqueInvite("+15550197", "off"), "udp 127.0.0.3:5060"), 5*time.Second); statusCode(res) != 403 {
		t.Fatalf("the header with trusted fronts off: %d, want 403 (the packet's source decides)\n%s", statusCode(res), res)
	}
	if v := off.counter("switchboard_security_events_total", "type", secSourceSpoofed); v != 0 {
		t.Errorf("source_spoofed = %v with trusted fronts off, want 0", v)
	}
}

// A trusted front's header that does not parse strictly, or comes twice, is refused with 400
// and counted malformed: the gateway never guesses a source.
func TestTrustedFrontsMalformedHeaderIsRefused(t *testing.T) {
	g, _ := frontGateway(t, nil)
	for i, hdr := range []string{"udp 127.0.0.3", "udp 127.0.0.3:0", "UDP 127.0.0.3:5060", "udp 127.0.0.3:5060\n" + SourceHeader + ": udp 127.0.0.3:5060"} {
		msg := withSource(uniqueInvite("+15550197", fmt.Sprint("bad", i)), hdr)
		if res := udpExchangeFrom(t, "127.0.0.4", g.port(), msg, 5*time.Second); statusCode(res) != 400 {
			t.Errorf("header %q from the front: %d, want 400\n%s", hdr, statusCode(res), res)
		}
	}
	if v := g.counter("switchboard_security_events_total", "type", secMalformed); v != 4 {
		t.Errorf("malformed = %v, want 4", v)
	}
}

// The scanner filter exempts a trunk's sources: behind the front, the real source decides. A
// scanner the front relays is dropped silently and logged under its own address; the carrier
// with the same User-Agent is not.
func TestScannerBehindTrustedFrontIsJudgedByItsRealSource(t *testing.T) {
	g, logs := frontGateway(t, nil)
	scan := withSource(uniqueInvite("+15550197", "scan"), "udp 127.0.0.2:5070")
	scan = strings.Replace(scan, "Max-Forwards: 70\n", "Max-Forwards: 70\nUser-Agent: friendly-scanner\n", 1)
	if res := udpExchangeFrom(t, "127.0.0.4", g.port(), scan, 1500*time.Millisecond); res != "" {
		t.Fatalf("a scanner through the front got an answer:\n%s", res)
	}
	evs := logs.events(t, secScanner)
	if len(evs) != 1 || evs[0]["source"] != "127.0.0.2:5070" {
		t.Fatalf("scanner_drop lines %v, want one naming source 127.0.0.2:5070", evs)
	}
	carrier := withSource(uniqueInvite("+15550197", "carrierua"), "udp 127.0.0.3:5060")
	carrier = strings.Replace(carrier, "Max-Forwards: 70\n", "Max-Forwards: 70\nUser-Agent: friendly-scanner\n", 1)
	if res := udpExchangeFrom(t, "127.0.0.4", g.port(), carrier, 5*time.Second); statusCode(res) != 486 {
		t.Fatalf("the carrier (a trunk) through the front: %d, want 486\n%s", statusCode(res), res)
	}
}

// The per-source rate limit keys on the real source: one client flooding through the front
// is dropped while another client of the same front is still answered.
func TestRateLimitBehindTrustedFrontIsPerRealSource(t *testing.T) {
	g, logs := frontGateway(t, func(o *Options) {
		o.RateLimit = RateLimit{PerSecond: 0.1, Burst: 2}
	})
	options := func(tag, src string) string {
		msg := uniqueInvite("+15550197", tag)
		msg = strings.Replace(msg, "INVITE sip:", "OPTIONS sip:", 1)
		msg = strings.Replace(msg, "CSeq: 1 INVITE", "CSeq: 1 OPTIONS", 1)
		return withSource(msg, src)
	}
	answered := 0
	for i := range 5 {
		if res := udpExchangeFrom(t, "127.0.0.4", g.port(), options(fmt.Sprint("flood", i), "udp 127.0.0.2:5060"), 700*time.Millisecond); statusCode(res) == 200 {
			answered++
		}
	}
	if answered != 2 {
		t.Errorf("%d of 5 OPTIONS of 127.0.0.2 answered, want its burst of 2", answered)
	}
	if res := udpExchangeFrom(t, "127.0.0.4", g.port(), options("other", "udp 127.0.0.5:5060"), 5*time.Second); statusCode(res) != 200 {
		t.Fatalf("another client of the same front: %d, want 200 (its own bucket)\n%s", statusCode(res), res)
	}
	if evs := logs.events(t, secRateLimit); len(evs) == 0 || evs[0]["source"] != "127.0.0.2:5060" {
		t.Errorf("rate_limited lines %v, want them naming 127.0.0.2:5060", evs)
	}
}

// A trusted front carries many clients over its TCP connections: the per-source cap does not
// apply to it (the total cap still does), while any other source keeps its cap.
func TestTrustedFrontIsExemptFromThePerSourceConnectionCap(t *testing.T) {
	g, _ := frontGateway(t, func(o *Options) { o.Conn.Max, o.Conn.PerSource = 20, 2 })
	port := int(g.s.Addr("tcp").Port())
	kept := func(cs []net.Conn) int {
		n := 0
		until := time.Now().Add(300 * time.Millisecond)
		for _, c := range cs {
			if !closedWithin(c, time.Until(until)) {
				n++
			}
		}
		return n
	}
	if n := kept(openTCP(t, "127.0.0.4", port, 5)); n != 5 {
		t.Errorf("the trusted front kept %d of 5 connections, want all (no per-source cap)", n)
	}
	if n := kept(openTCP(t, "127.0.0.2", port, 5)); n != 2 {
		t.Errorf("127.0.0.2 kept %d of 5 connections, want its per-source cap 2", n)
	}
}

// The registrar's brute-force backoff keys on the real source behind a trusted front: a
// guesser the front relays is backed off, while another phone REGISTERing through the same
// front is challenged and bound (its Contact checked against its own address, not the
// front's). Before, the front itself was backed off and every phone behind it with it.
func TestRegistrarBackoffBehindTrustedFrontIsPerRealSource(t *testing.T) {
	g := startRegistrar(t, func(o *Options) {
		o.TrustedFronts = []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32")}
		o.Registrar.AuthFailuresFree = 2
		o.Registrar.AuthBackoffBase = 10 * time.Second
		o.Registrar.AuthBackoffMax = time.Minute
	})
	uri := fmt.Sprintf("sip:127.0.0.1:%d", g.port())
	// via sends a REGISTER of user through the front (a socket on 127.0.0.4) as from src,
	// answering the challenge with password; a first answer other than 401 is returned.
	via := func(ph *regPhone, src, password, contact string) string {
		t.Helper()
		hdr := SourceHeader + ": udp " + src + "\n"
		ph.p.send(ph.request([]string{contact}, "", hdr))
		ch := ph.response()
		if statusCode(ch) != 401 {
			return ch
		}
		ph.p.send(ph.request([]string{contact}, "", hdr+digestAuth(t, ch, ph.user, password, uri, 1)))
		return ph.response()
	}
	guesser := newRegPhoneAt(t, "127.0.0.4", g.port(), "agent1")
	for i := range 3 {
		if res := via(guesser, "127.0.0.2:5060", fmt.Sprint("guess", i), "<sip:agent1@127.0.0.2:5060>"); statusCode(res) != 403 {
			t.Fatalf("guess %d through the front: want 403\n%s", i, res)
		}
	}
	if res := via(guesser, "127.0.0.2:5060", "secret", "<sip:agent1@127.0.0.2:5060>"); statusCode(res) != 503 {
		t.Fatalf("the guesser through the front after 3 failures: want 503 (backed off)\n%s", res)
	}
	phone := newRegPhoneAt(t, "127.0.0.4", g.port(), "agent2")
	if res := via(phone, "127.0.0.5:5060", "other", "<sip:agent2@127.0.0.5:5060>"); statusCode(res) != 200 {
		t.Fatalf("another phone through the same front: want 200\n%s", res)
	}
}
