package roster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Authenticator is who makes an API request: ticketing.API satisfies it.
type Authenticator interface {
	Authenticate(r *http.Request) (ticketing.Principal, error)
}

// Users creates the user of an agent made by POST /agents: *ticketing.Store satisfies it.
type Users interface {
	CreateUser(ctx context.Context, actor ticketing.Actor, in ticketing.NewUser) (ticketing.User, error)
}

// APIOptions configure the admin API.
type APIOptions struct {
	Auth  Authenticator // required
	Users Users         // required
	// InUse names what in the configuration sends calls to a queue (a line, a menu, another
	// queue's overflow): such a queue cannot be deleted (409). Nil: nothing does.
	InUse func(queue string) string
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
}

// API serves the roster's admin API; see Register.
type API struct {
	m    *Manager
	opts APIOptions
}

// NewAPI returns the admin API over m.
func (m *Manager) NewAPI(opts APIOptions) *API {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	return &API{m: m, opts: opts}
}

// maxBody bounds a request body.
const maxBody = 64 << 10

// Register mounts the admin API on mux under prefix ("/api/v2"); admins only:
//
//	POST   /agents                               create a user (role agent, supervisor or admin) and make it an agent
//	GET    /agents/{id}                          an agent's queues, priorities and SIP username
//	PUT    /agents/{id}                          make a user an agent, or change its queues or SIP phone
//	DELETE /agents/{id}                          take the agent off the roster (the user stays)
//	POST   /queues                               create a queue
//	GET    /queues/{name}                        a queue's settings and members
//	PUT    /queues/{name}                        change a queue's settings
//	DELETE /queues/{name}                        delete a queue
//	GET    /queues/{name}/memberships            a queue's agents and their priorities
//	PUT    /queues/{name}/memberships/{agent_id} add an agent to the queue, or change its priority
//	DELETE /queues/{name}/memberships/{agent_id} take an agent out of the queue
//	GET    /lines/inbound                        every line: number, target, name, language
//	POST   /lines                                create a line (number → target)
//	GET    /lines/{number}                       a line
//	PUT    /lines/{number}                       change a line's target, name, language, trunk, hours or settings
//	DELETE /lines/{number}                       delete a line (its calls get 404 from then on)
//
// GET /agents and GET /queues (the live states) are the ACD's (ivr.ACD.Register).
func (a *API) Register(mux *http.ServeMux, prefix string) {
	prefix = strings.TrimSuffix(prefix, "/")
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+prefix+path, a.handle(fn))
	}
	h("POST /agents", a.createAgent)
	h("GET /agents/{id}", a.getAgent)
	h("PUT /agents/{id}", a.putAgent)
	h("DELETE /agents/{id}", a.deleteAgent)
	h("POST /queues", a.createQueue)
	h("GET /queues/{name}", a.getQueue)
	h("PUT /queues/{name}", a.putQueue)
	h("DELETE /queues/{name}", a.deleteQueue)
	h("GET /queues/{name}/memberships", a.getMemberships)
	h("PUT /queues/{name}/memberships/{agent_id}", a.putMembership)
	h("DELETE /queues/{name}/memberships/{agent_id}", a.deleteMembership)
	h("GET /lines/inbound", a.listLines)
	h("POST /lines", a.createLine)
	h("GET /lines/{number}", a.getLine)
	h("PUT /lines/{number}", a.putLine)
	h("DELETE /lines/{number}", a.deleteLine)
}

// answer is an error answer other than a 500.
type answer struct{ e apierror.Error }

func (e *answer) Error() string { return e.e.Description }

func invalid(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &answer{apierror.Error{Status: http.StatusUnprocessableEntity, Description: field + ": " + msg,
		Details: map[string][]string{field: {msg}}}}
}

func notFound(format string, args ...any) error {
	return &answer{apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf(format, args...)}}
}

func conflict(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	e := apierror.Error{Status: http.StatusConflict, Description: msg}
	if field != "" {
		e.Description = field + ": " + msg
		e.Details = map[string][]string{field: {msg}}
	}
	return &answer{e}
}

func (a *API) handle(fn func(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
		p, err := a.opts.Auth.Authenticate(r)
		if err != nil {
			ticketing.WriteError(w, err) // 401 with WWW-Authenticate, 429 with Retry-After
			return
		}
		if !p.IsAdmin() {
			apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "only admins can manage agents and queues"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		err = fn(w, r, p)
		var ans *answer
		var te *ticketing.Error
		switch {
		case err == nil:
		case errors.As(err, &ans):
			apierror.Write(w, ans.e)
		case errors.As(err, &te):
			ticketing.WriteError(w, err)
		case errors.Is(err, ErrNotFound):
			apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: "not found"})
		default:
			apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "internal error: " + apierror.ID()})
			a.m.log.Error("roster: API", "path", r.URL.Path, "err", err)
		}
	})
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

