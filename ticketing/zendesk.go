package ticketing

import (
	"net/http"
	"net/url"
	"strconv"
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

// resourceURL is the API URL of a resource as Zendesk writes it ("…/api/v2/users/7.json"):
// under APIOptions.PublicURL when set, else a relative reference.
func (a *API) resourceURL(path string) string {
	return a.opts.PublicURL + a.prefix + path + ".json"
}

// write answers m as JSON after filling in the url of every user, ticket and identity in it.
func (a *API) write(w http.ResponseWriter, status int, m map[string]any) {
	for k, v := range m {
		m[k] = a.withURLs(v)
	}
	writeJSON(w, status, m)
}

func (a *API) withURLs(v any) any {
	switch x := v.(type) {
	case User:
		x.URL = a.resourceURL("/users/" + strconv.FormatInt(x.ID, 10))
		return x
	case []User:
		for i := range x {
			x[i] = a.withURLs(x[i]).(User)
		}
	case Ticket:
		x.URL = a.resourceURL("/tickets/" + strconv.FormatInt(x.ID, 10))
		return x
	case *Ticket:
		if x != nil {
			*x = a.withURLs(*x).(Ticket)
		}
	case []Ticket:
		for i := range x {
			x[i] = a.withURLs(x[i]).(Ticket)
		}
	case Identity:
		x.URL = a.resourceURL("/users/" + strconv.FormatInt(x.UserID, 10) + "/identities/" + strconv.FormatInt(x.ID, 10))
		return x
	case []Identity:
		for i := range x {
			x[i] = a.withURLs(x[i]).(Identity)
		}
	case TicketField:
		x.URL = a.resourceURL("/ticket_fields/" + strconv.FormatInt(x.ID, 10))
		return x
	case []TicketField:
		for i := range x {
			x[i] = a.withURLs(x[i]).(TicketField)
		}
	case Group:
		x.URL = a.resourceURL("/groups/" + strconv.FormatInt(x.ID, 10))
		return x
	case []Group:
		for i := range x {
			x[i] = a.withURLs(x[i]).(Group)
		}
	case GroupMembership:
		x.URL = a.resourceURL("/group_memberships/" + strconv.FormatInt(x.ID, 10))
		return x
	case []GroupMembership:
		for i := range x {
			x[i] = a.withURLs(x[i]).(GroupMembership)
		}
	case []SearchResult:
		for i := range x {
			x[i] = a.withURLs(x[i]).(SearchResult)
		}
	case SearchResult:
		if x.Ticket != nil {
			t := a.withURLs(*x.Ticket).(Ticket)
			x.Ticket = &t
		}
		if x.User != nil {
			u := a.withURLs(*x.User).(User)
			x.User = &u
		}
		return x
	}
	return v
}
