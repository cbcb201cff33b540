package sip

import (
	"crypto/md5"
	"crypto/rand"
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

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
