package ticketing

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// search is GET /search?query=…: Zendesk's search for tickets and users (SearchQuery), with
// its offset pagination (page, per_page up to 100; next_page, previous_page; count) and
// sort_by, sort_order.
func (a *API) search(w http.ResponseWriter, r *http.Request, p Principal) error {
	q := r.URL.Query()
	sq, err := ParseSearchQuery(q.Get("query"))
	if err != nil {
		return err
	}
	pageNo, perPage := 1, 100
	if v := q.Get("page"); v != "" {
		if pageNo, err = strconv.Atoi(v); err != nil || pageNo < 1 {
			return invalidField("page", "must be a whole number from 1, got %q", v)
		}
	}
	if v := q.Get("per_page"); v != "" {
		if perPage, err = strconv.Atoi(v); err != nil || perPage < 1 || perPage > 100 {
			return invalidField("per_page", "must be a whole number from 1 to 100, got %q", v)
		}
	}
	offset := (pageNo - 1) * perPage
	if offset+perPage > MaxSearchResults {
		return invalidField("page", "search pages end at %d results; narrow the query (created>…) instead", MaxSearchResults)
	}
	results, total, err := a.store.Search(r.Context(), sq, p.UserID, q.Get("sort_by"), q.Get("sort_order"), offset, perPage)
	if err != nil {
		return err
	}
	var next, prev *string
	if offset+len(results) < total && offset+perPage < MaxSearchResults {
		next = a.searchPageURL(r, pageNo+1)
	}
	if pageNo > 1 {
		prev = a.searchPageURL(r, pageNo-1)
	}
	a.write(w, http.StatusOK, map[string]any{"results": results, "facets": nil, "next_page": next, "previous_page": prev,
		"count": min(total, MaxSearchResults)})
	return nil
}

// searchCount is GET /search/count?query=….
func (a *API) searchCount(w http.ResponseWriter, r *http.Request, p Principal) error {
	sq, err := ParseSearchQuery(r.URL.Query().Get("query"))
	if err != nil {
		return err
	}
	_, total, err := a.store.Search(r.Context(), sq, p.UserID, "", "", 0, 0)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": min(total, MaxSearchResults)})
	return nil
}

func (a *API) searchPageURL(r *http.Request, n int) *string {
	q := r.URL.Query()
	q.Set("page", strconv.Itoa(n))
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	s := a.opts.PublicURL + u.String()
	return &s
}

// exportStart reads an incremental export's position: cursor (from after_cursor), else
// start_time (Unix seconds; Zendesk refuses a start_time less than a minute old, Switchboard
// does not).
func exportStart(r *http.Request) (ExportCursor, int, error) {
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return ExportCursor{}, 0, invalidField("per_page", "must be a whole number from 1 to 1000, got %q", v)
		}
		limit = n
	}
	// node-zendesk's exportCursor(start_time) sends cursor=undefined on the first call:
	// beside a start_time, that is no cursor.
	if c := q.Get("cursor"); c != "" && !(q.Get("start_time") != "" && (c == "undefined" || c == "null")) {
		cur, err := ParseExportCursor(c)
		if err != nil {
			return ExportCursor{}, 0, invalidField("cursor", "%q is not a cursor from after_cursor", c)
		}
		return cur, limit, nil
	}
	v := q.Get("start_time")
	if v == "" {
		return ExportCursor{}, 0, invalidField("start_time", "is required (Unix seconds) unless cursor is given")
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || sec < 0 {
		return ExportCursor{}, 0, invalidField("start_time", "must be Unix seconds, got %q", v)
	}
	// Records changed at start_time or later: the cursor sits just before that instant.
	return ExportCursor{At: time.Unix(sec, 0).Add(-time.Microsecond).UTC(), ID: 1<<63 - 1}, limit, nil
}

// writeExport answers one page of a cursor-based incremental export (Zendesk's shape).
func (a *API) writeExport(w http.ResponseWriter, r *http.Request, key string, items any, last *ExportCursor, from ExportCursor, more bool) {
	q := r.URL.Query()
	after := from
	if last != nil {
		after = *last
	}
	q.Del("start_time")
	q.Set("cursor", after.String())
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	afterURL := a.opts.PublicURL + u.String()
	a.write(w, http.StatusOK, map[string]any{key: items, "after_cursor": after.String(), "after_url": afterURL,
		"before_cursor": nil, "before_url": nil, "end_of_stream": !more})
}

// exportTickets is GET /incremental/tickets/cursor: every ticket changed since start_time (or
// after cursor), oldest change first; a CRM follows after_url until end_of_stream, keeps
// after_cursor and resumes from it later.
func (a *API) exportTickets(w http.ResponseWriter, r *http.Request, p Principal) error {
	from, limit, err := exportStart(r)
	if err != nil {
		return err
	}
	ts, more, err := a.store.ExportTickets(r.Context(), from, limit)
	if err != nil {
		return err
	}
	var last *ExportCursor
	if len(ts) > 0 {
		t := ts[len(ts)-1]
		last = &ExportCursor{At: t.UpdatedAt.Time, ID: t.ID}
	}
	a.writeExport(w, r, "tickets", nonNil(ts), last, from, more)
	return nil
}

// exportUsers is GET /incremental/users/cursor, as exportTickets for users (deleted users
// come with active false).
func (a *API) exportUsers(w http.ResponseWriter, r *http.Request, p Principal) error {
	from, limit, err := exportStart(r)
	if err != nil {
		return err
	}
	us, more, err := a.store.ExportUsers(r.Context(), from, limit)
	if err != nil {
		return err
	}
	var last *ExportCursor
	if len(us) > 0 {
		u := us[len(us)-1]
		last = &ExportCursor{At: u.UpdatedAt.Time, ID: u.ID}
	}
	a.writeExport(w, r, "users", nonNil(us), last, from, more)
	return nil
}

// exportTicketsByTime is GET /incremental/tickets?start_time=…: Zendesk's time-based export
// (next_page with the end_time as the next start_time; end_of_stream when fewer than a page).
func (a *API) exportTicketsByTime(w http.ResponseWriter, r *http.Request, p Principal) error {
	from, limit, err := exportStart(r)
	if err != nil {
		return err
	}
	ts, more, err := a.store.ExportTickets(r.Context(), from, limit)
	if err != nil {
		return err
	}
	end := from.At
	if len(ts) > 0 {
		end = ts[len(ts)-1].UpdatedAt.Time
	}
	a.writeTimeExport(w, r, "tickets", nonNil(ts), len(ts), end, more)
	return nil
}

// exportUsersByTime is GET /incremental/users?start_time=….
func (a *API) exportUsersByTime(w http.ResponseWriter, r *http.Request, p Principal) error {
	from, limit, err := exportStart(r)
	if err != nil {
		return err
	}
	us, more, err := a.store.ExportUsers(r.Context(), from, limit)
	if err != nil {
		return err
	}
	end := from.At
	if len(us) > 0 {
		end = us[len(us)-1].UpdatedAt.Time
	}
	a.writeTimeExport(w, r, "users", nonNil(us), len(us), end, more)
	return nil
}

func (a *API) writeTimeExport(w http.ResponseWriter, r *http.Request, key string, items any, n int, end time.Time, more bool) {
	endSec := max(end.Unix(), 0)
	var next *string
	if more {
		q := r.URL.Query()
		q.Set("start_time", strconv.FormatInt(endSec, 10))
		q.Del("cursor")
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		s := a.opts.PublicURL + u.String()
		next = &s
	}
	a.write(w, http.StatusOK, map[string]any{key: items, "count": n, "end_time": endSec, "next_page": next, "end_of_stream": !more})
}
