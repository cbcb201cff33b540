package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// testAgents is the Options.Agents of these tests: agent1 (by local part or full e-mail),
// agent2, and an agent with only a bcrypt hash (no plain password: no digest).
func testAgents(u string) (AgentAccount, bool) {
	switch u {
	case "agent1", "agent1@example.com":
		return AgentAccount{ID: 7, Username: "agent1", Password: "secret"}, true
	case "agent2":
		return AgentAccount{ID: 8, Username: "agent2", Password: "other"}, true
	case "hashonly":
		return AgentAccount{ID: 9, Username: "hashonly"}, true
	}
	return AgentAccount{}, false
}

// regPhone is a phone REGISTERing over UDP from its own socket, answering digest challenges
// (RFC 7616 §3.4 with qop=auth, MD5) like a desk phone does.
type regPhone struct {
	t      *testing.T
	p      *udpPeer
	gw     int
	user   string
	callID string
	cseq   int
	n      int
}

func newRegPhone(t *testing.T, gwPort int, user string) *regPhone {
	return &regPhone{t: t, p: newUDPPeer(t, gwPort), gw: gwPort, user: user, callID: fmt.Sprintf("reg-%d@test", time.Now().UnixNano())}
}

// request builds a REGISTER; contacts are Contact header values, expires the Expires header
// ("" for none), extra more header lines.
func (r *regPhone) request(contacts []string, expires, extra string) string {
	r.cseq++
	r.n++
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:127.0.0.1:%d SIP/2.0\n", r.gw)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bK-%d-%d;rport\n", time.Now().UnixNano(), r.n)
	fmt.Fprintf(&b, "From: <sip:%s@127.0.0.1>;tag=ph%d\nTo: <sip:%s@127.0.0.1>\n", r.user, r.n, r.user)
	fmt.Fprintf(&b, "Call-ID: %s\nCSeq: %d REGISTER\nMax-Forwards: 70\n", r.callID, r.cseq)
	for _, c := range contacts {
		fmt.Fprintf(&b, "Contact: %s\n", c)
	}
	if expires != "" {
		fmt.Fprintf(&b, "Expires: %s\n", expires)
	}
	b.WriteString(extra)
	b.WriteString("Content-Length: 0\n\n")
	return b.String()
}

// response waits for the next final response.
func (r *regPhone) response() string {
	r.t.Helper()
	res := r.p.recvUntil(5*time.Second, func(m string) bool {
		return strings.HasPrefix(m, "SIP/2.0 ") && !strings.HasPrefix(m, "SIP/2.0 1")
	})
	if res == "" {
		r.t.Fatal("no final response to REGISTER")
	}
	return res
}

// register sends a REGISTER, expects the 401 challenge and answers it with password as user;
// it returns the final response to the authenticated REGISTER.
func (r *regPhone) register(password string, contacts []string, expires, extra string) string {
	r.t.Helper()
	r.p.send(r.request(contacts, expires, extra))
	ch := r.response()
	if statusCode(ch) != 401 {
		r.t.Fatalf("REGISTER without credentials: want 401, got\n%s", ch)
	}
	// RFC 8760 §2.4: one challenge per algorithm, SHA-256 first; this phone answers MD5.
	wa := header(ch, "WWW-Authenticate")
	if len(wa) != 2 || parseDigest(wa[0])["algorithm"] != "SHA-256" || parseDigest(wa[1])["algorithm"] != "MD5" {
		r.t.Fatalf("401 without the SHA-256 and MD5 challenges:\n%s", ch)
	}
	d := parseDigest(wa[1])
	if d["realm"] != "switchboard" || !hasToken(d["qop"], "auth") || d["nonce"] == "" {
		r.t.Fatalf("challenge %q", wa[1])
	}
	uri := fmt.Sprintf("sip:127.0.0.1:%d", r.gw)
	cnonce := "0a4f113b"
	ha1 := md5hex(r.user + ":" + d["realm"] + ":" + password)
	resp := md5hex(ha1 + ":" + d["nonce"] + ":00000001:" + cnonce + ":auth:" + md5hex("REGISTER:"+uri))
	auth := fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"%s\"\n",
		r.user, d["realm"], d["nonce"], uri, resp, cnonce)
	r.p.send(r.request(contacts, expires, extra+auth))
	return r.response()
}

