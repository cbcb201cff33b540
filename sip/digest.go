package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Digest authentication of REGISTER (RFC 7616 as used by SIP, RFC 3261 §22.4 and RFC 8760):
//
//   - the challenge offers SHA-256 and MD5 (RFC 8760 §2.4: one WWW-Authenticate per algorithm,
//     in our order of preference, SHA-256 first by default) with qop="auth";
//   - a nonce is bound to the source address and the method it was issued for (an HMAC under
//     the server's secret over its time, 8 random bytes, the source IP and the method), lives
//     five minutes, and is refused — re-challenged with stale=true, no failure — from another
//     address, for another method or once expired: a nonce fetched from one address cannot be
//     spent in a REGISTER spoofed from another;
//   - with qop=auth the nonce count (nc) must grow with every use of a nonce (RFC 7616 §3.4):
//     a replayed nc is refused with 403; without qop a nonce is good for one request;
//   - the digest's uri must be the Request-URI (RFC 7616 §3.4.6; RFC 2617 §3.2.2.5: 400 if not).

// Digest algorithms (RFC 8760 §2.2).
const (
	DigestMD5    = "MD5"
	DigestSHA256 = "SHA-256"
)

// nonceLifetime is how long a nonce of ours is good for.
const nonceLifetime = 5 * time.Minute

// boundNonce returns a nonce for a request of method from src.
func (s *Server) boundNonce(src netip.Addr, method string) string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	head := strconv.FormatInt(s.now().Unix(), 16) + "." + hex.EncodeToString(rnd[:])
	return head + "." + s.nonceMAC(head, src, method)
}

func (s *Server) nonceMAC(head string, src netip.Addr, method string) string {
	mac := hmac.New(sha256.New, s.secret[:])
	mac.Write([]byte(head + "|" + src.Unmap().String() + "|" + method))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// boundNonceOK reports whether n is a live nonce of ours issued to src for method.
func (s *Server) boundNonceOK(n string, src netip.Addr, method string) bool {
	i := strings.LastIndexByte(n, '.')
	if i < 0 {
		return false
	}
	head, sum := n[:i], n[i+1:]
	if !hmac.Equal([]byte(s.nonceMAC(head, src, method)), []byte(sum)) {
		return false
	}
	ts, _, _ := strings.Cut(head, ".")
	t, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return false
	}
	age := s.now().Unix() - t
	return age >= 0 && age < int64(nonceLifetime/time.Second)
}

// digestHash returns the hash function of a digest algorithm name (case-insensitive), or nil.
func digestHash(alg string) func(string) string {
	switch {
	case alg == "" || strings.EqualFold(alg, DigestMD5):
		return md5hex
	case strings.EqualFold(alg, DigestSHA256):
		return sha256hex
	}
	return nil
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// HA1 returns the digest HA1 of a secret, H(username:realm:secret) (RFC 7616 §3.4.2), in hex,
// for algorithm DigestMD5 or DigestSHA256: what AgentAccount.HA1MD5 and HA1SHA256 store.
func HA1(algorithm, username, realm, secret string) (string, error) {
	h := digestHash(algorithm)
	if h == nil || algorithm == "" {
		return "", fmt.Errorf("sip: digest algorithm %q: want %s or %s", algorithm, DigestSHA256, DigestMD5)
	}
	return h(username + ":" + realm + ":" + secret), nil
}

// checkDigestResponse checks c's response for method against ha1 with hash h (qop=auth, or no
// qop where allowed).
func checkDigestResponse(c digestCreds, method, ha1 string, h func(string) string, allowNoQop bool) bool {
	ha2 := h(method + ":" + c["uri"])
	var want string
	switch c["qop"] {
	case "":
		if !allowNoQop {
			return false
		}
		want = h(ha1 + ":" + c["nonce"] + ":" + ha2)
	case "auth":
		want = h(ha1 + ":" + c["nonce"] + ":" + c["nc"] + ":" + c["cnonce"] + ":auth:" + ha2)
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c["response"]))) == 1
}

// sameURI reports whether the digest uri names the Request-URI (RFC 7616 §3.4.6): scheme and
// host without regard to case, user and port (the scheme's default when absent) exactly.
func sameURI(digestURI string, ru sip.Uri) bool {
	var u sip.Uri
	if err := sip.ParseUri(digestURI, &u); err != nil {
		return false
	}
	port := func(x sip.Uri) int {
		if x.Port != 0 {
			return x.Port
		}
		if strings.EqualFold(x.Scheme, "sips") {
			return 5061
		}
		return 5060
	}
	return strings.EqualFold(u.Scheme, ru.Scheme) && strings.EqualFold(u.Host, ru.Host) && u.User == ru.User && port(u) == port(ru)
}

// nonceUses tracks the nonce counts seen per nonce (RFC 7616 §3.4: the server checks that nc
// grows). Entries are made only for requests whose digest was right, so the table holds at most
// the successful authentications of a nonce lifetime; at maxSources entries the expired ones
// are swept, and if none is, a new nonce is answered as stale until some expire.
type nonceUses struct {
	mu   sync.Mutex
	seen map[string]nonceUse
}

type nonceUse struct {
	nc      uint64
	expires time.Time
}

// Results of nonceUses.use.
const (
	nonceFresh  = iota // first use, or a higher nc: accept
	nonceReplay        // nc not above the last one seen: a replay
	nonceStale         // a nonce without qop used again, or no room: re-challenge
)

// use records a use of nonce at now: with qop, of nonce count ncHex.
func (n *nonceUses) use(nonce string, qop bool, ncHex string, now time.Time) int {
	var nc uint64
	if qop {
		v, err := strconv.ParseUint(ncHex, 16, 64)
		if err != nil || v == 0 {
			return nonceReplay
		}
		nc = v
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = map[string]nonceUse{}
	}
	if u, ok := n.seen[nonce]; ok && u.expires.After(now) {
		if !qop || u.nc == 0 {
			return nonceStale
		}
		if nc <= u.nc {
			return nonceReplay
		}
		n.seen[nonce] = nonceUse{nc: nc, expires: u.expires}
		return nonceFresh
	}
	if len(n.seen) >= maxSources {
		for k, u := range n.seen {
			if !u.expires.After(now) {
				delete(n.seen, k)
			}
		}
		if len(n.seen) >= maxSources {
			return nonceStale
		}
	}
	n.seen[nonce] = nonceUse{nc: nc, expires: now.Add(nonceLifetime)}
	return nonceFresh
}
