package ticketing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
)

// APIOptions configure the HTTP API; the zero value is usable.
type APIOptions struct {
	// Logger receives internal errors (those answered with 500); default slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// Timeout bounds the work of one request (default 30 s).
	Timeout time.Duration
	// Session, when set, authenticates a request that carries no Authorization header by
	// another means — the agent page's session cookie — and returns the user. Writes so
	// authenticated must come from the same origin (the Origin header, when sent, must name
	// the request's host): a cookie must not let another site act for the agent.
	Session func(r *http.Request) (userID int64, ok bool)
	// Guard limits password guessing over HTTP Basic (backoff per address and account) and
	// reports failures as security events; nil: no limit. Give the agent page's login the
	// same Guard.
	Guard *AuthGuard
	// PublicURL is the scheme and authority clients reach the API at ("https://gw.example.com",
	// no trailing slash): next_page links are built on it. Empty: they are relative references
	// ("/api/v2/users?cursor=…", RFC 3986 §4.2), resolved against the URL the client used.
	PublicURL string
	// MaxUploadBytes bounds one file of POST /uploads (default DefaultMaxUploadBytes, 20 MiB):
	// a larger one is refused with 413. Files are held in memory while stored.
	MaxUploadBytes int64
}

// API is the Zendesk-shaped REST API of docs/api.md for users, identities, tickets,
// comments, merges and the voice settings. Every endpoint needs an agent or admin (HTTP Basic
// with email and password, or Authorization: Bearer with an API token); admins alone change
// settings, roles and agents. Errors are {"error","description","details"} with 422, 404, 401,
// 403 or 409; nothing is half-written, as each change is one store transaction.
type API struct {
	store  *Store
	opts   APIOptions
	prefix string // where Register mounted the API ("/api/v2"), for the url of audit logs
	spec   []byte
	specE  error
}

// NewAPI returns the API over store.
func NewAPI(store *Store, opts APIOptions) *API {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxUploadBytes <= 0 {
		opts.MaxUploadBytes = DefaultMaxUploadBytes
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	a := &API{store: store, opts: opts}
	a.spec, a.specE = openAPIJSON()
	return a
}

// Register mounts the API on mux under prefix ("/api/v2"), with Go 1.22 method patterns.
func (a *API) Register(mux *http.ServeMux, prefix string) {
	prefix = strings.TrimSuffix(prefix, "/")
	a.prefix = prefix
	h := func(pattern string, role string, fn func(w http.ResponseWriter, r *http.Request, p Principal) error) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+prefix+path, a.handle(role, fn))
	}
	mux.HandleFunc("GET "+prefix+"/openapi.json", a.serveOpenAPI)
	h("GET /users", RoleAgent, a.listUsers)
	h("POST /users", RoleAgent, a.createUser)
	h("GET /users/search", RoleAgent, a.searchUsers)
	h("GET /users/me", RoleAgent, a.getMe)
	h("GET /users/show_many", RoleAgent, a.showManyUsers)
	h("POST /users/create_or_update", RoleAgent, a.createOrUpdateUser)
	h("POST /users/create_many", RoleAgent, a.bulkUsers(false))
	h("POST /users/create_or_update_many", RoleAgent, a.bulkUsers(true))
	h("GET /tickets/show_many", RoleAgent, a.showManyTickets)
	h("POST /tickets/create_many", RoleAgent, a.bulkTickets)
	h("GET /job_statuses/show_many", RoleAgent, a.showManyJobStatuses)
	h("GET /search", RoleAgent, a.search)
	h("GET /search/count", RoleAgent, a.searchCount)
	h("GET /incremental/tickets/cursor", RoleAgent, a.exportTickets)
	h("GET /incremental/users/cursor", RoleAgent, a.exportUsers)
	h("GET /incremental/tickets", RoleAgent, a.exportTicketsByTime)
	h("GET /incremental/users", RoleAgent, a.exportUsersByTime)
	h("GET /job_statuses/{id}", RoleAgent, a.getJobStatus)
	h("GET /users/{id}", RoleAgent, a.getUser)
	h("PUT /users/{id}", RoleAgent, a.updateUser)
	h("DELETE /users/{id}", RoleAgent, a.deleteUser)
	h("GET /users/{id}/identities", RoleAgent, a.listIdentities)
	h("POST /users/{id}/identities", RoleAgent, a.addIdentity)
	h("GET /users/{id}/identities/{iid}", RoleAgent, a.getIdentity)
	h("PUT /users/{id}/identities/{iid}", RoleAgent, a.updateIdentity)
	h("PUT /users/{id}/identities/{iid}/verify", RoleAgent, a.verifyIdentity)
	h("DELETE /users/{id}/identities/{iid}", RoleAgent, a.deleteIdentity)
	h("PUT /users/{id}/identities/{iid}/make_primary", RoleAgent, a.makePrimary)
	h("PUT /users/{id}/merge", RoleAgent, a.mergeUser)
	h("GET /users/{id}/tickets/requested", RoleAgent, a.requestedTickets)
	h("GET /tickets", RoleAgent, a.listTickets)
	h("POST /tickets", RoleAgent, a.createTicket)
	h("GET /tickets/{id}", RoleAgent, a.getTicket)
	h("PUT /tickets/{id}", RoleAgent, a.updateTicket)
	h("GET /tickets/{id}/comments", RoleAgent, a.listComments)
	h("POST /tickets/{id}/comments", RoleAgent, a.addComment)
	h("PUT /tickets/{id}/comments/{comment_id}/make_private", RoleAgent, a.makeCommentPrivate)
	h("POST /tickets/{id}/merge", RoleAgent, a.mergeTickets)
	h("GET /ticket_fields", RoleAgent, a.listTicketFields)
	h("GET /ticket_fields/{id}", RoleAgent, a.getTicketField)
	h("GET /settings/voice", RoleAgent, a.getSettings)
	h("PUT /settings/voice", RoleAdmin, a.putSettings)
	h("GET /audit_logs", RoleAgent, a.listAuditLogs)
	h("GET /audit_logs/{id}", RoleAgent, a.getAuditLog)
	a.registerTokens(h)
	a.registerGroups(h)
	a.registerUploads(h, mux)
}

