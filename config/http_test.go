package config

import (
	"errors"
	"slices"
	"testing"
)

// The session cookie is Secure (and __Host-) by default whenever the listener is reachable
// from other machines — a gateway behind a TLS proxy — and not on loopback, where the dev
// configuration runs over plain http://127.0.0.1:8080.
func TestHTTPDefaults_SecureUnlessLoopback(t *testing.T) {
	for _, c := range []struct {
		doc        string
		secure     bool
		base       string
		allowsHost string
	}{
		{"", false, "http://127.0.0.1:8080", "127.0.0.1"},
		{"http: {listen: '[::1]:8080'}", false, "http://[::1]:8080", "::1"},
		{"http: {listen: 'localhost:8080'}", false, "http://localhost:8080", "localhost"},
		{"http: {listen: '0.0.0.0:8080'}", true, "", "*ip"},
		{"http: {listen: '10.1.2.3:8080', public_url: 'https://gw.example.com/'}", true, "https://gw.example.com", "gw.example.com"},
		{"http: {listen: '10.1.2.3:8080', secure_cookies: false}", false, "http://10.1.2.3:8080", "10.1.2.3"},
		{"http: {secure_cookies: true}", true, "http://127.0.0.1:8080", "localhost"},
	} {
		cfg, err := Parse([]byte(base + c.doc))
		if err != nil {
			t.Fatalf("%s: %v", c.doc, err)
		}
		if got := cfg.HTTP.Secure(); got != c.secure {
			t.Errorf("%q: Secure() = %v, want %v", c.doc, got, c.secure)
		}
		if got := cfg.HTTP.BaseURL(); got != c.base {
			t.Errorf("%q: BaseURL() = %q, want %q", c.doc, got, c.base)
		}
		if hosts := cfg.HTTP.AllowedHostList(); !slices.Contains(hosts, c.allowsHost) {
			t.Errorf("%q: allowed hosts %v lack %q", c.doc, hosts, c.allowsHost)
		}
	}
}

func TestHTTPValidation_NamesThePath(t *testing.T) {
	doc := base + `http:
  public_url: "ftp://x/y"
  allowed_hosts: [ok.example.com, "http://bad"]
  trusted_proxies: [10.0.0.0/8, nope]
  token_ttl: 1s
  auth_backoff: {failures: 0, initial: 2s, max: 1s}
  bcrypt_concurrency: 0
`
	_, err := Parse([]byte(doc))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want Problems", err)
	}
	want := []string{"http.public_url", "http.allowed_hosts[1]", "http.trusted_proxies[1]", "http.token_ttl",
		"http.auth_backoff.failures", "http.auth_backoff.max", "http.bcrypt_concurrency"}
	var got []string
	for _, p := range ps {
		got = append(got, p.Path)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no problem at %s; got %s", w, fmtProblems(ps))
		}
	}
}