// body reads {"<wrapper>":{...}} and returns the inner object's fields; a field not in allowed
// (nor ignored, the read-only fields a GET shows) is refused, naming it.
func body(r *http.Request, wrapper string, allowed, ignored []string) (map[string]json.RawMessage, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, invalid(wrapper, "the body is too large or unreadable")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return nil, invalid(wrapper, "must be a JSON object: {%q:{...}}", wrapper)
	}
	for k := range top {
		if k != wrapper {
			return nil, invalid(k, "is an unknown field; the body is {%q:{...}}", wrapper)
		}
	}
	raw, ok := top[wrapper]
	if !ok {
		return nil, invalid(wrapper, "is required: {%q:{...}}", wrapper)
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil || in == nil {
		return nil, invalid(wrapper, "must be a JSON object")
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case slices.Contains(allowed, k):
		case slices.Contains(ignored, k):
			delete(in, k)
		default:
			return nil, invalid(k, "is an unknown field; allowed: %s", strings.Join(allowed, ", "))
		}
	}
	return in, nil
}

// field decodes in[name] into v when present; it reports whether it was.
func field(in map[string]json.RawMessage, name string, v any) (bool, error) {
	raw, ok := in[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, invalid(name, "has the wrong type: %s", typeHint(v))
	}
	return true, nil
}

func typeHint(v any) string {
	switch v.(type) {
	case *string, **string:
		return "a string"
	case *int, **int, *int64:
		return "a whole number"
	case *bool, **bool:
		return "true or false"
	}
	return "see the API documentation"
}

var (
	queueName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	sipUser   = regexp.MustCompile(`^[^:\s"\\]{1,128}$`)
)