func startRegistrar(t *testing.T, mod func(*Options)) *testGateway {
	return startGateway(t, func(o *Options) {
		o.Agents = testAgents
		if mod != nil {
			mod(o)
		}
	})
}

// TestRegisterChallengeThen200ListsBindings: RFC 3261 §10.3 — a REGISTER without credentials
// gets a digest challenge (MD5, qop=auth); with the agent's password it is bound, and the 200
// lists every current contact of the agent with its remaining expiry. Both the e-mail local
// part and the full e-mail authenticate the same agent.
func TestRegisterChallengeThen200ListsBindings(t *testing.T) {
	g := startRegistrar(t, nil)
	ph := newRegPhone(t, g.port(), "agent1")
	res := ph.register("secret", []string{"<sip:agent1@127.0.0.1:5071>"}, "300", "")
	if statusCode(res) != 200 {
		t.Fatalf("want 200\n%s", res)
	}
	if c := header(res, "Contact"); len(c) != 1 || !strings.Contains(c[0], "sip:agent1@127.0.0.1:5071") || !strings.Contains(c[0], "expires=300") {
		t.Fatalf("200 Contact = %q", c)
	}
	ph2 := newRegPhone(t, g.port(), "agent1@example.com")
	res = ph2.register("secret", []string{"<sip:agent1@127.0.0.1:5072>;expires=120"}, "", "")
	if statusCode(res) != 200 {
		t.Fatalf("full e-mail: want 200\n%s", res)
	}
	if c := header(res, "Contact"); len(c) != 2 || !strings.Contains(strings.Join(c, ","), "5071") || !strings.Contains(strings.Join(c, ","), "expires=120") {
		t.Fatalf("200 should list both bindings, got %q", c)
	}
	regs := g.s.Registrations(7)
	if len(regs) != 2 || regs[0].AgentID != 7 {
		t.Fatalf("registrations = %+v", regs)
	}
	if v := g.counter("switchboard_sip_registrations"); v != 2 {
		t.Errorf("switchboard_sip_registrations = %v, want 2", v)
	}
	// Offers ring both, the most recently refreshed binding first.
	if bs := g.s.reg.lookupAll(7); len(bs) != 2 || bs[0].key != "sip:agent1@127.0.0.1:5072" {
		t.Errorf("lookupAll = %+v", bs)
	}
	// A refresh with the same Call-ID and an older CSeq is refused (§10.3 step 7).
	ph.cseq = 0
	if res := ph.register("secret", []string{"<sip:agent1@127.0.0.1:5071>"}, "300", ""); statusCode(res) != 500 {
		t.Errorf("out-of-order CSeq: want 500\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 0 {
		t.Errorf("auth_failure = %v for good credentials", v)
	}
}

// TestRegisterBadCredentialsGet403AndSecurityEvent: a wrong password, an unknown user, an
// agent without a plain password, and a To AOR of another agent are refused with 403, each
// counted as switchboard_security_events_total{type="auth_failure"}; nothing is bound.
func TestRegisterBadCredentialsGet403AndSecurityEvent(t *testing.T) {
	g := startRegistrar(t, nil)
	cases := []struct{ user, pass, extraTo string }{
		{"agent1", "wrong", ""},
		{"nobody", "secret", ""},
		{"hashonly", "", ""},
		{"agent2", "other", "agent1"},
	}
	for i, c := range cases {
		ph := newRegPhone(t, g.port(), c.user)
		var res string
		if c.extraTo != "" {
			// Authenticated as agent2, trying to register agent1's AOR.
			res = registerAs(t, ph, c.pass, c.extraTo)
		} else {
			res = ph.register(c.pass, []string{"<sip:" + c.user + "@127.0.0.1:5071>"}, "", "")
		}
		if statusCode(res) != 403 {
			t.Errorf("case %d (%s): want 403\n%s", i, c.user, res)
		}
		if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != float64(i+1) {
			t.Errorf("case %d: auth_failure = %v, want %d", i, v, i+1)
		}
	}
	if v := g.counter("switchboard_sip_registrations"); v != 0 {
		t.Errorf("switchboard_sip_registrations = %v after refusals", v)
	}
}

// registerAs authenticates as ph.user (digest without qop) but puts toUser in the To header.
func registerAs(t *testing.T, ph *regPhone, pass, toUser string) string {
	t.Helper()
	orig := ph.user
	ph.p.send(strings.Replace(ph.request([]string{"<sip:x@127.0.0.1:5071>"}, "", ""), "To: <sip:"+orig, "To: <sip:"+toUser, 1))
	ch := ph.response()
	d := parseDigest(header(ch, "WWW-Authenticate")[0])
	uri := fmt.Sprintf("sip:127.0.0.1:%d", ph.gw)
	resp := md5hex(md5hex(orig+":switchboard:"+pass) + ":" + d["nonce"] + ":" + md5hex("REGISTER:"+uri))
	auth := fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"switchboard\", nonce=\"%s\", uri=\"%s\", response=\"%s\"\n", orig, d["nonce"], uri, resp)
	ph.p.send(strings.Replace(ph.request([]string{"<sip:x@127.0.0.1:5071>"}, "", auth), "To: <sip:"+orig, "To: <sip:"+toUser, 1))
	return ph.response()
}

