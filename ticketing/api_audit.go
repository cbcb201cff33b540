package ticketing

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// auditQueryNames maps the query parameters of GET /audit_logs to the filter they set: Zendesk's
// names (filter[...]), and the short ones the API documented first (source_type, since, …).
var auditQueryNames = map[string]string{
	"filter[source_type]": "source_type", "source_type": "source_type",
	"filter[source_id]": "source_id", "source_id": "source_id",
	"filter[actor_id]": "actor_id", "actor_id": "actor_id",
	"filter[action]": "action", "action": "action",
	"filter[ip_address]": "ip_address",
	"filter[created_at]": "created_at", "filter[created_at][]": "created_at",
	"since":      "since",
	"page[size]": "", "page[after]": "", "page[before]": "", "sort": "",
}

// auditFilter reads the query of GET /audit_logs. Every problem is a 422 naming the parameter
// as the client wrote it: a filter misspelt or misread would list the whole trail silently.
func auditFilter(q url.Values) (AuditLogFilter, error) {
	f := AuditLogFilter{Descending: true, Limit: 100}
	one := func(name string) (string, error) {
		if len(q[name]) > 1 {
			return "", invalidField(name, "may be given once")
		}
		return q.Get(name), nil
	}
	posInt := func(name string) (int64, error) {
		v, err := one(name)
		if err != nil {
			return 0, err
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n <= 0 {
			return 0, invalidField(name, "must be a positive whole number, got %q", cleanAudit(v))
		}
		return n, nil
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		what, known := auditQueryNames[name]
		if !known {
			if strings.HasPrefix(name, "filter[") || strings.HasPrefix(name, "page[") {
				return f, invalidField(name, "is not a filter of audit logs (filters: source_type, source_id, actor_id, action, ip_address, created_at)")
			}
			continue // other parameters (e.g. a cache buster) are ignored, as elsewhere
		}
		var err error
		switch what {
		case "source_type":
			f.SourceType, err = one(name)
			if err == nil && !slices.Contains([]string{AuditSourceTicket, AuditSourceUser, AuditSourceSetting}, f.SourceType) {
				err = invalidField(name, "must be ticket, user or account_setting, got %q", cleanAudit(f.SourceType))
			}
		case "source_id":
			f.SourceID, err = posInt(name)
		case "actor_id":
			f.ActorID, err = posInt(name)
		case "action":
			f.Action, err = one(name)
			if _, ok := auditActions[f.Action]; err == nil && !ok {
				err = invalidField(name, "is not an audited action, got %q", cleanAudit(f.Action))
			}
		case "ip_address":
			var v string
			if v, err = one(name); err == nil {
				a, perr := netip.ParseAddr(v)
				if perr != nil {
					err = invalidField(name, "must be an IPv4 or IPv6 address, got %q", cleanAudit(v))
				}
				f.IPAddress = a.String()
			}
		case "created_at":
			// Zendesk's form: the parameter twice, the start then the end.
			vs := q[name]
			if len(vs) != 2 {
				err = invalidField(name, "must be given twice, the start then the end (RFC 3339 times), got %d", len(vs))
				break
			}
			from, ferr := time.Parse(time.RFC3339, vs[0])
			to, terr := time.Parse(time.RFC3339, vs[1])
			switch {
			case ferr != nil || terr != nil:
				err = invalidField(name, "must be RFC 3339 times (2026-01-02T15:04:05Z), got %q and %q", cleanAudit(vs[0]), cleanAudit(vs[1]))
			case to.Before(from):
				err = invalidField(name, "the end %s is before the start %s", vs[1], vs[0])
			default:
				f.From, f.To = from, to
			}
		case "since":
			var v string
			if v, err = one(name); err == nil {
				t, perr := time.Parse(time.RFC3339, v)
				if perr != nil {
					err = invalidField(name, "must be an RFC 3339 time (2026-01-02T15:04:05Z), got %q", cleanAudit(v))
				} else if f.From.IsZero() || t.After(f.From) {
					f.From = t
				}
			}
		}
		if err != nil {
			return f, err
		}
	}
	if f.SourceID != 0 && f.SourceType == "" {
		name := "filter[source_id]"
		if q.Has("source_id") {
			name = "source_id"
		}
		return f, invalidField(name, "needs filter[source_type] too (ids of tickets and users overlap)")
	}
	if v := q.Get("sort"); v != "" {
		switch v {
		case "created_at":
			f.Descending = false
		case "-created_at":
		default:
			return f, invalidField("sort", "must be created_at or -created_at, got %q", cleanAudit(v))
		}
	}
	if v := q.Get("page[size]"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return f, invalidField("page[size]", "must be a whole number from 1 to 100, got %q", cleanAudit(v))
		}
		f.Limit = n
	}
	for _, name := range []string{"page[after]", "page[before]"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		c, err := ParseAuditCursor(v)
		if err != nil {
			return f, invalidField(name, "%q is not a cursor from meta.after_cursor or meta.before_cursor", cleanAudit(v))
		}
		if name == "page[after]" {
			f.After = &c
		} else {
			f.Before = &c
		}
	}
	if f.After != nil && f.Before != nil {
		return f, invalidField("page[before]", "cannot be given with page[after]")
	}
	return f, nil
}