// change runs fn in a transaction that also writes its audit entry and NOTIFY, then reloads the
// roster on this node before the answer (other nodes follow on the notification).
func (a *API) change(ctx context.Context, p ticketing.Principal, fn func(tx pgx.Tx) (ticketing.RosterAudit, error)) error {
	err := pgx.BeginFunc(ctx, a.m.opts.Pool, func(tx pgx.Tx) error {
		au, err := fn(tx)
		if err != nil {
			return err
		}
		if err := ticketing.WriteRosterAudit(ctx, tx, p.Actor(), au); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, 'api')`, Channel)
		return err
	})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadBudget)
	defer cancel()
	if err := a.m.Reload(rctx); err != nil {
		// Stored and notified: every node applies it on its next reload.
		a.m.log.Warn("roster: changed, but applying it here failed; the next reload retries", "err", err)
	}
	return nil
}

// ---- agents ----

type agentJSON struct {
	ID          int64        `json:"id"`
	Name        string       `json:"name"`
	Email       string       `json:"email"`
	Role        string       `json:"role"`
	Queues      []string     `json:"queues"`
	Memberships []Membership `json:"memberships"`
	SIPUsername *string      `json:"sip_username"`
	// SIPSecret is shown once, in the answer of the change that generated or set it.
	SIPSecret string `json:"sip_secret,omitempty"`
}

func toAgentJSON(ag Agent) agentJSON {
	out := agentJSON{ID: ag.UserID, Name: ag.Name, Email: ag.Email, Role: ag.Role, Queues: []string{}, Memberships: ag.Memberships}
	if out.Memberships == nil {
		out.Memberships = []Membership{}
	}
	for _, m := range out.Memberships {
		out.Queues = append(out.Queues, m.Queue)
	}
	if ag.SIPUsername != "" {
		out.SIPUsername = &ag.SIPUsername
	}
	return out
}

// agentFields are what a body may set; agentRead what GET shows and a body may send back.
var (
	agentFields = []string{"queues", "memberships", "sip_username", "sip_secret"}
	agentRead   = []string{"id", "role", "url", "state", "since", "node"}
)

// agentChange is a parsed PUT or POST /agents body.
type agentChange struct {
	memberships    []Membership // nil: unchanged
	keepPriorities bool         // "queues": existing memberships keep their priority
	sipUsername    *string
	sipSecret      **string // nil: unchanged; *nil: remove the phone's credentials
}

func parseAgentChange(in map[string]json.RawMessage) (agentChange, error) {
	var c agentChange
	_, hasQ := in["queues"]
	_, hasM := in["memberships"]
	if hasQ && hasM {
		return c, invalid("memberships", "give queues (names) or memberships (names with priorities), not both")
	}
	if hasQ {
		var names []string
		if _, err := field(in, "queues", &names); err != nil {
			return c, invalid("queues", "must be a list of queue names")
		}
		c.memberships, c.keepPriorities = []Membership{}, true
		for _, n := range names {
			c.memberships = append(c.memberships, Membership{Queue: n, Priority: 1})
		}
	}
	if hasM {
		var ms []struct {
			Queue    *string `json:"queue"`
			Priority *int    `json:"priority"`
		}
		if _, err := field(in, "memberships", &ms); err != nil {
			return c, invalid("memberships", "must be a list of {\"queue\":NAME,\"priority\":1-100}")
		}
		c.memberships = []Membership{}
		for i, m := range ms {
			f := "memberships[" + strconv.Itoa(i) + "]"
			if m.Queue == nil {
				return c, invalid(f+".queue", "is required")
			}
			p := 1
			if m.Priority != nil {
				p = *m.Priority
			}
			if p < 1 || p > 100 {
				return c, invalid(f+".priority", "must be 1 (offered first) to 100, got %d", p)
			}
			c.memberships = append(c.memberships, Membership{Queue: *m.Queue, Priority: p})
		}
	}
	seen := map[string]bool{}
	for i, m := range c.memberships {
		f := "queues[" + strconv.Itoa(i) + "]"
		if hasM {
			f = "memberships[" + strconv.Itoa(i) + "].queue"
		}
		if !queueName.MatchString(m.Queue) {
			return c, invalid(f, "%q is not a queue name (letters, digits, '_' and '-', at most 64)", clip(m.Queue))
		}
		if seen[m.Queue] {
			return c, invalid(f, "%s is listed twice", m.Queue)
		}
		seen[m.Queue] = true
	}
	if _, ok := in["sip_username"]; ok {
		var u string
		if _, err := field(in, "sip_username", &u); err != nil {
			return c, err
		}
		if !sipUser.MatchString(u) {
			return c, invalid("sip_username", "must be 1 to 128 bytes without spaces, quotes, backslashes or ':'")
		}
		c.sipUsername = &u
	}
	if raw, ok := in["sip_secret"]; ok {
		var s *string
		if err := json.Unmarshal(raw, &s); err != nil {
			return c, invalid("sip_secret", "must be \"generate\", a secret of 12 to 128 characters, or null (no SIP phone)")
		}
		if s != nil && *s != "generate" && (len(*s) < 12 || len(*s) > 128 || strings.ContainsAny(*s, "\r\n\x00")) {
			return c, invalid("sip_secret", "must be \"generate\", a secret of 12 to 128 characters on one line, or null (no SIP phone)")
		}
		c.sipSecret = &s
	}
	return c, nil
}

// clip shortens a string from outside for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// generateSecret returns a random SIP secret: 24 characters a person can read out.
func generateSecret() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// applyAgent writes c for user id in tx: creates the roster row when missing (with a SIP
// username and a generated secret unless the body says otherwise), then the memberships. It
// returns the secret to show once ("" none) and what changed, for the audit.
func applyAgent(ctx context.Context, tx pgx.Tx, id int64, c agentChange) (secret string, changes []string, err error) {
	var role, email string
	var deleted bool
	err = tx.QueryRow(ctx, `SELECT role, coalesce(email, ''), deleted_at IS NOT NULL FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&role, &email, &deleted)
	if errors.Is(err, pgx.ErrNoRows) || deleted {
		return "", nil, notFound("no user with id %d", id)
	}
	if err != nil {
		return "", nil, err
	}
	if role == ticketing.RoleEndUser {
		return "", nil, invalid("id", "user %d is an end user: only agents, supervisors and admins take calls (change the user's role first)", id)
	}
	var curUser *string
	err = tx.QueryRow(ctx, `SELECT sip_username FROM roster_agents WHERE user_id = $1 FOR UPDATE`, id).Scan(&curUser)
	created := errors.Is(err, pgx.ErrNoRows)
	if err != nil && !created {
		return "", nil, err
	}
	if created {
		if _, err := tx.Exec(ctx, `INSERT INTO roster_agents (user_id) VALUES ($1)`, id); err != nil {
			return "", nil, err
		}
		changes = append(changes, "made an agent")
		if c.sipSecret == nil { // a new agent gets a SIP phone account unless told otherwise
			g := "generate"
			gp := &g
			c.sipSecret = &gp
		}
	}
	// The SIP phone's credentials.
	user := ""
	if curUser != nil {
		user = *curUser
	}
	if c.sipUsername != nil {
		user = *c.sipUsername
	}
	if user == "" && c.sipSecret != nil && *c.sipSecret != nil {
		user, err = freeSIPUsername(ctx, tx, id, email)
		if err != nil {
			return "", nil, err
		}
	}
	switch {
	case c.sipSecret != nil && *c.sipSecret == nil:
		if _, err := tx.Exec(ctx, `UPDATE roster_agents SET sip_username = NULL, ha1_md5 = NULL, ha1_sha256 = NULL, updated_at = now()
			WHERE user_id = $1`, id); err != nil {
			return "", nil, err
		}
		changes = append(changes, "SIP phone removed")
	case c.sipSecret != nil:
		secret = **c.sipSecret
		if secret == "generate" {
			secret = generateSecret()
		}
		md5h, shah := HA1(user, secret)
		if err := setSIP(ctx, tx, id, user, md5h, shah); err != nil {
			return "", nil, err
		}
		changes = append(changes, "SIP phone "+user+" given a new secret")
	case c.sipUsername != nil && (curUser == nil || *curUser != user):
		// A new username needs a new secret: the HA1s are computed over the username.
		return "", nil, invalid("sip_secret", "is required with a new sip_username (\"generate\" or a secret): the stored digest depends on the username")
	}
	if c.memberships != nil {
		names := make([]string, 0, len(c.memberships))
		for _, m := range c.memberships {
			names = append(names, m.Queue)
		}
		var found []string
		rows, err := tx.Query(ctx, `SELECT name FROM roster_queues WHERE name = ANY($1)`, names)
		if err == nil {
			found, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return "", nil, err
		}
		for i, n := range names {
			if !slices.Contains(found, n) {
				return "", nil, invalid("queues["+strconv.Itoa(i)+"]", "no queue named %s", n)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM roster_memberships WHERE user_id = $1 AND NOT queue = ANY($2)`, id, names); err != nil {
			return "", nil, err
		}
		for i, m := range c.memberships {
			q := `INSERT INTO roster_memberships (queue, user_id, priority, position) VALUES ($1, $2, $3, $4)
				ON CONFLICT (queue, user_id) DO UPDATE SET priority = excluded.priority, position = excluded.position`
			if c.keepPriorities {
				q = `INSERT INTO roster_memberships (queue, user_id, priority, position) VALUES ($1, $2, $3, $4)
					ON CONFLICT (queue, user_id) DO UPDATE SET position = excluded.position`
			}
			if _, err := tx.Exec(ctx, q, m.Queue, id, m.Priority, i); err != nil {
				return "", nil, err
			}
		}
		desc := make([]string, 0, len(c.memberships))
		for _, m := range c.memberships {
			desc = append(desc, m.Queue)
		}
		changes = append(changes, "queues: "+strings.Join(desc, ", "))
	}
	return secret, changes, nil
}

func setSIP(ctx context.Context, tx pgx.Tx, id int64, user, md5h, shah string) error {
	_, err := tx.Exec(ctx, `UPDATE roster_agents SET sip_username = $2, ha1_md5 = $3, ha1_sha256 = $4, updated_at = now()
		WHERE user_id = $1`, id, user, md5h, shah)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return conflict("sip_username", "%q is already another agent's SIP username", clip(user))
	}
	return err
}

// freeSIPUsername is a new agent's SIP username: the email's local part when free, else the
// email, else "agent<id>".
func freeSIPUsername(ctx context.Context, tx pgx.Tx, id int64, email string) (string, error) {
	local, _, _ := strings.Cut(email, "@")
	for _, u := range []string{local, email, "agent" + strconv.FormatInt(id, 10)} {
		if !sipUser.MatchString(u) {
			continue
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM roster_agents WHERE lower(sip_username) = lower($1) AND user_id <> $2)`,
			u, id).Scan(&taken); err != nil {
			return "", err
		}
		if !taken {
			return u, nil
		}
	}
	return "", conflict("sip_username", "no free SIP username: give one")
}

func (a *API) createAgent(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	in, err := body(r, "agent", append([]string{"user_id", "name", "email", "password", "role"}, agentFields...), agentRead)
	if err != nil {
		return err
	}
	c, err := parseAgentChange(in)
	if err != nil {
		return err
	}
	var id int64
	if ok, err := field(in, "user_id", &id); err != nil {
		return err
	} else if ok {
		for _, f := range []string{"name", "email", "password", "role"} {
			if _, has := in[f]; has {
				return invalid(f, "give user_id (an existing user) or name, email, password and role (a new one), not both")
			}
		}
		if id <= 0 {
			return invalid("user_id", "must be a user's id")
		}
	} else {
		var nu ticketing.NewUser
		for f, v := range map[string]*string{"name": &nu.Name, "email": &nu.Email, "password": &nu.Password} {
			if _, err := field(in, f, v); err != nil {
				return err
			}
		}
		// A new user is an agent unless role says supervisor or admin (an end user takes no
		// calls).
		nu.Role = ticketing.RoleAgent
		if _, err := field(in, "role", &nu.Role); err != nil {
			return err
		}
		switch nu.Role {
		case ticketing.RoleAgent, ticketing.RoleSupervisor, ticketing.RoleAdmin:
		default:
			return invalid("role", "%q is not a role that takes calls; use agent, supervisor or admin", clip(nu.Role))
		}
		u, err := a.opts.Users.CreateUser(r.Context(), p.Actor(), nu)
		if err != nil {
			return err // 422 naming the field, 409 for an email in use
		}
		id = u.ID
	}
	return a.writeAgent(w, r, p, id, c, http.StatusCreated)
}

func (a *API) writeAgent(w http.ResponseWriter, r *http.Request, p ticketing.Principal, id int64, c agentChange, status int) error {
	var secret string
	err := a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		var changes []string
		var err error
		secret, changes, err = applyAgent(r.Context(), tx, id, c)
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditAgentChanged, UserID: id,
			Description: "Agent changed: " + strings.Join(changes, "; "), Details: map[string]any{"changes": changes}}, nil
	})
	if err != nil {
		return err
	}
	ag, err := agentOf(r.Context(), a.m.opts.Pool, id)
	if err != nil {
		return err
	}
	out := toAgentJSON(ag)
	out.SIPSecret = secret
	writeJSON(w, status, map[string]any{"agent": out})
	return nil
}

