package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// newUDPPeerAt is newUDPPeer bound to ip (another loopback address: an attacker or a phone on
// another host); port 0 picks a free one.
func newUDPPeerAt(t *testing.T, ip string, port, gwPort int) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPeer{t: t, c: c, port: c.LocalAddr().(*net.UDPAddr).Port, gw: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: gwPort}}
}

// newRegPhoneAt is a phone REGISTERing from ip.
func newRegPhoneAt(t *testing.T, ip string, gwPort int, user string) *regPhone {
	return &regPhone{t: t, p: newUDPPeerAt(t, ip, 0, gwPort), gw: gwPort, user: user, callID: fmt.Sprintf("reg-%s-%d@test", ip, time.Now().UnixNano())}
}

// TestRegisterAttack_ContactElsewhereRefusedAndNeverInvited is the registrar's toll-fraud and
// SSRF attack: a holder of agent1's SIP secret on 127.0.0.2 binds contacts that point
// elsewhere — another host (127.0.0.3), a host name (localhost, resolving to a listener on
// 127.0.0.1), a trunk's outbound address (127.0.0.4), the gateway itself — and, from the
// trunk's own address, the trunk. Each is refused with 403 and counted as
// switchboard_security_events_total{type="contact_rejected"}; nothing is bound. A queued call
// then offered to agent1 fails with ErrNotRegistered and no listener at those addresses
// receives a single datagram. The same agent's phone binding its own address on 127.0.0.2 is
// accepted and rung there. Before the contact policy every one of these was bound and the
// offer INVITEd the named address.
func TestRegisterAttack_ContactElsewhereRefusedAndNeverInvited(t *testing.T) {
	foreign := newUDPPeerAt(t, "127.0.0.3", 0, 0)
	named := newUDPPeerAt(t, "127.0.0.1", 0, 0)
	trunk := newUDPPeerAt(t, "127.0.0.4", 0, 0)
	var srv atomic.Pointer[Server]
	results := make(chan error, 4)
	g := startRegistrar(t, func(o *Options) {
		o.Trunks = append(o.Trunks, Trunk{Name: "upstream", OutboundURI: fmt.Sprintf("sip:127.0.0.4:%d", trunk.port)})
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			octx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := srv.Load().PhoneDialer().Offer(octx, ivr.Offer{CallID: c.ID(), AgentID: 7, From: c.From()})
			results <- err
			return &StatusError{Code: 480, Reason: "Temporarily Unavailable"}
		})}}
	})
	srv.Store(g.s)

	attacks := []struct{ name, from, contact, reason string }{
		{"another host", "127.0.0.2", fmt.Sprintf("<sip:agent1@127.0.0.3:%d>", foreign.port), "came from"},
		{"a host name", "127.0.0.2", fmt.Sprintf("<sip:agent1@localhost:%d>", named.port), "not a name"},
		{"a trunk from elsewhere", "127.0.0.2", fmt.Sprintf("<sip:agent1@127.0.0.4:%d>", trunk.port), "trunk"},
		{"a trunk from its own address", "127.0.0.4", fmt.Sprintf("<sip:agent1@127.0.0.4:%d>", trunk.port), "trunk"},
		{"the gateway itself", "127.0.0.1", fmt.Sprintf("<sip:agent1@127.0.0.1:%d>", g.port()), "own address"},
		{"one bad among good", "127.0.0.2", fmt.Sprintf("<sip:agent1@127.0.0.2:5999>, <sip:agent1@127.0.0.3:%d>", foreign.port), "came from"},
	}
	for i, a := range attacks {
		ph := newRegPhoneAt(t, a.from, g.port(), "agent1")
		res := ph.register("secret", []string{a.contact}, "", "")
		if statusCode(res) != 403 || !strings.Contains(strings.SplitN(res, "\r\n", 2)[0], a.reason) {
			t.Errorf("%s: want 403 naming %q\n%s", a.name, a.reason, res)
		}
		if v := g.counter("switchboard_security_events_total", "type", "contact_rejected"); v != float64(i+1) {
			t.Errorf("%s: contact_rejected = %v, want %d", a.name, v, i+1)
		}
	}
	if regs := g.s.Registrations(0); len(regs) != 0 {
		t.Fatalf("bindings after the attacks: %+v", regs)
	}

	// A queued call offered to agent1 now: no binding, so no INVITE anywhere.
	carrier := newUDPPeer(t, g.port())
	carrier.send(rawInvite("+15550197", "", pcmuOffer))
	select {
	case err := <-results:
		if !errors.Is(err, ErrNotRegistered) {
			t.Errorf("offer after the refused REGISTERs: %v, want ErrNotRegistered", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("offer did not return")
	}

	// The agent's real phone on 127.0.0.2 binds its own address and is rung there.
	ph := newRegPhoneAt(t, "127.0.0.2", g.port(), "agent1")
	if res := ph.register("secret", []string{fmt.Sprintf("<sip:agent1@127.0.0.2:%d>", ph.p.port)}, "", ""); statusCode(res) != 200 {
		t.Fatalf("own address: want 200\n%s", res)
	}
	carrier2 := newUDPPeer(t, g.port())
	carrier2.send(rawInvite("+15550197", "", pcmuOffer))
	inv := ph.p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("the registered phone got no INVITE")
	}
	ph.p.send(respondTo(inv, 486, "Busy Here", ""))
	select {
	case err := <-results:
		if !errors.Is(err, ivr.ErrNoAnswer) {
			t.Errorf("offer to the busy phone: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("offer did not return after 486")
	}
	for _, l := range []struct {
		name string
		p    *udpPeer
	}{{"127.0.0.3", foreign}, {"localhost", named}, {"the trunk", trunk}} {
		if m := l.p.recv(200 * time.Millisecond); m != "" {
			t.Errorf("%s received a datagram:\n%s", l.name, m)
		}
	}
}

// TestRegisterCapsBindingsPerAgentAndContactsPerRegister: more contacts in one REGISTER than
// MaxContactsPerRegister, or a REGISTER that would give the agent more than
// MaxBindingsPerAgent bindings, gets 403 (as Asterisk's max_contacts) and binds nothing;
// refreshing existing bindings, and replacing one by removing it in the same REGISTER, stay
// allowed.
func TestRegisterCapsBindingsPerAgentAndContactsPerRegister(t *testing.T) {
	g := startRegistrar(t, func(o *Options) {
		o.Registrar.MaxBindingsPerAgent = 2
		o.Registrar.MaxContactsPerRegister = 2
	})
	c := func(port int) string { return fmt.Sprintf("<sip:agent1@127.0.0.1:%d>", port) }
	ph := newRegPhone(t, g.port(), "agent1")
	if res := ph.register("secret", []string{c(5071), c(5072), c(5073)}, "", ""); statusCode(res) != 403 {
		t.Fatalf("three contacts: want 403\n%s", res)
	}
	if n := len(g.s.Registrations(0)); n != 0 {
		t.Fatalf("%d bindings after a refused REGISTER", n)
	}
	if res := ph.register("secret", []string{c(5071), c(5072)}, "", ""); statusCode(res) != 200 {
		t.Fatalf("two contacts: want 200\n%s", res)
	}
	ph2 := newRegPhone(t, g.port(), "agent1")
	if res := ph2.register("secret", []string{c(5073)}, "", ""); statusCode(res) != 403 {
		t.Fatalf("a third binding: want 403\n%s", res)
	}
	if res := ph.register("secret", []string{c(5071), c(5072)}, "", ""); statusCode(res) != 200 {
		t.Fatalf("refresh at the cap: want 200\n%s", res)
	}
	if res := ph2.register("secret", []string{c(5072) + ";expires=0", c(5073)}, "", ""); statusCode(res) != 200 {
		t.Fatalf("replace one: want 200\n%s", res)
	}
	if n := len(g.s.Registrations(7)); n != 2 {
		t.Errorf("%d bindings, want 2", n)
	}
	if v := g.counter("switchboard_security_events_total", "type", "contact_rejected"); v != 2 {
		t.Errorf("contact_rejected = %v, want 2", v)
	}
}

// TestContactPolicy: the contact rules of contact.go for sources a loopback test cannot be —
// a phone behind NAT on the public Internet writes its LAN address (accepted, rung at the
// source), a public address elsewhere is refused, a configured phone network is accepted.
func TestContactPolicy(t *testing.T) {
	g := startRegistrar(t, func(o *Options) {
		o.Registrar.PhoneNetworks = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		o.Trunks = append(o.Trunks, Trunk{Name: "up", OutboundURI: "sip:192.0.2.9", Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}})
	})
	src := netip.MustParseAddr("203.0.113.5")
	cases := []struct {
		contact string
		want    error
	}{
		{"sip:a@203.0.113.5:5060", nil},                 // the source itself
		{"sip:a@203.0.113.5:7000;transport=udp", nil},   // another port of the source
		{"sip:a@192.168.1.20:5060", nil},                // behind NAT (RFC 1918)
		{"sip:a@100.64.3.4", nil},                       // behind carrier-grade NAT (RFC 6598)
		{"sip:a@[fd00::5]:5060", nil},                   // behind NAT (RFC 4193)
		{"sip:a@198.51.100.77", nil},                    // a configured phone network
		{"sip:a@203.0.113.6:5060", errContactForeign},   // a neighbour
		{"sip:a@127.0.0.1:5060", errContactForeign},     // our loopback, from outside
		{"sip:a@phone.example.com", errContactHostName}, // a name
		{"sip:a@0.0.0.0", errContactAddress},
		{"sip:a@224.0.0.1", errContactAddress},
		{"sip:a@192.0.2.9", errContactTrunk},       // a trunk's outbound URI (default port)
		{"sip:a@192.0.2.9:5060", errContactTrunk},  // the same
		{"sip:a@192.0.2.10:5999", errContactTrunk}, // a trunk's single allowed address
	}
	for _, c := range cases {
		var u sip.Uri
		if err := sip.ParseUri(c.contact, &u); err != nil {
			t.Fatal(err)
		}
		if err := g.s.reg.checkContact(u, src); err != c.want {
			t.Errorf("%s from %s: %v, want %v", c.contact, src, err, c.want)
		}
	}
	// From a trunk's single address even its own address is refused.
	var u sip.Uri
	_ = sip.ParseUri("sip:a@192.0.2.10:5060", &u)
	if err := g.s.reg.checkContact(u, netip.MustParseAddr("192.0.2.10")); err != errContactTrunk {
		t.Errorf("trunk's own address from the trunk: %v", err)
	}
}

// digestAuth builds an Authorization header line answering challenge (a 401) as user with
// password, for uri, with qop=auth and nc.
func digestAuth(t *testing.T, challenge, user, password, uri string, nc int) string {
	t.Helper()
	wa := header(challenge, "WWW-Authenticate")
	if len(wa) == 0 {
		t.Fatalf("no challenge in\n%s", challenge)
	}
	d := parseDigest(wa[len(wa)-1]) // the MD5 challenge
	ncs := fmt.Sprintf("%08x", nc)
	ha1 := md5hex(user + ":" + d["realm"] + ":" + password)
	resp := md5hex(ha1 + ":" + d["nonce"] + ":" + ncs + ":c0ffee:auth:" + md5hex("REGISTER:"+uri))
	return fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=MD5, qop=auth, nc=%s, cnonce=\"c0ffee\"\n",
		user, d["realm"], d["nonce"], uri, resp, ncs)
}

