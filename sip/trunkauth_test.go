package sip

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// trunkDigest builds an Authorization header line for an INVITE to uri answering a trunk
// challenge with nonce, as user with password, in algorithm alg (qop=auth, nc; nc 0: no qop).
func trunkDigest(alg, user, password, realm, nonce, uri string, nc int) string {
	h := digestHash(alg)
	ha1 := h(user + ":" + realm + ":" + password)
	ha2 := h("INVITE:" + uri)
	if nc == 0 {
		return fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=%s\n",
			user, realm, nonce, uri, h(ha1+":"+nonce+":"+ha2), alg)
	}
	ncs := fmt.Sprintf("%08x", nc)
	resp := h(ha1 + ":" + nonce + ":" + ncs + ":5eed:auth:" + ha2)
	return fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=%s, qop=auth, nc=%s, cnonce=\"5eed\"\n",
		user, realm, nonce, uri, resp, alg, ncs)
}

// withAuth is uniqueInvite(to, tag) carrying the Authorization line auth.
func withAuth(to, tag, auth string) string {
	return strings.Replace(uniqueInvite(to, tag), "Max-Forwards: 70\n", "Max-Forwards: 70\n"+auth, 1)
}

// TestTrunkInviteDigest_BoundNonceReplayURIAndSHA256 is an attack on an auth-only trunk's
// digest, each step what it proves:
//   - the challenge offers MD5 first, then SHA-256, qop=auth;
//   - a nonce fetched from 127.0.0.2 and spent, with the right password, in an INVITE from
//     127.0.0.3 is answered with a new challenge (stale=true) for 127.0.0.3 and counts no
//     failure: a nonce cannot be carried to a spoofed source;
//   - a digest computed for another Request-URI gets 400;
//   - the right answer (qop=auth, nc 1) reaches the line, and the same Authorization again —
//     a captured INVITE replayed — gets 403 and counts auth_failure, while nc 2 on the same
//     nonce (a carrier reusing its nonce) is accepted;
//   - a wrong password gets a new challenge and counts auth_failure;
//   - a SHA-256 answer is accepted; an MD5 answer without qop, once;
//   - a nonce older than five minutes gets a new challenge, stale=true.
//
// Before, a trunk's nonce was a timestamp any address could spend, nc was not tracked and only
// MD5 was offered: a captured INVITE could be replayed for five minutes from anywhere.
func TestTrunkInviteDigest_BoundNonceReplayURIAndSHA256(t *testing.T) {
	var skew atomic.Int64
	g := startGateway(t, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		o.Trunks = []Trunk{{Name: "cloud", Username: "cloud", Password: "s3cret"}}
		o.RateLimit = RateLimit{PerSecond: 100, Burst: 100}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(context.Context, *Call) error {
			return &StatusError{Code: 486, Reason: "Busy Here"}
		})}}
	})
	const uri = "sip:+15550197@127.0.0.1"
	ask := func(src, tag, auth string) string {
		t.Helper()
		return udpExchangeFrom(t, src, g.port(), withAuth("+15550197", tag, auth), 5*time.Second)
	}
	failures := func() float64 {
		return g.counter("switchboard_security_events_total", "type", "auth_failure")
	}
	challenge := func(res string) (nonce string, algs []string) {
		t.Helper()
		if statusCode(res) != 401 {
			t.Fatalf("want a 401 challenge, got %d\n%s", statusCode(res), res)
		}
		for _, v := range header(res, "WWW-Authenticate") {
			d := parseDigest(v)
			if d["qop"] != "auth" || d["realm"] != "switchboard" {
				t.Fatalf("challenge %q: want qop=auth, realm switchboard", v)
			}
			nonce, algs = d["nonce"], append(algs, d["algorithm"])
		}
		return nonce, algs
	}

	nonce, algs := challenge(ask("127.0.0.2", "first", ""))
	if strings.Join(algs, ",") != "MD5,SHA-256" {
		t.Fatalf("algorithms offered %v, want MD5 then SHA-256", algs)
	}
	// Spent from another address: stale, no failure.
	res := ask("127.0.0.3", "moved", trunkDigest("MD5", "cloud", "s3cret", "switchboard", nonce, uri, 1))
	if other, _ := challenge(res); other == nonce || !strings.Contains(res, "stale=true") {
		t.Fatalf("nonce of 127.0.0.2 spent from 127.0.0.3: want a new nonce, stale=true\n%s", res)
	}
	// For another URI: 400.
	if res := ask("127.0.0.2", "uri", trunkDigest("MD5", "cloud", "s3cret", "switchboard", nonce, "sip:+15550100@127.0.0.1", 1)); statusCode(res) != 400 {
		t.Fatalf("digest for another uri: %d, want 400\n%s", statusCode(res), res)
	}
	// Right: the line answers. The same header again: a replay.
	good := trunkDigest("MD5", "cloud", "s3cret", "switchboard", nonce, uri, 1)
	if res := ask("127.0.0.2", "good", good); statusCode(res) != 486 {
		t.Fatalf("right credentials: %d, want the line's 486\n%s", statusCode(res), res)
	}
	if f := failures(); f != 0 {
		t.Fatalf("auth_failure %v before any failure (a stale nonce is none)", f)
	}
	if res := ask("127.0.0.2", "replay", good); statusCode(res) != 403 {
		t.Fatalf("replayed nonce count: %d, want 403\n%s", statusCode(res), res)
	}
	if res := ask("127.0.0.2", "nc2", trunkDigest("MD5", "cloud", "s3cret", "switchboard", nonce, uri, 2)); statusCode(res) != 486 {
		t.Fatalf("nc 2 on the same nonce: %d, want the line's 486\n%s", statusCode(res), res)
	}
	// Wrong password: a new challenge, a failure.
	nonce, _ = challenge(ask("127.0.0.2", "wrong", trunkDigest("MD5", "cloud", "guess", "switchboard", nonce, uri, 3)))
	// SHA-256, and MD5 without qop (once).
	if res := ask("127.0.0.2", "sha", trunkDigest("SHA-256", "cloud", "s3cret", "switchboard", nonce, uri, 1)); statusCode(res) != 486 {
		t.Fatalf("SHA-256 answer: %d, want the line's 486\n%s", statusCode(res), res)
	}
	nonce, _ = challenge(ask("127.0.0.2", "fresh", ""))
	noQop := trunkDigest("MD5", "cloud", "s3cret", "switchboard", nonce, uri, 0)
	if res := ask("127.0.0.2", "noqop", noQop); statusCode(res) != 486 {
		t.Fatalf("MD5 answer without qop: %d, want the line's 486\n%s", statusCode(res), res)
	}
	if res := ask("127.0.0.2", "noqop2", noQop); statusCode(res) != 401 || !strings.Contains(res, "stale=true") {
		t.Fatalf("MD5 answer without qop again: %d, want a new challenge, stale=true\n%s", statusCode(res), res)
	}
	// Expired.
	nonce, _ = challenge(ask("127.0.0.2", "old", ""))
	skew.Store(int64(6 * time.Minute))
	if res := ask("127.0.0.2", "expired", trunkDigest("MD5", "cloud", "s3cret", "switchboard", nonce, uri, 1)); statusCode(res) != 401 || !strings.Contains(res, "stale=true") {
		t.Fatalf("nonce older than five minutes: %d, want a new challenge, stale=true\n%s", statusCode(res), res)
	}
	if f := failures(); f != 2 {
		t.Errorf("auth_failure = %v, want 2 (the replay and the wrong password)", f)
	}
}