func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound("no agent %q", clip(r.PathValue(name)))
	}
	return id, nil
}

func (a *API) getAgent(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ag, err := agentOf(r.Context(), a.m.opts.Pool, id)
	if errors.Is(err, ErrNotFound) {
		return notFound("no agent with id %d", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent": toAgentJSON(ag)})
	return nil
}

func (a *API) putAgent(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	in, err := body(r, "agent", agentFields, append([]string{"name", "email"}, agentRead...))
	if err != nil {
		return err
	}
	c, err := parseAgentChange(in)
	if err != nil {
		return err
	}
	return a.writeAgent(w, r, p, id, c, http.StatusOK)
}

func (a *API) deleteAgent(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		tag, err := tx.Exec(r.Context(), `DELETE FROM roster_agents WHERE user_id = $1`, id)
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		if tag.RowsAffected() == 0 {
			return ticketing.RosterAudit{}, notFound("no agent with id %d", id)
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditAgentChanged, UserID: id,
			Description: "Agent taken off the roster (queues and SIP phone removed)", Details: map[string]any{"removed": true}}, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- queues ----

type queueJSON struct {
	Name             string `json:"name"`
	RingTimeout      int64  `json:"ring_timeout"` // whole seconds; 0: the default
	MaxWait          int64  `json:"max_wait"`
	WrapUp           int64  `json:"wrap_up"`
	MaxMissedOffers  int    `json:"max_missed_offers"`
	AnnouncePosition bool   `json:"announce_position"`
	Overflow         string `json:"overflow"`
	Music            string `json:"music"`
	// ServiceLevelSeconds: the reports' threshold (0: the configuration file's, else 20).
	ServiceLevelSeconds int           `json:"service_level_seconds"`
	Callback            *callbackJSON `json:"callback"` // null: no callbacks
	Memberships         []memberJSON  `json:"memberships"`
}

// callbackJSON is a queue's callback settings: the key, the dial attempts and the pause
// between them in whole seconds (0: the defaults, 3 and 60).
type callbackJSON struct {
	Key        string `json:"key"`
	Attempts   int    `json:"attempts"`
	RetryDelay int64  `json:"retry_delay"`
}

type memberJSON struct {
	AgentID  int64  `json:"agent_id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	Priority int    `json:"priority"`
}

func secs(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

var (
	queueFields = []string{"ring_timeout", "max_wait", "wrap_up", "max_missed_offers", "announce_position", "overflow",
		"service_level_seconds", "callback"}
	queueRead = []string{"name", "music", "memberships", "url"}
)

// parseQueue applies a body's settings to q.
func (a *API) parseQueue(in map[string]json.RawMessage, q *Queue) error {
	dur := func(name string, d *time.Duration, lo, hi int64) error {
		var v int64
		ok, err := field(in, name, &v)
		if err != nil || !ok {
			return err
		}
		if v < lo || v > hi {
			return invalid(name, "must be %d to %d seconds, got %d", lo, hi, v)
		}
		*d = time.Duration(v) * time.Second
		return nil
	}
	if err := dur("ring_timeout", &q.RingTimeout, 0, 600); err != nil {
		return err
	}
	if err := dur("max_wait", &q.MaxWait, 0, 86400); err != nil {
		return err
	}
	if err := dur("wrap_up", &q.WrapUp, 0, 3600); err != nil {
		return err
	}
	if ok, err := field(in, "max_missed_offers", &q.MaxMissedOffers); err != nil {
		return err
	} else if ok && (q.MaxMissedOffers < 0 || q.MaxMissedOffers > 100) {
		return invalid("max_missed_offers", "must be 0 (never) to 100, got %d", q.MaxMissedOffers)
	}
	if _, err := field(in, "announce_position", &q.AnnouncePosition); err != nil {
		return err
	}
	if ok, err := field(in, "overflow", &q.Overflow); err != nil {
		return err
	} else if ok && q.Overflow != "" {
		if _, err := a.m.opts.ParseTarget(q.Overflow); err != nil {
			return invalid("overflow", "%v", err)
		}
	}
	if ok, err := field(in, "service_level_seconds", &q.ServiceLevelSeconds); err != nil {
		return err
	} else if ok && (q.ServiceLevelSeconds < 0 || q.ServiceLevelSeconds > 3600) {
		return invalid("service_level_seconds", "must be 1 to 3600 seconds (0: the configured default), got %d", q.ServiceLevelSeconds)
	}
	return parseCallback(in, q)
}

// parseCallback applies a body's "callback": null or {"key":""} turns callbacks off; an
// object sets the key (one of 0-9 * #), attempts (1 to 10, 0 the default) and retry_delay
// (whole seconds, 0 the default, at most a day). Fields left out keep their values.
func parseCallback(in map[string]json.RawMessage, q *Queue) error {
	raw, ok := in["callback"]
	if !ok {
		return nil
	}
	if string(raw) == "null" {
		q.CallbackKey, q.CallbackAttempts, q.CallbackRetry = "", 0, 0
		return nil
	}
	var cb map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cb); err != nil || cb == nil {
		return invalid("callback", "must be null or an object: {\"key\":\"1\",\"attempts\":3,\"retry_delay\":60}")
	}
	for k := range cb {
		if k != "key" && k != "attempts" && k != "retry_delay" {
			return invalid("callback."+clip(k), "is an unknown field; a callback has key, attempts and retry_delay")
		}
	}
	if ok, err := field(cb, "key", &q.CallbackKey); err != nil {
		return invalid("callback.key", "has the wrong type: a string")
	} else if ok && (len(q.CallbackKey) > 1 || strings.Trim(q.CallbackKey, "0123456789*#") != "") {
		return invalid("callback.key", "must be one key of 0-9, * or # (\"\" turns callbacks off), got %q", clip(q.CallbackKey))
	}
	if ok, err := field(cb, "attempts", &q.CallbackAttempts); err != nil {
		return invalid("callback.attempts", "has the wrong type: a whole number")
	} else if ok && (q.CallbackAttempts < 0 || q.CallbackAttempts > 10) {
		return invalid("callback.attempts", "must be 1 to 10 (0: the default, 3), got %d", q.CallbackAttempts)
	}
	var retry int64
	if ok, err := field(cb, "retry_delay", &retry); err != nil {
		return invalid("callback.retry_delay", "has the wrong type: a whole number of seconds")
	} else if ok {
		if retry < 0 || retry > 86400 {
			return invalid("callback.retry_delay", "must be 0 (the default, 60) to 86400 seconds, got %d", retry)
		}
		q.CallbackRetry = time.Duration(retry) * time.Second
	}
	if q.CallbackKey == "" {
		q.CallbackAttempts, q.CallbackRetry = 0, 0
	}
	return nil
}

func (a *API) createQueue(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	in, err := body(r, "queue", append([]string{"name"}, queueFields...), []string{"music", "memberships", "url"})
	if err != nil {
		return err
	}
	var q Queue
	if ok, err := field(in, "name", &q.Name); err != nil {
		return err
	} else if !ok {
		return invalid("name", "is required")
	}
	if !queueName.MatchString(q.Name) {
		return invalid("name", "%q is not a queue name: letters, digits, '_' and '-', at most 64", clip(q.Name))
	}
	if err := a.parseQueue(in, &q); err != nil {
		return err
	}
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		if err := checkOverflowQueue(r.Context(), tx, a, q); err != nil {
			return ticketing.RosterAudit{}, err
		}
		_, err := tx.Exec(r.Context(), `INSERT INTO roster_queues (name, ring_timeout_ms, max_wait_ms, wrap_up_ms, max_missed_offers,
			announce_position, overflow, service_level_seconds, callback_key, callback_attempts, callback_retry_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, q.Name, q.RingTimeout.Milliseconds(),
			q.MaxWait.Milliseconds(), q.WrapUp.Milliseconds(), q.MaxMissedOffers, q.AnnouncePosition, q.Overflow,
			q.ServiceLevelSeconds, q.CallbackKey, q.CallbackAttempts, q.CallbackRetry.Milliseconds())
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return ticketing.RosterAudit{}, conflict("name", "a queue named %s exists", q.Name)
		}
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditQueueChanged, Description: "Queue " + q.Name + " created",
			Details: map[string]any{"queue": q.Name, "created": true}}, nil
	})
	if err != nil {
		return err
	}
	return a.writeQueue(w, r, q.Name, http.StatusCreated)
}

