package sip

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Digest authentication of a trunk's inbound INVITEs (Trunk.Username): the same rules as the
// registrar's for REGISTER (digest.go) —
//
//   - the challenge offers the trunk's algorithms (DigestAlgorithms, MD5 first by default: a
//     carrier's UA that reads only the first challenge, SIPp 3.6 among them, knows MD5) with
//     qop="auth", one WWW-Authenticate each (RFC 8760 §2.4);
//   - its nonce is bound to the INVITE's real source address (a trusted front's client) and
//     the method, lives five minutes, and is answered with a new challenge, stale=true, from
//     another address or once expired: a nonce fetched from one address cannot be spent in an
//     INVITE spoofed from another;
//   - with qop=auth the nonce count must grow (RFC 7616 §3.4): a replayed INVITE, or one whose
//     nc was already used, is refused 403 and counted; without qop (MD5 only, RFC 2069) a
//     nonce is good for one INVITE;
//   - the digest's uri must be the Request-URI (RFC 7616 §3.4.6): 400 otherwise.
//
// Wrong credentials are answered with a new challenge (401) and counted as auth_failure. There
// is no backoff as for REGISTER: a trunk's source is often an allowed carrier address that
// anyone can forge over UDP, so failures from it must not lock the carrier out; an auth-only
// trunk's sources stay under the per-source rate limit instead.

// DefaultTrunkDigestAlgorithms are the algorithms a trunk's challenge offers by default.
var DefaultTrunkDigestAlgorithms = []string{DigestMD5, DigestSHA256}

// trunkRealm is the trunk's digest realm ("switchboard" by default).
func (t Trunk) trunkRealm() string {
	if t.Realm != "" {
		return t.Realm
	}
	return "switchboard"
}

func (t Trunk) digestAlgorithms() []string {
	if len(t.DigestAlgorithms) > 0 {
		return t.DigestAlgorithms
	}
	return DefaultTrunkDigestAlgorithms
}

// trunkAuth checks the digest credentials of an INVITE on trunk, when the trunk has them. It
// reports whether the INVITE may go on; when not, it has answered it.
func (s *Server) trunkAuth(req *sip.Request, tx sip.ServerTransaction, trunk Trunk) bool {
	if trunk.Username == "" {
		return true
	}
	realm := trunk.trunkRealm()
	src := s.source(req).Addr()
	method := string(req.Method)
	var creds digestCreds
	if h := req.GetHeader("Authorization"); h != nil {
		creds = parseDigest(h.Value())
	}
	if creds == nil {
		s.trunkChallenge(req, tx, trunk, false)
		return false
	}
	if creds["nonce"] != "" && creds["realm"] == realm && !s.boundNonceOK(creds["nonce"], src, method) {
		// Expired, another address's (a nonce fetched elsewhere for a spoofed INVITE, or a
		// carrier's other signalling address), another node's or another method's: no proof of
		// wrong credentials — challenge again, for this address.
		s.trunkChallenge(req, tx, trunk, true)
		return false
	}
	if u := creds["uri"]; u == "" || !sameURI(u, req.Recipient) {
		s.security(secMalformed, req, "digest uri "+logValue(u)+" is not the Request-URI")
		s.reply(req, tx, 400, "Bad Request (digest uri does not match the Request-URI)")
		return false
	}
	if !trunkDigestOK(creds, trunk, realm, method) {
		s.security(secAuthFailure, req, "wrong digest credentials on a trunk INVITE (trunk "+trunk.Name+")")
		s.trunkChallenge(req, tx, trunk, false)
		return false
	}
	switch s.trunkNonces.use(creds["nonce"], creds["qop"] != "", creds["nc"], s.now()) {
	case nonceReplay:
		s.security(secAuthFailure, req, "replayed digest nonce count on a trunk INVITE (trunk "+trunk.Name+")")
		s.reply(req, tx, 403, "Forbidden (replayed nonce count)")
		return false
	case nonceStale:
		s.trunkChallenge(req, tx, trunk, true)
		return false
	}
	return true
}

// trunkDigestOK checks c against the trunk's username and password: our realm, an algorithm
// the trunk offers, and the response (qop=auth; without qop only for MD5).
func trunkDigestOK(c digestCreds, trunk Trunk, realm, method string) bool {
	if c["username"] != trunk.Username || c["realm"] != realm {
		return false
	}
	alg := c["algorithm"]
	if alg == "" {
		alg = DigestMD5
	}
	h := digestHash(alg)
	if h == nil || !offers(trunk.digestAlgorithms(), alg) {
		return false
	}
	ha1, err := HA1(alg, trunk.Username, realm, trunk.Password)
	if err != nil {
		return false
	}
	return checkDigestResponse(c, method, ha1, h, strings.EqualFold(alg, DigestMD5))
}

// offers reports whether algs holds alg, without regard to case.
func offers(algs []string, alg string) bool {
	for _, a := range algs {
		if strings.EqualFold(a, alg) {
			return true
		}
	}
	return false
}

// trunkChallenge answers 401 with a nonce bound to the INVITE's source, one WWW-Authenticate
// per algorithm of the trunk; stale=true when the carrier's nonce merely expired or was issued
// to another address.
func (s *Server) trunkChallenge(req *sip.Request, tx sip.ServerTransaction, trunk Trunk, stale bool) {
	nonce := s.boundNonce(s.source(req).Addr(), string(req.Method))
	algs := trunk.digestAlgorithms()
	hs := make([]sip.Header, 0, len(algs))
	for _, alg := range algs {
		v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=%s, qop="auth"`, trunk.trunkRealm(), nonce, strings.ToUpper(alg))
		if stale {
			v += ", stale=true"
		}
		hs = append(hs, sip.NewHeader("WWW-Authenticate", v))
	}
	s.reply(req, tx, 401, "Unauthorized", hs...)
}