// TestRegisterIntervalTooBrief423: an expiry below the minimum gets 423 with Min-Expires
// (RFC 3261 §10.3 step 7, §21.4.17) and binds nothing.
func TestRegisterIntervalTooBrief423(t *testing.T) {
	g := startRegistrar(t, nil)
	ph := newRegPhone(t, g.port(), "agent1")
	res := ph.register("secret", []string{"<sip:agent1@127.0.0.1:5071>"}, "10", "")
	if statusCode(res) != 423 || fmt.Sprint(header(res, "Min-Expires")) != "[60]" {
		t.Fatalf("want 423 with Min-Expires: 60\n%s", res)
	}
	if n := len(g.s.Registrations(0)); n != 0 {
		t.Errorf("%d bindings after 423", n)
	}
}

// TestRegisterRemovalAndWildcard: Expires: 0 removes one binding, "Contact: *" with Expires: 0
// removes them all (RFC 3261 §10.2.2), "*" without Expires: 0 is a 400; the gauge and the
// OnChange hook follow.
func TestRegisterRemovalAndWildcard(t *testing.T) {
	var mu sync.Mutex
	var changes []string
	g := startRegistrar(t, func(o *Options) {
		o.Registrar.OnChange = func(id int64, on bool) {
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%d:%v", id, on))
			mu.Unlock()
		}
	})
	ph := newRegPhone(t, g.port(), "agent1")
	if res := ph.register("secret", []string{"<sip:agent1@127.0.0.1:5071>", "<sip:agent1@127.0.0.1:5072>"}, "", ""); statusCode(res) != 200 || len(header(res, "Contact")) != 2 {
		t.Fatalf("two contacts: want 200 listing two\n%s", res)
	}
	if v := g.counter("switchboard_sip_registrations"); v != 2 {
		t.Fatalf("gauge = %v, want 2", v)
	}
	res := ph.register("secret", []string{"<sip:agent1@127.0.0.1:5071>;expires=0"}, "", "")
	if statusCode(res) != 200 || len(header(res, "Contact")) != 1 {
		t.Fatalf("remove one: want 200 listing the other\n%s", res)
	}
	if res := ph.register("secret", []string{"*"}, "", ""); statusCode(res) != 400 {
		t.Fatalf("* without Expires: 0: want 400\n%s", res)
	}
	res = ph.register("secret", []string{"*"}, "0", "")
	if statusCode(res) != 200 || len(header(res, "Contact")) != 0 {
		t.Fatalf("remove all: want 200 without contacts\n%s", res)
	}
	if v := g.counter("switchboard_sip_registrations"); v != 0 {
		t.Errorf("gauge = %v after removal", v)
	}
	if bs := g.s.reg.lookupAll(7); len(bs) != 0 {
		t.Error("binding still found after removal")
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(changes) != "[7:true 7:false]" {
		t.Errorf("OnChange calls = %v", changes)
	}
}

// TestRegistrationExpires: a binding not refreshed goes away at its expiry (gauge back to 0,
// OnChange false, offers fail with ErrNotRegistered).
func TestRegistrationExpires(t *testing.T) {
	gone := make(chan int64, 1)
	g := startRegistrar(t, func(o *Options) {
		o.Registrar.MinExpires = time.Second
		o.Registrar.OnChange = func(id int64, on bool) {
			if !on {
				gone <- id
			}
		}
	})
	ph := newRegPhone(t, g.port(), "agent1")
	if res := ph.register("secret", []string{"<sip:agent1@127.0.0.1:5071>"}, "1", ""); statusCode(res) != 200 {
		t.Fatalf("want 200\n%s", res)
	}
	select {
	case id := <-gone:
		if id != 7 {
			t.Errorf("expired agent %d", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("binding did not expire")
	}
	if v := g.counter("switchboard_sip_registrations"); v != 0 {
		t.Errorf("gauge = %v after expiry", v)
	}
	_, err := g.s.PhoneDialer().Offer(context.Background(), ivr.Offer{CallID: "x", AgentID: 7})
	if !errors.Is(err, ErrNotRegistered) {
		t.Errorf("offer after expiry: %v", err)
	}
}

// TestRegisterRateLimitedAndScannerDroppedFromTrunkNetwork: REGISTER comes from phones, so the
// per-source limit and the scanner filter apply to it even from a trunk's network.
func TestRegisterRateLimitedAndScannerDroppedFromTrunkNetwork(t *testing.T) {
	g := startRegistrar(t, func(o *Options) { o.RateLimit = RateLimit{PerSecond: 0.001, Burst: 2} })
	ph := newRegPhone(t, g.port(), "agent1")
	ph.p.send(ph.request(nil, "", "User-Agent: friendly-scanner\n"))
	if m := ph.p.recv(300 * time.Millisecond); m != "" {
		t.Fatalf("scanner REGISTER answered:\n%s", m)
	}
	answered := 0
	for range 3 {
		ph.p.send(ph.request(nil, "", ""))
		if m := ph.p.recv(300 * time.Millisecond); statusCode(m) == 401 {
			answered++
		}
	}
	if answered != 2 {
		t.Errorf("answered %d of 3 REGISTERs with a burst of 2 (one spent by the scanner)", answered)
	}
	if v := g.counter("switchboard_security_events_total", "type", "scanner_drop"); v != 1 {
		t.Errorf("scanner_drop = %v", v)
	}
	if v := g.counter("switchboard_security_events_total", "type", "rate_limited"); v != 1 {
		t.Errorf("rate_limited = %v", v)
	}
}

// TestRegisterWithoutAgentsIs405: with no Options.Agents the registrar is off.
func TestRegisterWithoutAgentsIs405(t *testing.T) {
	g := startGateway(t, nil)
	ph := newRegPhone(t, g.port(), "agent1")
	ph.p.send(ph.request([]string{"<sip:agent1@127.0.0.1:5071>"}, "", ""))
	if res := ph.response(); statusCode(res) != 405 {
		t.Fatalf("want 405\n%s", res)
	}
}

// TestOfferToUnregisteredAgentFailsAtOnce: ivr.AgentDialer's contract — no reachable phone,
// an error at once (wrapping ivr.ErrNoAnswer).
func TestOfferToUnregisteredAgentFailsAtOnce(t *testing.T) {
	g := startRegistrar(t, nil)
	start := time.Now()
	leg, err := g.s.PhoneDialer().Offer(context.Background(), ivr.Offer{CallID: "no-call", AgentID: 7})
	if leg != nil || !errors.Is(err, ErrNotRegistered) || !errors.Is(err, ivr.ErrNoAnswer) {
		t.Fatalf("Offer = %v, %v", leg, err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("took %s", d)
	}
	// Registered agent, unknown call: also at once.
	ph := newRegPhone(t, g.port(), "agent1")
	if res := ph.register("secret", []string{"<sip:agent1@127.0.0.1:5071>"}, "", ""); statusCode(res) != 200 {
		t.Fatalf("want 200\n%s", res)
	}
	if _, err := g.s.PhoneDialer().Offer(context.Background(), ivr.Offer{CallID: "no-call", AgentID: 7}); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("unknown call: %v", err)
	}
}

// TestBindingDestination: where requests to a phone go (NAT handling).
func TestBindingDestination(t *testing.T) {
	src := netip.MustParseAddrPort("203.0.113.5:40000")
	cases := []struct {
		contact, transport string
		want               string
	}{
		{"sip:a@203.0.113.5:5060", "UDP", ""},                                 // contact is the source: as is
		{"sip:a@192.168.1.20:5060", "UDP", "203.0.113.5:40000"},               // private contact behind NAT
		{"sip:a@10.0.0.7", "UDP", "203.0.113.5:40000"},                        // private, default port
		{"sip:a@198.51.100.9:5060", "UDP", "203.0.113.5:40000"},               // elsewhere (refused at REGISTER): never the contact
		{"sip:a@phone.example.com:5060", "UDP", "203.0.113.5:40000"},          // host name (refused at REGISTER): never resolved
		{"sip:a@198.51.100.9:5060;transport=tcp", "TCP", "203.0.113.5:40000"}, // reuse the connection
	}
	for _, c := range cases {
		var u sip.Uri
		if err := sip.ParseUri(c.contact, &u); err != nil {
			t.Fatal(err)
		}
		b := binding{contact: u, source: src, transport: c.transport}
		if got := b.dest(); got != c.want {
			t.Errorf("%s over %s: dest %q, want %q", c.contact, c.transport, got, c.want)
		}
	}
	// A contact in a configured phone network is rung at its own address.
	var u sip.Uri
	_ = sip.ParseUri("sip:a@198.51.100.9:5060", &u)
	if got := (binding{contact: u, source: src, transport: "UDP", asIs: true}).dest(); got != "" {
		t.Errorf("phone network contact: dest %q, want the contact", got)
	}
}

// TestOfferBehindNATGoesToSourceAddress: a phone that registered a private Contact it cannot
// be reached at gets the offer's INVITE at the address its REGISTER came from, with the
// Request-URI still its Contact URI; its 486 fails the offer with ivr.ErrNoAnswer.
func TestOfferBehindNATGoesToSourceAddress(t *testing.T) {
	var srv *Server
	var srvMu sync.Mutex
	results := make(chan error, 1)
	g := startRegistrar(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			srvMu.Lock()
			s := srv
			srvMu.Unlock()
			octx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := s.PhoneDialer().Offer(octx, ivr.Offer{CallID: c.ID(), AgentID: 7, From: c.From()})
			results <- err
			return &StatusError{Code: 480, Reason: "Temporarily Unavailable"}
		})}}
	})
	srvMu.Lock()
	srv = g.s
	srvMu.Unlock()
	ph := newRegPhone(t, g.port(), "agent1")
	if res := ph.register("secret", []string{"<sip:agent1@192.168.77.7:5060>"}, "", ""); statusCode(res) != 200 {
		t.Fatalf("want 200\n%s", res)
	}
	carrier := newUDPPeer(t, g.port())
	carrier.send(rawInvite("+15550197", "", pcmuOffer))
	inv := ph.p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("the phone's REGISTER source address got no INVITE")
	}
	if !strings.HasPrefix(inv, "INVITE sip:agent1@192.168.77.7:5060 SIP/2.0") {
		t.Errorf("Request-URI is not the Contact:\n%s", inv)
	}
	if f := header(inv, "From"); len(f) != 1 || !strings.Contains(f[0], "+15557654321") {
		t.Errorf("From = %q, want the caller's number", f)
	}
	ph.p.send(respondTo(inv, 486, "Busy Here", ""))
	select {
	case err := <-results:
		if !errors.Is(err, ivr.ErrNoAnswer) {
			t.Errorf("Offer error %v, want ivr.ErrNoAnswer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Offer did not return after 486")
	}
}

