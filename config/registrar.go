package config

import (
	"encoding/hex"
	"strings"

	"github.com/switchboard-voice/switchboard/sip"
)

// SIPRegistrar tunes the registrar of agents' SIP phones (REGISTER, RFC 3261 §10).
type SIPRegistrar struct {
	// PhoneNetworks lists networks a phone's Contact may name even when its REGISTER came from
	// another address; calls to such a contact go to the contact itself. Outside them a
	// Contact must be the REGISTER's source address or a private (NAT'd) address, and calls go
	// to the source address. Default none.
	PhoneNetworks []Prefix `yaml:"phone_networks"`
	// DigestAlgorithms are offered in the REGISTER challenge, in order of preference
	// (RFC 8760): SHA-256 and MD5 (default both, SHA-256 first).
	DigestAlgorithms []string `yaml:"digest_algorithms"`
	// MaxBindingsPerAgent caps one agent's registered contacts (default 5; 0 no limit).
	MaxBindingsPerAgent int `yaml:"max_bindings_per_agent"`
	// MaxContactsPerRegister caps the Contact headers of one REGISTER (default 5; 0 no limit).
	MaxContactsPerRegister int `yaml:"max_contacts_per_register"`
	// AuthFailuresFree is how many digest failures a source IP or an agent may have before
	// REGISTER backoff starts (default 3; 0: from the first failure).
	AuthFailuresFree int `yaml:"auth_failures_free"`
	// AuthBackoff is the first backoff, doubled with each further failure up to
	// AuthBackoffMax (defaults 1s and 5m; 0 turns the backoff off).
	AuthBackoff    Duration `yaml:"auth_backoff"`
	AuthBackoffMax Duration `yaml:"auth_backoff_max"`
}

// Defaults of SIPRegistrar: sip's registrar defaults.
const (
	DefaultMaxBindingsPerAgent    = sip.DefaultMaxBindingsPerAgent
	DefaultMaxContactsPerRegister = sip.DefaultMaxContactsPerRegister
	DefaultRegisterFailuresFree   = sip.DefaultAuthFailuresFree
	DefaultRegisterBackoff        = sip.DefaultAuthBackoffBase
	DefaultRegisterBackoffMax     = sip.DefaultAuthBackoffMax
)

// DefaultDigestAlgorithms are the digest algorithms offered by default, SHA-256 first (sip's).
func DefaultDigestAlgorithms() []string { return sip.DefaultRegistrarOptions().DigestAlgorithms }

func (r SIPRegistrar) validate(k *checker) {
	if len(r.DigestAlgorithms) == 0 {
		k.add("sip.registrar.digest_algorithms", "must list SHA-256, MD5 or both")
	}
	checkDigestAlgorithms(k, "sip.registrar.digest_algorithms", r.DigestAlgorithms)
	if r.MaxBindingsPerAgent < 0 {
		k.add("sip.registrar.max_bindings_per_agent", "must not be negative (0 means no limit), got %d", r.MaxBindingsPerAgent)
	}
	if r.MaxContactsPerRegister < 0 {
		k.add("sip.registrar.max_contacts_per_register", "must not be negative (0 means no limit), got %d", r.MaxContactsPerRegister)
	}
	if r.AuthFailuresFree < 0 {
		k.add("sip.registrar.auth_failures_free", "must not be negative, got %d", r.AuthFailuresFree)
	}
	if r.AuthBackoff.D() < 0 {
		k.add("sip.registrar.auth_backoff", "must not be negative (0 turns the backoff off), got %s", r.AuthBackoff.D())
	}
	if r.AuthBackoff.D() > 0 && r.AuthBackoffMax.D() < r.AuthBackoff.D() {
		k.add("sip.registrar.auth_backoff_max", "must be at least auth_backoff (%s), got %s", r.AuthBackoff.D(), r.AuthBackoffMax.D())
	}
}

// validateSIP checks the agent's SIP phone credentials; seen maps the SIP usernames taken so far
// (lower case) to their path.
func (a Agent) validateSIP(k *checker, p string, seen map[string]string) {
	if a.SIPSecret != "" && a.SIPSecretHA1 != nil {
		k.add(p+".sip_secret", "give sip_secret or sip_secret_ha1, not both")
	}
	if a.SIPUsername != "" && (a.SIPSecret == "" && a.SIPSecretHA1 == nil) {
		k.add(p+".sip_username", "needs sip_secret or sip_secret_ha1 (without them the phone registers as the email)")
	}
	if strings.ContainsAny(a.SIPUsername, ": \t\"\\") || len(a.SIPUsername) > 128 {
		k.add(p+".sip_username", "must be at most 128 bytes without spaces, quotes, backslashes or ':'")
	}
	if strings.ContainsAny(a.SIPSecret, "\r\n") {
		k.add(p+".sip_secret", "must be one line")
	}
	if h := a.SIPSecretHA1; h != nil {
		if h.MD5 == "" && h.SHA256 == "" {
			k.add(p+".sip_secret_ha1", "give md5, sha256 or both")
		}
		hexOf := func(key, v string, n int) {
			if b, err := hex.DecodeString(v); v != "" && (err != nil || len(b) != n) {
				k.add(p+".sip_secret_ha1."+key, "must be %d hex digits (H(sip_username:switchboard:secret))", 2*n)
			}
		}
		hexOf("md5", h.MD5, 16)
		hexOf("sha256", h.SHA256, 32)
	}
	if a.SIPSecret != "" || a.SIPSecretHA1 != nil {
		u := strings.ToLower(a.SIPUser())
		if first, dup := seen[u]; dup {
			k.add(p+".sip_username", "%q is already the SIP username of %s", a.SIPUser(), first)
		} else {
			seen[u] = p
		}
	}
}

// checkDigestAlgorithms checks a list of digest algorithms at path: each SHA-256 or MD5, once.
func checkDigestAlgorithms(k *checker, path string, algs []string) {
	seen := map[string]bool{}
	for i, a := range algs {
		u := strings.ToUpper(a)
		switch {
		case u != "SHA-256" && u != "MD5":
			k.add(path+index(i), "%q is not a digest algorithm: want SHA-256 or MD5", a)
		case seen[u]:
			k.add(path+index(i), "%s is listed twice", a)
		}
		seen[u] = true
	}
}
