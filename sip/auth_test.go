package sip

import "strings"

// verifyDigest checks an MD5 digest response (RFC 2617 §3.2.2.1, with or without qop=auth)
// against the expected user, password, realm and nonce: the tests' check of the answers the
// gateway's outbound calls give to a carrier's challenge.
func verifyDigest(c digestCreds, method, user, pass, realm string, nonceOK func(string) bool) bool {
	if c == nil || c["username"] != user || c["realm"] != realm || !nonceOK(c["nonce"]) {
		return false
	}
	if alg := c["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
		return false
	}
	return checkDigestResponse(c, method, md5hex(user+":"+realm+":"+pass), md5hex, true)
}