// FuzzParseRegisterContacts feeds REGISTERs with arbitrary Contact and Expires headers through
// sipgo's parser and ours: no panic, a wildcard never comes with other contacts, and every
// contact is a sip/sips URI with a host.
func FuzzParseRegisterContacts(f *testing.F) {
	for _, seed := range [][2]string{
		{"<sip:agent1@127.0.0.1:5071>", "300"},
		{"<sip:agent1@127.0.0.1:5071>;expires=120, <sip:agent1@127.0.0.1:5072>", ""},
		{"<sip:agent1@127.0.0.1:5071>;expires=0", ""},
		{"*", "0"},
		{"*", ""},
		{"<tel:+15550100>", "60"},
		{"\"Desk\" <sips:agent1@[::1]:5061;transport=tls>;expires=3600", "abc"},
		{"<sip:agent1@192.168.77.7:5060>;expires=-1", "99999999999"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, contact, expires string) {
		if strings.ContainsAny(contact+expires, "\r\n") {
			return
		}
		msg := "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n" +
			"From: <sip:agent1@127.0.0.1>;tag=1\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: f@test\r\nCSeq: 1 REGISTER\r\n" +
			"Contact: " + contact + "\r\n"
		if expires != "" {
			msg += "Expires: " + expires + "\r\n"
		}
		msg += "Content-Length: 0\r\n\r\n"
		m, err := sip.ParseMessage([]byte(msg))
		if err != nil {
			return
		}
		req, ok := m.(*sip.Request)
		if !ok {
			return
		}
		changes, wildcard, err := parseRegisterContacts(req, time.Hour)
		if err != nil {
			return
		}
		if wildcard && len(changes) > 0 {
			t.Fatalf("wildcard with %d contacts", len(changes))
		}
		for _, c := range changes {
			if sch := strings.ToLower(c.contact.Scheme); sch != "sip" && sch != "sips" || c.contact.Host == "" {
				t.Fatalf("accepted contact %q", c.contact.String())
			}
			if c.expires < 0 {
				t.Fatalf("negative expiry %s", c.expires)
			}
		}
	})
}

