package config

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// loopbackListen reports whether addr (host:port) binds loopback only: an IP on loopback or
// "localhost".
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Secure reports whether the session cookie is Secure (and __Host-): http.secure_cookies, or
// by default whenever the listener is not loopback-only — a gateway reachable from other
// machines is meant to sit behind TLS.
func (h HTTP) Secure() bool {
	if h.SecureCookies != nil {
		return *h.SecureCookies
	}
	return !loopbackListen(h.Listen)
}

// BaseURL is what next_page links are built on: http.public_url, or http://LISTEN when the
// listener names a host, or "" (relative links) when it binds every interface.
func (h HTTP) BaseURL() string {
	if h.PublicURL != "" {
		return strings.TrimRight(h.PublicURL, "/")
	}
	if unspecified(h.Listen) {
		return ""
	}
	return "http://" + h.Listen
}

// AllowedHostList is the Host header values the gateway answers: http.allowed_hosts when set;
// otherwise the listener's host, the loopback names (localhost, 127.0.0.1, ::1) and the host
// of http.public_url — and, when the listener binds every interface, any IP address ("*ip").
// A host name not on the list is what DNS rebinding sends, never an IP address.
func (h HTTP) AllowedHostList() []string {
	if len(h.AllowedHosts) > 0 {
		return h.AllowedHosts
	}
	out := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(h.Listen); err == nil {
		if unspecified(h.Listen) {
			out = append(out, "*ip")
		} else {
			out = append(out, host)
		}
	}
	if u, err := url.Parse(h.PublicURL); err == nil && u.Hostname() != "" {
		out = append(out, u.Hostname())
	}
	return out
}

// TrustedProxyNetworks is http.trusted_proxies as networks (an address is its /32 or /128).
func (h HTTP) TrustedProxyNetworks() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range h.TrustedProxies {
		if pf, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pf.Masked())
		} else if a, err := netip.ParseAddr(p); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

func (c *Config) validateHTTP(k *checker) {
	h := c.HTTP
	if h.PublicURL != "" {
		u, err := url.Parse(h.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			k.add("http.public_url", "%q is not a base URL: write scheme and host only, e.g. https://gw.example.com or http://10.0.0.5:8080", h.PublicURL)
		}
	}
	for i, a := range h.AllowedHosts {
		if a == "*ip" {
			continue
		}
		if !validHost(a) {
			k.add("http.allowed_hosts"+index(i), "%q is not a host name or IP address (no port, no scheme; \"*ip\" allows any IP address)", a)
		}
	}
	for i, p := range h.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				k.add("http.trusted_proxies"+index(i), "%q is not an IP network such as 10.0.0.0/8 or an address", p)
			}
		}
	}
	if h.TokenTTL.D() < time.Minute {
		k.add("http.token_ttl", "must be at least 1m, got %s", h.TokenTTL)
	}
	if h.AuthBackoff.Failures < 1 || h.AuthBackoff.Failures > 1000 {
		k.add("http.auth_backoff.failures", "must be from 1 to 1000, got %d", h.AuthBackoff.Failures)
	}
	if h.AuthBackoff.Initial.D() <= 0 {
		k.add("http.auth_backoff.initial", "must be positive, got %s", h.AuthBackoff.Initial)
	}
	if h.AuthBackoff.Max.D() < h.AuthBackoff.Initial.D() {
		k.add("http.auth_backoff.max", "must be at least http.auth_backoff.initial (%s), got %s", h.AuthBackoff.Initial, h.AuthBackoff.Max)
	}
	if h.BcryptConcurrency < 1 || h.BcryptConcurrency > 64 {
		k.add("http.bcrypt_concurrency", "must be from 1 to 64, got %d", h.BcryptConcurrency)
	}
	if h.MaxUploadBytes < 1024 || h.MaxUploadBytes > 1<<30 {
		k.add("http.max_upload_bytes", "must be from 1024 (1 KiB) to 1073741824 (1 GiB; a file is held in memory while stored), got %d", h.MaxUploadBytes)
	}
}
