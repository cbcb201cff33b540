package ticketing

import (
	"net/http"
	"net/url"
	"strings"
)

// ZendeskPaths serves next with Zendesk's ".json" suffix taken off every path under prefix
// ("/api/v2/users/7.json" is "/api/v2/users/7"): Zendesk clients (node-zendesk, zenpy, the
// Zendesk PHP and Ruby clients) append it to every path. It wraps the whole mux, so the
// routes other packages mount under prefix (calls, lines, queues, recordings) answer with it
// too. {prefix}/openapi.json is a file name, not a suffix, and is left alone.
func ZendeskPaths(prefix string, next http.Handler) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/") + "/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, prefix) || !strings.HasSuffix(p, ".json") || p == prefix+"openapi.json" {
			next.ServeHTTP(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := new(url.URL)
		*u = *r.URL
		u.Path = strings.TrimSuffix(p, ".json")
		if u.RawPath != "" {
			u.RawPath = strings.TrimSuffix(u.RawPath, ".json")
		}
		r2.URL = u
		next.ServeHTTP(w, r2)
	})
}