// Principal is the agent or admin making an API request.
type Principal struct {
	UserID int64  `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	// Via is how the request authenticated: AuthPassword, AuthToken or AuthSession.
	Via string `json:"-"`
}

// How a Principal authenticated.
const (
	AuthPassword = "password" // HTTP Basic with email and password
	AuthToken    = "token"    // an API token: Authorization: Bearer, or Basic "email/token:TOKEN"
	AuthSession  = "session"  // the agent page's session cookie
)

// IsAdmin reports whether p is an admin.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// IsSupervisor reports whether p has the supervisors' powers: a supervisor, or an admin (admins
// keep every supervisor power).
func (p Principal) IsSupervisor() bool { return p.Role == RoleSupervisor || p.Role == RoleAdmin }

// Actor is p as the actor of store changes.
func (p Principal) Actor() Actor { return Actor(p.UserID) }

// Authenticate returns the agent or admin a request authenticates as: HTTP Basic with email
// and password (RFC 7617), HTTP Basic with "email/token" and an API token (Zendesk's form), or
// "Authorization: Bearer <api token>" (RFC 6750). No credentials
// or wrong ones are ErrUnauthorized (an *Error); a Basic login during its backoff, or while
// every password check slot is busy, is ErrTooManyRequests (429). Other packages use it to
// share this auth and answer its errors with WriteError.
func (a *API) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" && a.opts.Session != nil {
		if id, ok := a.opts.Session(r); ok {
			return a.sessionPrincipal(r, id)
		}
	}
	if h == "" {
		return Principal{}, &Error{Kind: ErrUnauthorized, Description: "authentication required: use HTTP Basic (email and password) or a Bearer API token"}
	}
	var u User
	var err error
	via := AuthPassword
	if email, password, ok := r.BasicAuth(); ok && isTokenLogin(email) {
		// Zendesk's API-token form of Basic: "email/token:TOKEN". The token must belong to
		// the user the email names, as Zendesk requires.
		via = AuthToken
		u, err = a.store.CheckAPIToken(r.Context(), password)
		if err == nil && (u.Email == nil || !strings.EqualFold(*u.Email, strings.TrimSuffix(email, "/token"))) {
			err = &Error{Kind: ErrUnauthorized, Description: "unknown, expired or revoked API token"}
		}
		if errors.Is(err, ErrUnauthorized) {
			a.opts.Guard.TokenFailed(r)
		}
	} else if ok {
		if err := a.opts.Guard.Check(r, email); err != nil {
			return Principal{}, err
		}
		u, err = a.store.CheckPassword(r.Context(), email, password)
		switch {
		case err == nil:
			a.opts.Guard.Succeeded(r, email)
		case errors.Is(err, ErrUnauthorized):
			a.opts.Guard.Failed(r, email)
		case errors.Is(err, ErrTooManyRequests):
			a.opts.Guard.Busy(r, email)
		}
	} else if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
		via = AuthToken
		u, err = a.store.CheckAPIToken(r.Context(), strings.TrimSpace(token))
		if errors.Is(err, ErrUnauthorized) {
			a.opts.Guard.TokenFailed(r)
		}
	} else {
		return Principal{}, &Error{Kind: ErrUnauthorized, Description: "unsupported Authorization header: use Basic or Bearer"}
	}
	if err != nil {
		return Principal{}, err
	}
	email := ""
	if u.Email != nil {
		email = *u.Email
	}
	return Principal{UserID: u.ID, Name: u.Name, Email: email, Role: u.Role, Via: via}, nil
}

// isTokenLogin reports whether a Basic user name is Zendesk's "email/token" form.
func isTokenLogin(user string) bool {
	return strings.HasSuffix(user, "/token") && len(user) > len("/token")
}

// sessionPrincipal is the agent of a session cookie, after the same-origin check for writes.
func (a *API) sessionPrincipal(r *http.Request, id int64) (Principal, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host != r.Host {
				return Principal{}, &Error{Kind: ErrForbidden, Description: "cross-origin request refused: the session cookie works from the agent page only"}
			}
		}
	}
	u, err := a.store.LiveUser(r.Context(), id)
	if err != nil || !u.IsStaff() {
		return Principal{}, &Error{Kind: ErrUnauthorized, Description: "the session is no longer valid: log in again"}
	}
	email := ""
	if u.Email != nil {
		email = *u.Email
	}
	return Principal{UserID: u.ID, Name: u.Name, Email: email, Role: u.Role, Via: AuthSession}, nil
}

func (a *API) handle(role string, fn func(w http.ResponseWriter, r *http.Request, p Principal) error) http.Handler {
	return a.handleLimit(role, a.opts.MaxBodyBytes, fn)
}

// handleLimit is handle with a body limit of its own (POST /uploads).
func (a *API) handleLimit(role string, maxBody int64, fn func(w http.ResponseWriter, r *http.Request, p Principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.Timeout)
		defer cancel()
		// The audit entries a change writes name the client's address (ip_address).
		r = r.WithContext(WithClientAddr(ctx, a.opts.Guard.Source(r)))
		p, err := a.Authenticate(r)
		if err == nil && role == RoleAdmin && !p.IsAdmin() {
			err = &Error{Kind: ErrForbidden, Description: "only admins can do this"}
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			err = fn(w, r, p)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

// writeError writes err in the API's error shape with its status: *Error kinds map to
// 422/404/409/401/403/429, anything else is a 500 whose cause is logged, not shown.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		// The cause (SQL, addresses) stays in the log; the client gets an id to quote.
		id := apierror.ID()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			a.opts.Logger.Warn("ticketing api: request timed out or cancelled", "method", r.Method, "path", r.URL.Path, "error_id", id, "err", err)
		} else {
			a.opts.Logger.Error("ticketing api: internal error", "method", r.Method, "path", r.URL.Path, "error_id", id, "err", err)
		}
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "internal error (id " + id + "); see the server log"})
		return
	}
	WriteError(w, e)
}

// WriteError writes e in the API's error shape (internal/apierror) and status, for packages
// that share the API's conventions: ErrInvalid 422, ErrNotFound 404, ErrConflict 409,
// ErrUnauthorized 401 (with WWW-Authenticate), ErrForbidden 403, ErrTooManyRequests 429 (with
// Retry-After). An error that is not an *Error of this package is a 500 without details.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "internal error"})
		return
	}
	out := apierror.Error{Status: http.StatusInternalServerError, Description: e.Description, Details: e.Details, Codes: e.Codes}
	switch {
	case errors.Is(e.Kind, ErrInvalid):
		out.Status = http.StatusUnprocessableEntity
	case errors.Is(e.Kind, ErrNotFound):
		out.Status = http.StatusNotFound
	case errors.Is(e.Kind, ErrConflict):
		out.Status = http.StatusConflict
	case errors.Is(e.Kind, ErrUnauthorized):
		out.Status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="switchboard", charset="UTF-8"`)
	case errors.Is(e.Kind, ErrForbidden):
		out.Status = http.StatusForbidden
	case errors.Is(e.Kind, ErrTooManyRequests):
		out.Status, out.RetryAfter = http.StatusTooManyRequests, max(time.Second, e.RetryAfter)
	}
	apierror.Write(w, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"InternalError","description":"cannot encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// pathID reads a positive integer path parameter; anything else is a 404 (no such record).
func pathID(r *http.Request, name, what string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound("%s %q not found: ids are positive integers", what, v)
	}
	return id, nil
}