// TestRegisterStaleNonceRechallenged: credentials computed on a nonce older than its lifetime
// are challenged again with stale=true (RFC 2617 §3.2.1) rather than refused: an expired nonce
// is no wrong password, so no security event.
func TestRegisterStaleNonceRechallenged(t *testing.T) {
	var skew atomic.Int64
	g := startRegistrar(t, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	ph := newRegPhone(t, g.port(), "agent1")
	ph.p.send(ph.request([]string{"<sip:agent1@127.0.0.1:5071>"}, "", ""))
	d := parseDigest(header(ph.response(), "WWW-Authenticate")[0])
	skew.Store(int64(10 * time.Minute))
	uri := fmt.Sprintf("sip:127.0.0.1:%d", ph.gw)
	resp := md5hex(md5hex("agent1:switchboard:secret") + ":" + d["nonce"] + ":" + md5hex("REGISTER:"+uri))
	auth := fmt.Sprintf("Authorization: Digest username=\"agent1\", realm=\"switchboard\", nonce=\"%s\", uri=\"%s\", response=\"%s\"\n", d["nonce"], uri, resp)
	ph.p.send(ph.request([]string{"<sip:agent1@127.0.0.1:5071>"}, "", auth))
	res := ph.response()
	if statusCode(res) != 401 || !strings.Contains(strings.Join(header(res, "WWW-Authenticate"), ""), "stale=true") {
		t.Fatalf("stale nonce: want 401 with stale=true\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 0 {
		t.Errorf("auth_failure = %v for a stale nonce", v)
	}
}

// TestOfferToDeadPhoneReturnsAfterWithdrawal: a phone registered and then gone silent (no
// provisional ever) must not hold the ACD past its ring timeout: Offer returns ctx's error
// within the cancel grace.
func TestOfferToDeadPhoneReturnsAfterWithdrawal(t *testing.T) {
	var srv atomic.Pointer[Server]
	type res struct {
		err     error
		elapsed time.Duration
	}
	results := make(chan res, 1)
	g := startRegistrar(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			octx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := srv.Load().PhoneDialer().Offer(octx, ivr.Offer{CallID: c.ID(), AgentID: 7})
			results <- res{err, time.Since(start)}
			return &StatusError{Code: 480, Reason: "Temporarily Unavailable"}
		})}}
	})
	srv.Store(g.s)
	ph := newRegPhone(t, g.port(), "agent1")
	if r := ph.register("secret", []string{fmt.Sprintf("<sip:agent1@127.0.0.1:%d>", ph.p.port)}, "", ""); statusCode(r) != 200 {
		t.Fatalf("want 200\n%s", r)
	}
	newUDPPeer(t, g.port()).send(rawInvite("+15550197", "", pcmuOffer))
	select {
	case r := <-results:
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("Offer error %v, want context.DeadlineExceeded", r.err)
		}
		if r.elapsed > 500*time.Millisecond+offerCancelGrace+500*time.Millisecond {
			t.Errorf("Offer returned after %s", r.elapsed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Offer to a silent phone did not return")
	}
}