// A trunk whose digest_algorithms are [SHA-256] offers only SHA-256 and refuses an MD5 answer.
func TestTrunkInviteDigest_OnlyTheTrunksAlgorithms(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].Username, o.Trunks[0].Password, o.Trunks[0].Realm = "carrier", "secret", "carrier.example"
		o.Trunks[0].DigestAlgorithms = []string{DigestSHA256}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(context.Context, *Call) error {
			return &StatusError{Code: 486, Reason: "Busy Here"}
		})}}
	})
	res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second)
	wa := header(res, "WWW-Authenticate")
	if statusCode(res) != 401 || len(wa) != 1 || parseDigest(wa[0])["algorithm"] != "SHA-256" {
		t.Fatalf("want one SHA-256 challenge\n%s", res)
	}
	nonce := parseDigest(wa[0])["nonce"]
	const uri = "sip:+15550197@127.0.0.1"
	md5 := trunkDigest("MD5", "carrier", "secret", "carrier.example", nonce, uri, 1)
	if res := udpExchange(t, g.port(), rawInvite("+15550197", md5, pcmuOffer), 5*time.Second); statusCode(res) != 401 {
		t.Fatalf("MD5 answer to a SHA-256 trunk: %d, want 401\n%s", statusCode(res), res)
	}
	sha := trunkDigest("SHA-256", "carrier", "secret", "carrier.example", nonce, uri, 2)
	if res := udpExchange(t, g.port(), rawInvite("+15550197", sha, pcmuOffer), 5*time.Second); statusCode(res) != 486 {
		t.Fatalf("SHA-256 answer: %d, want the line's 486\n%s", statusCode(res), res)
	}
}

// TestTrunkInviteDigestWithSIPpCarrier: a real carrier UA (SIPp 3.6, which answers the first
// challenge it reads — MD5, qop=auth) on a trunk with inbound credentials: challenged, it
// sends the INVITE again with the credentials and the call is bridged to the desk and
// answered.
func TestTrunkInviteDigestWithSIPpCarrier(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, func(o *Options) {
		o.Trunks[0].Username, o.Trunks[0].Password = "carrier", "s3cret"
	})
	// -auth_uri: SIPp computes the digest for sip:HOST:PORT otherwise, which is not the
	// Request-URI (400; TestTrunkInviteDigest_BoundNonceReplayURIAndSHA256).
	b.carrier(t, "uac_trunk_auth.xml", "-au", "carrier", "-ap", "s3cret",
		"-auth_uri", fmt.Sprintf("15550197@127.0.0.1:%d", b.g.port())).wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome = %s, want answered", end.Outcome)
	}
	if f := b.g.counter("switchboard_security_events_total", "type", "auth_failure"); f != 0 {
		t.Errorf("auth_failure = %v, want 0", f)
	}
}
