package sip

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// digestCreds are the parameters of an Authorization header (RFC 2617 §3.2.2, RFC 8760).
type digestCreds map[string]string

// parseDigest parses `Digest k=v, k="v", ...`. It returns nil when the scheme is not Digest or
// the value is malformed.
func parseDigest(h string) digestCreds {
	h = strings.TrimSpace(h)
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Digest") {
		return nil
	}
	out := digestCreds{}
	for len(rest) > 0 {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			break
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			return nil
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimLeft(v, " \t")
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return nil
			}
			out[k] = v[1 : end+1]
			rest = v[end+2:]
		} else {
			val, r, _ := strings.Cut(v, ",")
			out[k] = strings.TrimSpace(val)
			rest = r
		}
		if len(out) > 32 {
			return nil
		}
	}
	return out
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// verifyDigest checks an MD5 digest response (RFC 2617 §3.2.2.1, with or without qop=auth)
// against the expected user, password, realm and one of our issued nonces.
func verifyDigest(c digestCreds, method, user, pass, realm string, nonceOK func(string) bool) bool {
	if c == nil || c["username"] != user || c["realm"] != realm || !nonceOK(c["nonce"]) {
		return false
	}
	if alg := c["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
		return false
	}
	ha1 := md5hex(user + ":" + realm + ":" + pass)
	ha2 := md5hex(method + ":" + c["uri"])
	var want string
	switch c["qop"] {
	case "":
		want = md5hex(ha1 + ":" + c["nonce"] + ":" + ha2)
	case "auth":
		want = md5hex(ha1 + ":" + c["nonce"] + ":" + c["nc"] + ":" + c["cnonce"] + ":auth:" + ha2)
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c["response"]))) == 1
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
