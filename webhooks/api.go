package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Authenticator is who makes an API request: ticketing.API satisfies it (HTTP Basic, API
// tokens, the agent page's session).
type Authenticator interface {
	Authenticate(r *http.Request) (ticketing.Principal, error)
}

// APIOptions configure the webhooks API. Zero values take the defaults noted.
type APIOptions struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// Auth authenticates each request; only admins get past it. Required.
	Auth Authenticator
	// Changed is called (no lock held, must not block) after a webhook was created, changed
	// or deleted: the dispatcher's Wake.
	Changed func()
	// PublicURL is the base URL the API's links start with (default: taken from the request).
	PublicURL string
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// API serves Zendesk's webhooks API (docs/api.md, Webhooks) for admins.
type API struct {
	opts  APIOptions
	store *store
}

// maxBody bounds a request body: a webhook is a few hundred bytes.
const maxBody = 64 << 10

// NewAPI builds the webhooks API.
func NewAPI(opts APIOptions) *API {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Changed == nil {
		opts.Changed = func() {}
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	return &API{opts: opts, store: &store{pool: opts.Pool}}
}

// Register mounts the API on mux under prefix ("/api/v2").
func (a *API) Register(mux *http.ServeMux, prefix string) {
	prefix = strings.TrimSuffix(prefix, "/")
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+prefix+path, a.handle(fn))
	}
	h("GET /webhooks", a.list)
	h("POST /webhooks", a.create)
	h("GET /webhooks/{id}", a.get)
	h("PUT /webhooks/{id}", a.put)
	h("PATCH /webhooks/{id}", a.patch)
	h("DELETE /webhooks/{id}", a.delete)
	h("GET /webhooks/{id}/signing_secret", a.getSecret)
	h("POST /webhooks/{id}/signing_secret", a.resetSecret)
	h("GET /webhooks/{id}/invocations", a.invocations)
	h("GET /webhooks/{id}/invocations/{invocation_id}/attempts", a.attempts)
}

// apiErr is an answer other than 2xx.
type apiErr = apierror.Error