// pageReq is the page a list request asks for.
type pageReq struct {
	after, before int64 // ids; before > 0: the page just before it (page[before])
	limit         int
}

// page reads the page a list request asks for: per_page (1–100, default 100) and cursor (from
// next_page), or Zendesk's cursor pagination, page[size] (1–100) and page[after] (from
// meta.after_cursor) or page[before] (from meta.before_cursor; the same cursors).
func page(r *http.Request) (pageReq, error) {
	q := r.URL.Query()
	p := pageReq{limit: 100}
	for _, name := range []string{"per_page", "page[size]"} {
		if v := q.Get(name); v != "" {
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 1 || n > 100 {
				return p, invalidField(name, "must be a whole number from 1 to 100, got %q", v)
			}
			p.limit = n
		}
	}
	for _, name := range []string{"cursor", "page[after]", "page[before]"} {
		if c := q.Get(name); c != "" {
			id, ok := parseCursor(c)
			if !ok || (name == "page[before]" && id == 0) {
				return p, invalidField(name, "%q is not a cursor from next_page, meta.after_cursor or meta.before_cursor", c)
			}
			if name == "page[before]" {
				p.before = id
			} else {
				p.after = id
			}
		}
	}
	if p.before > 0 && (q.Get("page[after]") != "" || q.Get("cursor") != "") {
		return p, invalidField("page[before]", "cannot be given with page[after] or cursor: give one direction")
	}
	return p, nil
}