// listAuditLogs serves GET /audit_logs: the audit trail, newest first unless sort=created_at,
// with Zendesk's cursor pagination (meta.has_more, after_cursor, before_cursor; links.next,
// prev). Admins see every entry; an agent only the entries of their own actions.
func (a *API) listAuditLogs(w http.ResponseWriter, r *http.Request, p Principal) error {
	f, err := auditFilter(r.URL.Query())
	if err != nil {
		return err
	}
	if !p.IsAdmin() {
		if f.ActorID != 0 && f.ActorID != p.UserID {
			writeAuditPage(w, a, r, f, nil, false)
			return nil
		}
		f.ActorID = p.UserID
	}
	logs, more, err := a.store.AuditLogs(r.Context(), f)
	if err != nil {
		return err
	}
	writeAuditPage(w, a, r, f, logs, more)
	return nil
}

func writeAuditPage(w http.ResponseWriter, a *API, r *http.Request, f AuditLogFilter, logs []AuditLog, more bool) {
	for i := range logs {
		logs[i].URL = a.opts.PublicURL + a.prefix + "/audit_logs/" + strconv.FormatInt(logs[i].ID, 10)
	}
	meta := map[string]any{"has_more": more, "after_cursor": nil, "before_cursor": nil}
	links := map[string]any{"next": nil, "prev": nil}
	if len(logs) > 0 {
		first, last := logs[0], logs[len(logs)-1]
		after := AuditCursor{At: last.CreatedAt.Time, ID: last.ID}.String()
		before := AuditCursor{At: first.CreatedAt.Time, ID: first.ID}.String()
		meta["after_cursor"], meta["before_cursor"] = after, before
		// has_more is about the page's direction: following a before cursor, the entries
		// further back; otherwise the entries after.
		hasNext, hasPrev := more, f.After != nil
		if f.Before != nil {
			hasNext, hasPrev = true, more
		}
		if hasNext {
			links["next"] = a.auditPageURL(r, "page[after]", after)
		}
		if hasPrev {
			links["prev"] = a.auditPageURL(r, "page[before]", before)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit_logs": nonNil(logs), "meta": meta, "links": links})
}

// auditPageURL is r's URL with one cursor, under APIOptions.PublicURL (see pageURL).
func (a *API) auditPageURL(r *http.Request, name, cursor string) string {
	q := r.URL.Query()
	q.Del("page[after]")
	q.Del("page[before]")
	q.Set(name, cursor)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	return a.opts.PublicURL + u.String()
}

// getAuditLog serves GET /audit_logs/{id}; an agent's view is their own entries (404 for
// the others, as for an id that does not exist).
func (a *API) getAuditLog(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "audit log")
	if err != nil {
		return err
	}
	l, err := a.store.AuditLog(r.Context(), id)
	if err != nil {
		return err
	}
	if !p.IsAdmin() && (l.ActorID == nil || *l.ActorID != p.UserID) {
		return notFound("audit log %d not found", id)
	}
	l.URL = a.opts.PublicURL + a.prefix + "/audit_logs/" + strconv.FormatInt(l.ID, 10)
	writeJSON(w, http.StatusOK, map[string]any{"audit_log": l})
	return nil
}
