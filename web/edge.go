package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/apierror"
)

// EdgeOptions configure Edge.
type EdgeOptions struct {
	// AllowedHosts are the Host header values answered (host names or IP addresses, compared
	// without port and case); "*ip" allows any IP address. Empty: every host (tests only).
	AllowedHosts []string
	// AnyHost are paths answered whatever the Host (health checks, which balancers and
	// orchestrators send with the pod's or node's address).
	AnyHost []string
}

// Edge wraps the gateway's whole HTTP handler with what every response needs, whoever serves
// it:
//
//   - The Host header must be one of EdgeOptions.AllowedHosts, or the answer is 421
//     Misdirected Request (RFC 9110 §15.5.20: this server is not authoritative for that
//     host) before any handler runs. That is what stops DNS rebinding: a page on
//     attacker.example whose name is re-pointed at 127.0.0.1 makes the browser send
//     "Host: attacker.example" to the gateway with the page's own origin, which the
//     same-origin checks cannot tell from the real page. 421 rather than 403: nothing is
//     forbidden to the client, the request reached a server that does not serve that name,
//     and a client (or proxy) may retry it on the right one.
//   - Security headers: a Content-Security-Policy that forbids framing (frame-ancestors
//     'none', against clickjacking of the agent page's buttons) and, unless the handler sets
//     its own, any content at all (the API's JSON); X-Content-Type-Options: nosniff (a JSON
//     or WAV answer is never run as script); Referrer-Policy: no-referrer (a ticket URL never
//     leaks to a link's target); X-Frame-Options: DENY for browsers without CSP level 2.
func Edge(next http.Handler, opts EdgeOptions) http.Handler {
	allowed := map[string]bool{}
	anyIP := false
	for _, h := range opts.AllowedHosts {
		h = normalHost(h)
		if h == "*ip" {
			anyIP = true
		}
		allowed[h] = true
	}
	anyHost := map[string]bool{}
	for _, p := range opts.AnyHost {
		anyHost[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		// media-src 'self': a recording opened in its own tab plays in the browser's media document.
		hd.Set("Content-Security-Policy", "default-src 'none'; media-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		if len(allowed) > 0 && !anyHost[r.URL.Path] {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			host = normalHost(host)
			ok := allowed[host]
			if !ok && anyIP {
				_, err := netip.ParseAddr(host)
				ok = err == nil
			}
			if !ok {
				apierror.Write(w, apierror.Error{Status: http.StatusMisdirectedRequest, Description: "this gateway does not answer for that host name; use its configured address (http.allowed_hosts)"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// normalHost lower-cases h and drops IPv6 brackets and a final dot.
func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}