func parseCursor(c string) (int64, bool) {
	b, derr := base64.RawURLEncoding.DecodeString(c)
	id, perr := strconv.ParseInt(string(b), 10, 64)
	return id, derr == nil && perr == nil && id >= 0
}

func cursorOf(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

// nextPage is the URL of the page after lastID, or nil when there is none.
func (a *API) nextPage(r *http.Request, more bool, lastID int64) *string {
	if !more {
		return nil
	}
	return a.pageURL(r, cursorOf(lastID))
}

// pageURL is r's URL with its cursor replaced, under APIOptions.PublicURL — never under the
// request's Host header, which the client (or a DNS-rebinding page) chooses: an API client
// following next_page must not be sent elsewhere with its credentials.
func (a *API) pageURL(r *http.Request, cursor string) *string {
	q := r.URL.Query()
	q.Del("page[after]")
	q.Del("page[before]")
	q.Set("cursor", cursor)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	s := a.opts.PublicURL + u.String()
	return &s
}

// writePage answers one page of a list under key, in both paginations: next_page (offset by
// cursor) and Zendesk's cursor pagination, meta {has_more, after_cursor, before_cursor} and
// links {next, prev}. ids are the ids of items, in order; more says whether more follow in
// the direction p asked (after the page, or before it for page[before]).
//
// links.next is set when items follow the page, links.prev when items precede it: a page
// reached with page[after] has items before it, one reached with page[before] items after
// it. has_more is Zendesk's: more in the direction travelled.
func (a *API) writePage(w http.ResponseWriter, r *http.Request, p pageReq, key string, items any, ids []int64, more bool) {
	meta := map[string]any{"has_more": more, "after_cursor": nil, "before_cursor": nil}
	links := map[string]any{"next": nil, "prev": nil}
	var last int64
	nextPage := (*string)(nil)
	if len(ids) > 0 {
		last = ids[len(ids)-1]
		meta["after_cursor"] = cursorOf(last)
		meta["before_cursor"] = cursorOf(ids[0])
		backward := p.before > 0
		if (!backward && more) || backward {
			links["next"] = a.cursorURL(r, "page[after]", cursorOf(last))
		}
		if (backward && more) || (!backward && p.after > 0) {
			links["prev"] = a.cursorURL(r, "page[before]", cursorOf(ids[0]))
		}
		if !backward {
			nextPage = a.nextPage(r, more, last)
		} else {
			nextPage = a.pageURL(r, cursorOf(last))
		}
	}
	a.write(w, http.StatusOK, map[string]any{key: items, "next_page": nextPage, "meta": meta, "links": links})
}

// cursorURL is r's URL with its cursor replaced by name=cursor (page[after] or page[before]),
// under APIOptions.PublicURL.
func (a *API) cursorURL(r *http.Request, name, cursor string) string {
	q := r.URL.Query()
	q.Del("cursor")
	q.Del("page[after]")
	q.Del("page[before]")
	q.Set(name, cursor)
	if q.Get("page[size]") == "" && q.Get("per_page") == "" {
		q.Set("page[size]", "100")
	}
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	return a.opts.PublicURL + u.String()
}

func (a *API) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if a.specE != nil {
		a.writeError(w, r, a.specE)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.spec)
}