// TestRegisterBruteForce_BackoffPerSourceAndPerAccount is a password-guessing attack on
// agent1's SIP secret from 127.0.0.2, then from 127.0.0.3. After AuthFailuresFree failures the
// guessing source is backed off: its REGISTERs get 503 with Retry-After, without a challenge
// and — the point — without the password being checked (the right password is refused too);
// the backoff doubles with each further failure. The account is backed off as well, so a new
// source (127.0.0.3) gets 503 for agent1 once it answers a challenge, while another agent from
// there is unaffected. agent1's real phone, registered from 127.0.0.1 before the attack, keeps
// refreshing, and a success resets the backoff. Failures count auth_failure, refusals
// auth_backoff. Before the backoff every guess was checked and answered 403.
func TestRegisterBruteForce_BackoffPerSourceAndPerAccount(t *testing.T) {
	var skew atomic.Int64
	g := startRegistrar(t, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		o.Registrar.AuthFailuresFree = 2
		o.Registrar.AuthBackoffBase = 10 * time.Second
		o.Registrar.AuthBackoffMax = time.Minute
	})
	uri := fmt.Sprintf("sip:127.0.0.1:%d", g.port())
	real := newRegPhone(t, g.port(), "agent1")
	if res := real.register("secret", []string{fmt.Sprintf("<sip:agent1@127.0.0.1:%d>", real.p.port)}, "", ""); statusCode(res) != 200 {
		t.Fatalf("the real phone: want 200\n%s", res)
	}

	// guess sends one REGISTER from ph as user with password: a challenge first, unless the
	// source is backed off, in which case that first answer is returned.
	guess := func(ph *regPhone, user, password string) string {
		t.Helper()
		contact := []string{fmt.Sprintf("<sip:%s@%s:%d>", user, ph.p.c.LocalAddr().(*net.UDPAddr).IP, ph.p.port)}
		ph.p.send(ph.request(contact, "", ""))
		ch := ph.response()
		if statusCode(ch) != 401 {
			return ch
		}
		ph.p.send(ph.request(contact, "", digestAuth(t, ch, user, password, uri, 1)))
		return ph.response()
	}
	attacker := newRegPhoneAt(t, "127.0.0.2", g.port(), "agent1")
	for i := range 3 {
		if res := guess(attacker, "agent1", fmt.Sprintf("guess%d", i)); statusCode(res) != 403 {
			t.Fatalf("guess %d: want 403\n%s", i, res)
		}
	}
	// Three failures, two free: backed off for 10 s. Even the right password is refused.
	res := guess(attacker, "agent1", "secret")
	if statusCode(res) != 503 || fmt.Sprint(header(res, "Retry-After")) != "[10]" {
		t.Fatalf("backed-off source: want 503 with Retry-After: 10\n%s", res)
	}
	if len(header(res, "WWW-Authenticate")) != 0 {
		t.Errorf("backed-off source was challenged")
	}
	// Per account: a fresh source guessing agent1 is challenged, then refused with 503.
	other := newRegPhoneAt(t, "127.0.0.3", g.port(), "agent1")
	if res := guess(other, "agent1", "secret"); statusCode(res) != 503 {
		t.Fatalf("backed-off account from a new source: want 503\n%s", res)
	}
	// Another agent from that source is not affected.
	if res := guess(newRegPhoneAt(t, "127.0.0.3", g.port(), "agent2"), "agent2", "other"); statusCode(res) != 200 {
		t.Fatalf("agent2 from 127.0.0.3: want 200\n%s", res)
	}
	// agent1's registered phone keeps refreshing through the account's backoff.
	if res := real.register("secret", []string{fmt.Sprintf("<sip:agent1@127.0.0.1:%d>", real.p.port)}, "", ""); statusCode(res) != 200 {
		t.Fatalf("the real phone's refresh during the backoff: want 200\n%s", res)
	}
	// After the backoff, one more failure doubles it.
	skew.Add(int64(11 * time.Second))
	if res := guess(attacker, "agent1", "guess3"); statusCode(res) != 403 {
		t.Fatalf("after the backoff: want 403\n%s", res)
	}
	if res := guess(attacker, "agent1", "secret"); statusCode(res) != 503 || fmt.Sprint(header(res, "Retry-After")) != "[20]" {
		t.Fatalf("second backoff: want 503 with Retry-After: 20\n%s", res)
	}
	// Once it ends, the right password succeeds and resets the count.
	skew.Add(int64(21 * time.Second))
	if res := guess(attacker, "agent1", "secret"); statusCode(res) != 200 {
		t.Fatalf("after the second backoff, the right password: want 200\n%s", res)
	}
	if res := guess(other, "agent1", "wrong"); statusCode(res) != 403 {
		t.Fatalf("after a success: want 403 (free failures again)\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 5 {
		t.Errorf("auth_failure = %v, want 5", v)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_backoff"); v != 3 {
		t.Errorf("auth_backoff = %v, want 3", v)
	}
}