// checkOverflowQueue refuses an overflow into a queue that does not exist, or into itself.
func checkOverflowQueue(ctx context.Context, tx pgx.Tx, a *API, q Queue) error {
	if q.Overflow == "" {
		return nil
	}
	t, err := a.m.opts.ParseTarget(q.Overflow)
	if err != nil {
		return invalid("overflow", "%v", err)
	}
	if t.Kind != ivr.TargetQueue {
		return nil
	}
	if t.Name == q.Name {
		return invalid("overflow", "a queue cannot overflow into itself")
	}
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM roster_queues WHERE name = $1)`, t.Name).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return invalid("overflow", "no queue named %s", t.Name)
	}
	return nil
}

func (a *API) writeQueue(w http.ResponseWriter, r *http.Request, name string, status int) error {
	q, err := queueOf(r.Context(), a.m.opts.Pool, name)
	if errors.Is(err, ErrNotFound) {
		return notFound("no queue named %s", clip(name))
	}
	if err != nil {
		return err
	}
	ms, err := members(r.Context(), a.m.opts.Pool, name)
	if err != nil {
		return err
	}
	out := queueJSON{Name: q.Name, RingTimeout: secs(q.RingTimeout), MaxWait: secs(q.MaxWait), WrapUp: secs(q.WrapUp),
		MaxMissedOffers: q.MaxMissedOffers, AnnouncePosition: q.AnnouncePosition, Overflow: q.Overflow, Music: q.Music, Memberships: ms,
		ServiceLevelSeconds: q.ServiceLevelSeconds}
	if q.CallbackKey != "" {
		out.Callback = &callbackJSON{Key: q.CallbackKey, Attempts: q.CallbackAttempts, RetryDelay: secs(q.CallbackRetry)}
	}
	writeJSON(w, status, map[string]any{"queue": out})
	return nil
}

func members(ctx context.Context, q querier, name string) ([]memberJSON, error) {
	rows, err := q.Query(ctx, `SELECT m.user_id, u.name, coalesce(u.email, ''), m.priority FROM roster_memberships m
		JOIN users u ON u.id = m.user_id WHERE m.queue = $1 AND u.deleted_at IS NULL ORDER BY m.priority, m.user_id`, name)
	if err != nil {
		return nil, fmt.Errorf("roster: members of %s: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[memberJSON])
	if err != nil {
		return nil, fmt.Errorf("roster: members of %s: %w", name, err)
	}
	if out == nil {
		out = []memberJSON{}
	}
	return out, nil
}

func (a *API) getQueue(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	return a.writeQueue(w, r, r.PathValue("name"), http.StatusOK)
}

func (a *API) putQueue(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	name := r.PathValue("name")
	in, err := body(r, "queue", queueFields, queueRead)
	if err != nil {
		return err
	}
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		q, err := queueOf(r.Context(), tx, name)
		if errors.Is(err, ErrNotFound) {
			return ticketing.RosterAudit{}, notFound("no queue named %s", clip(name))
		}
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		old := q
		if err := a.parseQueue(in, &q); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if err := checkOverflowQueue(r.Context(), tx, a, q); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if _, err := tx.Exec(r.Context(), `UPDATE roster_queues SET ring_timeout_ms = $2, max_wait_ms = $3, wrap_up_ms = $4,
			max_missed_offers = $5, announce_position = $6, overflow = $7, service_level_seconds = $8, callback_key = $9,
			callback_attempts = $10, callback_retry_ms = $11, updated_at = now() WHERE name = $1`,
			q.Name, q.RingTimeout.Milliseconds(), q.MaxWait.Milliseconds(), q.WrapUp.Milliseconds(), q.MaxMissedOffers,
			q.AnnouncePosition, q.Overflow, q.ServiceLevelSeconds, q.CallbackKey, q.CallbackAttempts, q.CallbackRetry.Milliseconds()); err != nil {
			return ticketing.RosterAudit{}, err
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditQueueChanged, Description: "Queue " + q.Name + " changed: " + queueDiff(old, q),
			Details: map[string]any{"queue": q.Name}}, nil
	})
	if err != nil {
		return err
	}
	return a.writeQueue(w, r, name, http.StatusOK)
}

// queueDiff says what changed between two settings of a queue.
func queueDiff(o, n Queue) string {
	var d []string
	add := func(k string, x, y any) {
		if x != y {
			d = append(d, fmt.Sprintf("%s %v → %v", k, x, y))
		}
	}
	add("ring_timeout", secs(o.RingTimeout), secs(n.RingTimeout))
	add("max_wait", secs(o.MaxWait), secs(n.MaxWait))
	add("wrap_up", secs(o.WrapUp), secs(n.WrapUp))
	add("max_missed_offers", o.MaxMissedOffers, n.MaxMissedOffers)
	add("announce_position", o.AnnouncePosition, n.AnnouncePosition)
	add("overflow", o.Overflow, n.Overflow)
	add("service_level_seconds", o.ServiceLevelSeconds, n.ServiceLevelSeconds)
	add("callback_key", o.CallbackKey, n.CallbackKey)
	add("callback_attempts", o.CallbackAttempts, n.CallbackAttempts)
	add("callback_retry_delay", secs(o.CallbackRetry), secs(n.CallbackRetry))
	if len(d) == 0 {
		return "nothing"
	}
	return strings.Join(d, ", ")
}

func (a *API) deleteQueue(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	name := r.PathValue("name")
	if a.opts.InUse != nil {
		if by := a.opts.InUse(name); by != "" {
			return conflict("", "queue %s cannot be deleted: %s sends calls to it in the configuration", clip(name), by)
		}
	}
	err := a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		var by string
		if err := tx.QueryRow(r.Context(), `SELECT coalesce(min(name), '') FROM roster_queues WHERE overflow = 'queue:' || $1`, name).Scan(&by); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if by != "" {
			return ticketing.RosterAudit{}, conflict("", "queue %s cannot be deleted: queue %s overflows into it", clip(name), by)
		}
		if err := tx.QueryRow(r.Context(), `SELECT coalesce(min(number), '') FROM roster_lines
			WHERE target = 'queue:' || $1 OR hours ->> 'closed_target' = 'queue:' || $1`, name).Scan(&by); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if by != "" {
			return ticketing.RosterAudit{}, conflict("", "queue %s cannot be deleted: line %s sends calls to it", clip(name), by)
		}
		tag, err := tx.Exec(r.Context(), `DELETE FROM roster_queues WHERE name = $1`, name)
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		if tag.RowsAffected() == 0 {
			return ticketing.RosterAudit{}, notFound("no queue named %s", clip(name))
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditQueueChanged, Description: "Queue " + name + " deleted",
			Details: map[string]any{"queue": name, "deleted": true}}, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- memberships ----

func (a *API) getMemberships(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	name := r.PathValue("name")
	if _, err := queueOf(r.Context(), a.m.opts.Pool, name); errors.Is(err, ErrNotFound) {
		return notFound("no queue named %s", clip(name))
	} else if err != nil {
		return err
	}
	ms, err := members(r.Context(), a.m.opts.Pool, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"memberships": ms, "next_page": nil})
	return nil
}

func (a *API) putMembership(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	name := r.PathValue("name")
	id, err := pathID(r, "agent_id")
	if err != nil {
		return err
	}
	prio := 1
	if r.ContentLength != 0 {
		in, err := body(r, "membership", []string{"priority"}, []string{"agent_id", "name", "email", "queue"})
		if err != nil {
			return err
		}
		if _, err := field(in, "priority", &prio); err != nil {
			return err
		}
	}
	if prio < 1 || prio > 100 {
		return invalid("priority", "must be 1 (offered first) to 100, got %d", prio)
	}
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		if _, err := queueOf(r.Context(), tx, name); errors.Is(err, ErrNotFound) {
			return ticketing.RosterAudit{}, notFound("no queue named %s", clip(name))
		} else if err != nil {
			return ticketing.RosterAudit{}, err
		}
		if _, err := agentOf(r.Context(), tx, id); errors.Is(err, ErrNotFound) {
			return ticketing.RosterAudit{}, notFound("no agent with id %d (make the user an agent with PUT /agents/%d)", id, id)
		} else if err != nil {
			return ticketing.RosterAudit{}, err
		}
		// A new membership comes last among the agent's queues (its position, OB-7).
		if _, err := tx.Exec(r.Context(), `INSERT INTO roster_memberships (queue, user_id, priority, position)
			VALUES ($1, $2, $3, (SELECT coalesce(max(position), -1) + 1 FROM roster_memberships WHERE user_id = $2))
			ON CONFLICT (queue, user_id) DO UPDATE SET priority = excluded.priority`, name, id, prio); err != nil {
			return ticketing.RosterAudit{}, err
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditAgentChanged, UserID: id,
			Description: fmt.Sprintf("Agent in queue %s with priority %d", name, prio), Details: map[string]any{"queue": name, "priority": prio}}, nil
	})
	if err != nil {
		return err
	}
	ms, err := members(r.Context(), a.m.opts.Pool, name)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.AgentID == id {
			writeJSON(w, http.StatusOK, map[string]any{"membership": m})
			return nil
		}
	}
	return notFound("no agent with id %d in queue %s", id, clip(name))
}

func (a *API) deleteMembership(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	name := r.PathValue("name")
	id, err := pathID(r, "agent_id")
	if err != nil {
		return err
	}
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		tag, err := tx.Exec(r.Context(), `DELETE FROM roster_memberships WHERE queue = $1 AND user_id = $2`, name, id)
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		if tag.RowsAffected() == 0 {
			return ticketing.RosterAudit{}, notFound("agent %d is not in queue %s", id, clip(name))
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditAgentChanged, UserID: id,
			Description: "Agent taken out of queue " + name, Details: map[string]any{"queue": name, "removed": true}}, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