func invalid(errs fieldErrors) error {
	fields := make([]string, 0, len(errs))
	for f := range errs {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	desc := fields[0] + ": " + errs[fields[0]][0]
	return &errorAnswer{apiErr{Status: http.StatusUnprocessableEntity, Description: desc, Details: errs}}
}

type errorAnswer struct{ e apiErr }

func (e *errorAnswer) Error() string { return e.e.Description }

func notFound(what string) error {
	return &errorAnswer{apiErr{Status: http.StatusNotFound, Description: what + " not found"}}
}

func (a *API) handle(fn func(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
		p, err := a.opts.Auth.Authenticate(r)
		if err != nil {
			ticketing.WriteError(w, err) // 401 with WWW-Authenticate, 429 with Retry-After, …
			return
		}
		if !p.IsAdmin() {
			apierror.Write(w, apiErr{Status: http.StatusForbidden, Description: "only admins can manage webhooks"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		err = fn(w, r, p)
		var ea *errorAnswer
		switch {
		case err == nil:
		case errors.As(err, &ea):
			apierror.Write(w, ea.e)
		case errors.Is(err, ErrNotFound):
			apierror.Write(w, apiErr{Status: http.StatusNotFound, Description: "webhook not found"})
		default:
			id := apierror.ID()
			a.opts.Logger.Error("webhooks api: internal error", "method", r.Method, "path", r.URL.Path, "error_id", id, "err", err)
			apierror.Write(w, apiErr{Status: http.StatusInternalServerError, Description: "internal error (id " + id + "); see the server log"})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		apierror.Write(w, apiErr{Status: http.StatusInternalServerError, Description: "cannot encode the answer"})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &errorAnswer{apiErr{Status: http.StatusRequestEntityTooLarge, Name: "RecordInvalid",
			Description: "the body is larger than " + strconv.Itoa(maxBody) + " bytes"}}
	}
	return b, err
}

// hookID is the {id} of the path, checked: anything but a ULID is no webhook.
func hookID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		return "", notFound("webhook")
	}
	return id, nil
}

func (a *API) create(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, errs := decodeInput(body)
	if len(errs) > 0 {
		return invalid(errs)
	}
	hook := defaults()
	if errs := apply(&hook, in, true); len(errs) > 0 {
		return invalid(errs)
	}
	if hook.ID, err = newID(a.opts.Now()); err != nil {
		return err
	}
	if hook.secret == "" {
		if hook.secret, err = newSecret(); err != nil {
			return err
		}
	}
	out, err := a.store.create(r.Context(), &hook, p.UserID)
	if err != nil {
		return err
	}
	a.opts.Logger.Info("webhook created", "webhook_id", out.ID, "by", p.UserID, "subscriptions", len(out.Subscriptions))
	a.opts.Changed()
	w.Header().Set("Location", a.base(r)+"/webhooks/"+out.ID)
	writeJSON(w, http.StatusCreated, map[string]any{"webhook": out})
	return nil
}

func (a *API) get(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	id, err := hookID(r)
	if err != nil {
		return err
	}
	hook, err := a.store.get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhook": hook})
	return nil
}

// put replaces the webhook (members left out take their defaults, as on creation); patch
// changes the members named (RFC 7396). Both answer 204 No Content, as Zendesk does.
func (a *API) put(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	return a.change(w, r, p, true)
}

func (a *API) patch(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	return a.change(w, r, p, false)
}

func (a *API) change(w http.ResponseWriter, r *http.Request, p ticketing.Principal, replace bool) error {
	id, err := hookID(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, errs := decodeInput(body)
	if len(errs) > 0 {
		return invalid(errs)
	}
	errs, err = a.store.update(r.Context(), id, p.UserID, func(hook *Webhook) fieldErrors {
		if replace {
			fresh := defaults()
			fresh.ID, fresh.secret, fresh.CreatedAt, fresh.CreatedBy = hook.ID, hook.secret, hook.CreatedAt, hook.CreatedBy
			*hook = fresh
		}
		return apply(hook, in, false)
	})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	a.opts.Logger.Info("webhook changed", "webhook_id", id, "by", p.UserID)
	a.opts.Changed()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) delete(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	id, err := hookID(r)
	if err != nil {
		return err
	}
	if err := a.store.delete(r.Context(), id); err != nil {
		return err
	}
	a.opts.Logger.Info("webhook deleted", "webhook_id", id, "by", p.UserID)
	a.opts.Changed()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) getSecret(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	id, err := hookID(r)
	if err != nil {
		return err
	}
	hook, err := a.store.get(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"signing_secret": SigningSecret{Algorithm: "SHA256", Secret: hook.secret}})
	return nil
}

// resetSecret replaces the signing secret: the next attempt is signed with the new one.
func (a *API) resetSecret(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	id, err := hookID(r)
	if err != nil {
		return err
	}
	secret, err := newSecret()
	if err != nil {
		return err
	}
	if err := a.store.setSecret(r.Context(), id, secret); err != nil {
		return err
	}
	a.opts.Logger.Info("webhook signing secret reset", "webhook_id", id, "by", p.UserID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"signing_secret": SigningSecret{Algorithm: "SHA256", Secret: secret}})
	return nil
}

// pageReq is the page a list asks for: page[size] and one of page[after] (from
// meta.after_cursor) or page[before] (from meta.before_cursor).
type pageReq struct {
	size          int
	after, before string
}

// page reads page[size] (1 … 100, default 100) and page[after] or page[before].
func page(r *http.Request) (pageReq, error) {
	q := r.URL.Query()
	p := pageReq{size: 100, after: q.Get("page[after]"), before: q.Get("page[before]")}
	if s := q.Get("page[size]"); s != "" {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 1 || n > 100 {
			return p, invalid(fieldErrors{"page[size]": {"must be a whole number from 1 to 100"}})
		}
		p.size = n
	}
	if p.after != "" && p.before != "" {
		return p, invalid(fieldErrors{"page[before]": {"cannot be given with page[after]: give one direction"}})
	}
	return p, nil
}

func (a *API) base(r *http.Request) string {
	if a.opts.PublicURL != "" {
		return a.opts.PublicURL + "/api/v2"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/api/v2"
}

// links is Zendesk's cursor pagination: meta and links. first and last are the cursors of
// the page's first and last items ("" for an empty page); more is whether items follow in the
// direction p travelled. links.next is set when items follow the page, links.prev when items
// precede it (a page reached with page[after] has some; with page[before], more says).
func (a *API) links(r *http.Request, p pageReq, more bool, first, last string) (map[string]any, map[string]any) {
	meta := map[string]any{"has_more": more, "after_cursor": nil, "before_cursor": nil}
	links := map[string]any{"next": nil, "prev": nil}
	if last == "" {
		return meta, links
	}
	meta["after_cursor"], meta["before_cursor"] = last, first
	url := func(name, cursor string) string {
		q := r.URL.Query()
		q.Del("page[after]")
		q.Del("page[before]")
		q.Set(name, cursor)
		return a.base(r) + strings.TrimPrefix(r.URL.Path, "/api/v2") + "?" + q.Encode()
	}
	backward := p.before != ""
	if more || backward {
		links["next"] = url("page[after]", last)
	}
	if (backward && more) || (!backward && p.after != "") {
		links["prev"] = url("page[before]", first)
	}
	return meta, links
}

func (a *API) list(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	if pg.before != "" && !idPattern.MatchString(pg.before) {
		return invalid(fieldErrors{"page[before]": {"is not a cursor this API gave"}})
	}
	q := r.URL.Query()
	f := listFilter{after: pg.after, before: pg.before, size: pg.size, status: q.Get("filter[status]"), nameContains: q.Get("filter[name_contains]")}
	if f.status != "" && f.status != StatusActive && f.status != StatusInactive {
		return invalid(fieldErrors{"filter[status]": {"must be active or inactive"}})
	}
	hooks, more, err := a.store.list(r.Context(), f)
	if err != nil {
		return err
	}
	first, last := "", ""
	if len(hooks) > 0 {
		first, last = hooks[0].ID, hooks[len(hooks)-1].ID
	}
	if hooks == nil {
		hooks = []*Webhook{}
	}
	meta, links := a.links(r, pg, more, first, last)
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": hooks, "meta": meta, "links": links})
	return nil
}

// invocations lists a webhook's invocations, newest first (Zendesk's sort=-timestamp).
func (a *API) invocations(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	id, err := hookID(r)
	if err != nil {
		return err
	}
	pg, err := page(r)
	if err != nil {
		return err
	}
	// Invocations are listed newest first: page[after] goes to older ones (lower ids),
	// page[before] to newer ones.
	var older, newer int64
	if pg.after != "" {
		if older, err = strconv.ParseInt(pg.after, 10, 64); err != nil || older < 1 {
			return invalid(fieldErrors{"page[after]": {"is not a cursor this API gave"}})
		}
	}
	if pg.before != "" {
		if newer, err = strconv.ParseInt(pg.before, 10, 64); err != nil || newer < 1 {
			return invalid(fieldErrors{"page[before]": {"is not a cursor this API gave"}})
		}
	}
	status := r.URL.Query().Get("filter[status]")
	switch status {
	case "", "pending", "success", "failed":
	default:
		return invalid(fieldErrors{"filter[status]": {"must be pending, success or failed"}})
	}
	if _, err := a.store.get(r.Context(), id); err != nil {
		return err
	}
	invs, more, err := a.store.invocations(r.Context(), id, older, newer, pg.size, status)
	if err != nil {
		return err
	}
	first, last := "", ""
	if len(invs) > 0 {
		first, last = invs[0].ID, invs[len(invs)-1].ID
	}
	if invs == nil {
		invs = []Invocation{}
	}
	meta, links := a.links(r, pg, more, first, last)
	writeJSON(w, http.StatusOK, map[string]any{"invocations": invs, "meta": meta, "links": links})
	return nil
}

func (a *API) attempts(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	id, err := hookID(r)
	if err != nil {
		return err
	}
	invID, err := strconv.ParseInt(r.PathValue("invocation_id"), 10, 64)
	if err != nil || invID < 1 {
		return notFound("invocation")
	}
	list, err := a.store.attempts(r.Context(), id, invID)
	if errors.Is(err, ErrNotFound) {
		return notFound("invocation")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"attempts": list})
	return nil
}