// handDigest builds an Authorization header line by hand: algorithm alg ("MD5", "SHA-256"),
// qop=auth with nonce count nc (nc 0: no qop, RFC 2069 style).
func handDigest(alg, user, password, nonce, uri string, nc int) string {
	h := digestHash(alg)
	ha1 := h(user + ":switchboard:" + password)
	ha2 := h("REGISTER:" + uri)
	if nc == 0 {
		return fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"switchboard\", nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=%s\n",
			user, nonce, uri, h(ha1+":"+nonce+":"+ha2), alg)
	}
	ncs := fmt.Sprintf("%08x", nc)
	resp := h(ha1 + ":" + nonce + ":" + ncs + ":abc123:auth:" + ha2)
	return fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"switchboard\", nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=%s, qop=auth, nc=%s, cnonce=\"abc123\"\n",
		user, nonce, uri, resp, alg, ncs)
}

// TestRegisterDigest_SHA256BoundNonceReplayAndURI attacks the digest exchange with hand-built
// responses (RFC 7616, RFC 8760): the challenge offers SHA-256 then MD5 with one nonce; a
// SHA-256 answer registers; the same answer replayed (same nc) is refused 403 as a replay and
// counted auth_failure, a higher nc is accepted; the nonce spent from another address
// (127.0.0.3, e.g. a REGISTER spoofed from there with a nonce fetched at 127.0.0.2) is
// re-challenged with stale=true, not accepted; a digest computed for another URI gets 400; an
// MD5 nonce without qop is good once; and a nonce issued for another method is refused.
// Before, nonces were bound to nothing, nc was not tracked, uri was not compared and only MD5
// was offered.
func TestRegisterDigest_SHA256BoundNonceReplayAndURI(t *testing.T) {
	g := startRegistrar(t, nil)
	uri := fmt.Sprintf("sip:127.0.0.1:%d", g.port())
	ph := newRegPhoneAt(t, "127.0.0.2", g.port(), "agent1")
	contact := []string{fmt.Sprintf("<sip:agent1@127.0.0.2:%d>", ph.p.port)}
	ph.p.send(ph.request(contact, "", ""))
	ch := ph.response()
	wa := header(ch, "WWW-Authenticate")
	if statusCode(ch) != 401 || len(wa) != 2 {
		t.Fatalf("want 401 with two challenges\n%s", ch)
	}
	sha, md := parseDigest(wa[0]), parseDigest(wa[1])
	if sha["algorithm"] != "SHA-256" || md["algorithm"] != "MD5" || sha["nonce"] != md["nonce"] || !hasToken(sha["qop"], "auth") {
		t.Fatalf("challenges %q", wa)
	}
	nonce := sha["nonce"]
	send := func(p *regPhone, auth string) string {
		t.Helper()
		p.p.send(p.request(contact, "", auth))
		return p.response()
	}
	if res := send(ph, handDigest("SHA-256", "agent1", "secret", nonce, uri, 1)); statusCode(res) != 200 {
		t.Fatalf("SHA-256 answer: want 200\n%s", res)
	}
	if res := send(ph, handDigest("SHA-256", "agent1", "secret", nonce, uri, 1)); statusCode(res) != 403 || !strings.Contains(res, "replayed") {
		t.Fatalf("replayed nc: want 403\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 1 {
		t.Errorf("auth_failure = %v after the replay, want 1", v)
	}
	if res := send(ph, handDigest("SHA-256", "agent1", "secret", nonce, uri, 2)); statusCode(res) != 200 {
		t.Fatalf("next nc: want 200\n%s", res)
	}
	// The nonce spent from another address: challenged again there, not accepted.
	other := newRegPhoneAt(t, "127.0.0.3", g.port(), "agent1")
	res := send(other, handDigest("SHA-256", "agent1", "secret", nonce, uri, 3))
	if statusCode(res) != 401 || !strings.Contains(strings.Join(header(res, "WWW-Authenticate"), ","), "stale=true") {
		t.Fatalf("nonce from another source: want 401 stale=true\n%s", res)
	}
	// A digest for another Request-URI.
	if res := send(ph, handDigest("SHA-256", "agent1", "secret", nonce, "sip:127.0.0.1:9", 4)); statusCode(res) != 400 {
		t.Fatalf("digest uri not the Request-URI: want 400\n%s", res)
	}
	// MD5 without qop: one use per nonce.
	ph.p.send(ph.request(contact, "", ""))
	n2 := parseDigest(header(ph.response(), "WWW-Authenticate")[1])["nonce"]
	if res := send(ph, handDigest("MD5", "agent1", "secret", n2, uri, 0)); statusCode(res) != 200 {
		t.Fatalf("MD5 without qop: want 200\n%s", res)
	}
	if res := send(ph, handDigest("MD5", "agent1", "secret", n2, uri, 0)); statusCode(res) != 401 {
		t.Fatalf("MD5 without qop, nonce reused: want 401\n%s", res)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 1 {
		t.Errorf("auth_failure = %v, want 1 (only the replay)", v)
	}
	// A nonce is bound to its method as well as its source.
	src := netip.MustParseAddr("127.0.0.2")
	if n := g.s.boundNonce(src, "INVITE"); g.s.boundNonceOK(n, src, "REGISTER") || !g.s.boundNonceOK(n, src, "INVITE") {
		t.Error("an INVITE nonce is good for REGISTER")
	}
}

// TestRegisterStoredHA1: an agent whose phone secret is stored only as HA1s registers with
// either algorithm under its configured username; another username (HA1 covers it) fails,
// and an account with only the MD5 HA1 cannot answer SHA-256.
func TestRegisterStoredHA1(t *testing.T) {
	md5ha1, _ := HA1(DigestMD5, "desk7", "switchboard", "phone-secret")
	shaha1, _ := HA1(DigestSHA256, "desk7", "switchboard", "phone-secret")
	g := startRegistrar(t, func(o *Options) {
		o.Agents = func(u string) (AgentAccount, bool) {
			switch u {
			case "desk7", "desk7@example.com":
				return AgentAccount{ID: 70, Username: "desk7", HA1MD5: md5ha1, HA1SHA256: shaha1}, true
			case "md5only":
				return AgentAccount{ID: 71, Username: "md5only", HA1MD5: md5hex("md5only:switchboard:pw")}, true
			}
			return AgentAccount{}, false
		}
	})
	uri := fmt.Sprintf("sip:127.0.0.1:%d", g.port())
	try := func(user, alg, password string) int {
		ph := newRegPhone(t, g.port(), user)
		contact := []string{fmt.Sprintf("<sip:%s@127.0.0.1:%d>", user, ph.p.port)}
		ph.p.send(ph.request(contact, "", ""))
		nonce := parseDigest(header(ph.response(), "WWW-Authenticate")[0])["nonce"]
		ph.p.send(ph.request(contact, "", handDigest(alg, user, password, nonce, uri, 1)))
		return statusCode(ph.response())
	}
	for _, c := range []struct {
		user, alg, pw string
		want          int
	}{
		{"desk7", "SHA-256", "phone-secret", 200},
		{"desk7", "MD5", "phone-secret", 200},
		{"desk7", "SHA-256", "wrong", 403},
		{"desk7@example.com", "MD5", "phone-secret", 403}, // the HA1 covers desk7 only
		{"md5only", "MD5", "pw", 200},
		{"md5only", "SHA-256", "pw", 403},
	} {
		if got := try(c.user, c.alg, c.pw); got != c.want {
			t.Errorf("%s with %s: %d, want %d", c.user, c.alg, got, c.want)
		}
	}
}

// TestRegisterBackoffAndNonceTablesUnderConcurrentUse loops the racing operations of the
// brute-force and replay tables from many goroutines under -race: failures, lookups and
// resets of shared keys, and nonce uses with growing and repeated counts. Each nonce count is
// accepted exactly once.
func TestRegisterBackoffAndNonceTablesUnderConcurrentUse(t *testing.T) {
	b := newAuthBackoff(1, time.Millisecond, 10*time.Millisecond, time.Now)
	var n nonceUses
	var accepted atomic.Int64
	done := make(chan struct{})
	const workers, rounds = 8, 500
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range rounds {
				key := fmt.Sprintf("ip:127.0.0.%d", i%4)
				b.fail(key)
				_ = b.blocked(key)
				if i%50 == w {
					b.reset(key)
				}
				if n.use("shared-nonce", true, fmt.Sprintf("%08x", i+1), time.Now()) == nonceFresh {
					accepted.Add(1)
				}
			}
		}()
	}
	for range workers {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("workers did not finish")
		}
	}
	// Counts 1..rounds were each offered by every worker: a count is accepted only when it
	// is above every count accepted before it, so at most rounds acceptances.
	if a := accepted.Load(); a < 1 || a > rounds {
		t.Errorf("%d nonce counts accepted, want between 1 and %d", a, rounds)
	}
}

// FuzzDigestURIAndNonce feeds arbitrary digest uris and nonces to the checks that see them
// before any password: no panic, and a nonce we did not issue to that source is never good.
func FuzzDigestURIAndNonce(f *testing.F) {
	f.Add("sip:127.0.0.1:5060", "6b13554c.e639c78a598b06d3.94f6fe84317a71731c0e7ab5f4fe1b2a")
	f.Add("sips:[::1];transport=tls", "..")
	f.Add("", "x.y")
	s := &Server{now: time.Now}
	ru := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5060}
	src := netip.MustParseAddr("127.0.0.2")
	f.Fuzz(func(t *testing.T, uri, nonce string) {
		_ = sameURI(uri, ru)
		if s.boundNonceOK(nonce, src, "REGISTER") {
			t.Fatalf("forged nonce %q accepted", nonce) // only boundNonce's (HMAC) can pass
		}
		var n nonceUses
		_ = n.use(nonce, true, uri, time.Now())
	})
}
