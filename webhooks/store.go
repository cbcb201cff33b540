package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is a webhook (or invocation) that does not exist: 404 at the API.
var ErrNotFound = errors.New("webhooks: not found")

// store holds the SQL of the webhooks tables (migration 016). Every method takes a context
// and wraps its error with the operation.
type store struct {
	pool *pgxpool.Pool
}

const webhookCols = `id, name, description, status, endpoint, http_method, request_format, subscriptions,
	custom_headers, authentication, external_source, signing_secret, coalesce(created_by::text, '-1'),
	coalesce(updated_by::text, ''), created_at, updated_at`

func scanWebhook(row pgx.Row, extra ...any) (*Webhook, error) {
	var w Webhook
	var headers, auth, ext []byte
	dest := []any{&w.ID, &w.Name, &w.Description, &w.Status, &w.Endpoint, &w.HTTPMethod, &w.RequestFormat,
		&w.Subscriptions, &headers, &auth, &ext, &w.secret, &w.CreatedBy, &w.UpdatedBy, &w.CreatedAt, &w.UpdatedAt}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	w.CreatedAt, w.UpdatedAt = w.CreatedAt.UTC(), w.UpdatedAt.UTC()
	if err := json.Unmarshal(headers, &w.CustomHeaders); err != nil {
		return nil, fmt.Errorf("custom_headers: %w", err)
	}
	if len(auth) > 0 {
		w.auth = &Auth{}
		if err := json.Unmarshal(auth, w.auth); err != nil {
			return nil, fmt.Errorf("authentication: %w", err)
		}
		w.Authentication = &AuthView{Type: w.auth.Type, AddPosition: w.auth.AddPosition}
	}
	if len(ext) > 0 {
		w.ExternalSource = ext
	}
	if w.Subscriptions == nil {
		w.Subscriptions = []string{}
	}
	return &w, nil
}

func authJSON(a *Auth) []byte {
	if a == nil {
		return nil
	}
	b, _ := json.Marshal(a) // strings only: cannot fail
	return b
}

func extJSON(r json.RawMessage) []byte {
	if len(r) == 0 {
		return nil
	}
	return r
}

// create stores w with its cursors at the current end of both sources: a new webhook gets
// the events stored after it was created, as in Zendesk.
func (s *store) create(ctx context.Context, w *Webhook, actor int64) (*Webhook, error) {
	headers, _ := json.Marshal(w.CustomHeaders)
	row := s.pool.QueryRow(ctx, `INSERT INTO webhooks (id, name, description, status, endpoint, http_method, request_format,
			subscriptions, custom_headers, authentication, external_source, signing_secret, created_by, updated_by,
			call_cursor, audit_cursor, ticket_cursor)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13,
			(SELECT coalesce(max(pos), 0) FROM call_events), (SELECT coalesce(max(id), 0) FROM audits),
			(SELECT coalesce(max(id), 0) FROM ticket_events))
		RETURNING `+webhookCols,
		w.ID, w.Name, w.Description, w.Status, w.Endpoint, w.HTTPMethod, w.RequestFormat, w.Subscriptions,
		headers, authJSON(w.auth), extJSON(w.ExternalSource), w.secret, actor)
	out, err := scanWebhook(row)
	if err != nil {
		return nil, fmt.Errorf("webhooks: create: %w", err)
	}
	return out, nil
}

func (s *store) get(ctx context.Context, id string) (*Webhook, error) {
	w, err := scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks: get %s: %w", id, err)
	}
	return w, nil
}

// listFilter is GET /webhooks' query.
type listFilter struct {
	after        string // id
	before       string // id: the page just before it (page[before]), still in id order
	size         int
	status       string
	nameContains string
}

// list returns a page of webhooks in id order (creation order) and whether more follow.
func (s *store) list(ctx context.Context, f listFilter) ([]*Webhook, bool, error) {
	q, bound := `SELECT `+webhookCols+` FROM webhooks
		WHERE id > $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR strpos(lower(name), lower($3)) > 0)
		ORDER BY id LIMIT $4`, f.after
	if f.before != "" {
		q, bound = `SELECT `+webhookCols+` FROM webhooks
		WHERE id < $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR strpos(lower(name), lower($3)) > 0)
		ORDER BY id DESC LIMIT $4`, f.before
	}
	rows, err := s.pool.Query(ctx, q, bound, f.status, f.nameContains, f.size+1)
	if err != nil {
		return nil, false, fmt.Errorf("webhooks: list: %w", err)
	}
	defer rows.Close()
	var out []*Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, false, fmt.Errorf("webhooks: list: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("webhooks: list: %w", err)
	}
	more := len(out) > f.size
	if more {
		out = out[:f.size]
	}
	if f.before != "" {
		slices.Reverse(out)
	}
	return out, more, nil
}

// update reads the webhook under a row lock, lets change edit it, and writes it back. A webhook
// turned from inactive to active starts again at the current end of the sources: Zendesk sends
// an inactive webhook nothing, and nothing is owed for that time.
func (s *store) update(ctx context.Context, id string, actor int64, change func(*Webhook) fieldErrors) (fieldErrors, error) {
	var ferrs fieldErrors
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w, err := scanWebhook(tx.QueryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		was := w.Status
		if ferrs = change(w); len(ferrs) > 0 {
			return nil
		}
		headers, _ := json.Marshal(w.CustomHeaders)
		_, err = tx.Exec(ctx, `UPDATE webhooks SET name = $2, description = $3, status = $4, endpoint = $5,
				http_method = $6, request_format = $7, subscriptions = $8, custom_headers = $9, authentication = $10,
				external_source = $11, updated_by = $12, updated_at = clock_timestamp(),
				call_cursor = CASE WHEN $13 THEN (SELECT coalesce(max(pos), 0) FROM call_events) ELSE call_cursor END,
				audit_cursor = CASE WHEN $13 THEN (SELECT coalesce(max(id), 0) FROM audits) ELSE audit_cursor END,
				ticket_cursor = CASE WHEN $13 THEN (SELECT coalesce(max(id), 0) FROM ticket_events) ELSE ticket_cursor END
			WHERE id = $1`,
			id, w.Name, w.Description, w.Status, w.Endpoint, w.HTTPMethod, w.RequestFormat, w.Subscriptions,
			headers, authJSON(w.auth), extJSON(w.ExternalSource), actor, was == StatusInactive && w.Status == StatusActive)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks: update %s: %w", id, err)
	}
	return ferrs, nil
}

func (s *store) delete(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhooks WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("webhooks: delete %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *store) setSecret(ctx context.Context, id, secret string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE webhooks SET signing_secret = $2, updated_at = clock_timestamp() WHERE id = $1`, id, secret)
	if err != nil {
		return fmt.Errorf("webhooks: reset secret of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// Invocation is one event sent to a webhook (Zendesk's invocation), with Switchboard's
// additions: the event's id and type, and the number of attempts.
type Invocation struct {
	ID                string     `json:"id"`
	WebhookID         string     `json:"webhook_id"`
	EventID           string     `json:"event_id"`
	EventType         string     `json:"event_type"`
	Status            string     `json:"status"`
	StatusCode        *int       `json:"status_code"`
	Attempts          int        `json:"attempts"`
	CreatedAt         time.Time  `json:"created_at"`
	LatestCompletedAt *time.Time `json:"latest_completed_at"`
}

// Attempt is one try of an invocation (Zendesk's invocation attempt), with the error and the
// duration of the try.
type Attempt struct {
	ID           string    `json:"id"`
	InvocationID string    `json:"invocation_id"`
	Status       string    `json:"status"`
	StatusCode   *int      `json:"status_code"`
	Error        string    `json:"error,omitempty"`
	DurationMS   int       `json:"duration_ms"`
	CompletedAt  time.Time `json:"completed_at"`
}

// invocations lists a webhook's invocations, newest first: those older than the invocation
// id older (0: from the newest), or with newer > 0 the page just newer than it, and whether
// more follow in the direction asked.
func (s *store) invocations(ctx context.Context, webhookID string, older, newer int64, size int, status string) ([]Invocation, bool, error) {
	q, bound := `SELECT id, event_id, event_type, status, status_code, attempts, created_at, latest_completed_at
		FROM webhook_invocations WHERE webhook_id = $1 AND ($2 = 0 OR id < $2) AND ($3 = '' OR status = $3)
		ORDER BY id DESC LIMIT $4`, older
	if newer > 0 {
		q, bound = `SELECT id, event_id, event_type, status, status_code, attempts, created_at, latest_completed_at
		FROM webhook_invocations WHERE webhook_id = $1 AND id > $2 AND ($3 = '' OR status = $3)
		ORDER BY id LIMIT $4`, newer
	}
	rows, err := s.pool.Query(ctx, q, webhookID, bound, status, size+1)
	if err != nil {
		return nil, false, fmt.Errorf("webhooks: invocations of %s: %w", webhookID, err)
	}
	defer rows.Close()
	var out []Invocation
	for rows.Next() {
		var inv Invocation
		var id int64
		if err := rows.Scan(&id, &inv.EventID, &inv.EventType, &inv.Status, &inv.StatusCode, &inv.Attempts, &inv.CreatedAt, &inv.LatestCompletedAt); err != nil {
			return nil, false, fmt.Errorf("webhooks: invocations of %s: %w", webhookID, err)
		}
		inv.ID, inv.WebhookID, inv.CreatedAt = strconv.FormatInt(id, 10), webhookID, inv.CreatedAt.UTC()
		if inv.LatestCompletedAt != nil {
			t := inv.LatestCompletedAt.UTC()
			inv.LatestCompletedAt = &t
		}
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("webhooks: invocations of %s: %w", webhookID, err)
	}
	more := len(out) > size
	if more {
		out = out[:size]
	}
	if newer > 0 {
		slices.Reverse(out)
	}
	return out, more, nil
}

// attempts lists the attempts of one invocation of a webhook, oldest first.
func (s *store) attempts(ctx context.Context, webhookID string, invocationID int64) ([]Attempt, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_invocations WHERE id = $1 AND webhook_id = $2)`,
		invocationID, webhookID).Scan(&exists); err != nil {
		return nil, fmt.Errorf("webhooks: attempts: %w", err)
	}
	if !exists {
		return nil, ErrNotFound
	}
	rows, err := s.pool.Query(ctx, `SELECT id, status, status_code, error, duration_ms, completed_at
		FROM webhook_attempts WHERE invocation_id = $1 ORDER BY id`, invocationID)
	if err != nil {
		return nil, fmt.Errorf("webhooks: attempts: %w", err)
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		var a Attempt
		var id int64
		if err := rows.Scan(&id, &a.Status, &a.StatusCode, &a.Error, &a.DurationMS, &a.CompletedAt); err != nil {
			return nil, fmt.Errorf("webhooks: attempts: %w", err)
		}
		a.ID, a.InvocationID, a.CompletedAt = strconv.FormatInt(id, 10), strconv.FormatInt(invocationID, 10), a.CompletedAt.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhooks: attempts: %w", err)
	}
	return out, nil
}

// --- delivery ---

// lease is what a worker holds of its webhook while it delivers it.
type lease struct {
	hook    *Webhook
	cursors [numSources]int64 // by source kind: call_events.pos, audits.id, ticket_events.id
	renewed time.Time         // when the lease was last taken or renewed (the dispatcher's clock)
}

// errGone is a webhook deleted or made inactive: its worker stops.
var errGone = errors.New("webhooks: webhook deleted or inactive")

// errLeaseLost is a webhook another node now delivers: this node's worker stops.
var errLeaseLost = errors.New("webhooks: lease lost")

// claim takes or renews the lease of webhook id for owner. It returns (nil, nil) while another
// node holds an unexpired lease, errGone when the webhook is gone or inactive.
func (s *store) claim(ctx context.Context, id, owner string, ttl time.Duration) (*lease, error) {
	var l lease
	w, err := scanWebhook(s.pool.QueryRow(ctx, `UPDATE webhooks
		SET leased_by = $2, lease_until = clock_timestamp() + make_interval(secs => $3)
		WHERE id = $1 AND status = 'active' AND (leased_by IS NULL OR leased_by = $2 OR lease_until < clock_timestamp())
		RETURNING `+webhookCols+`, call_cursor, audit_cursor, ticket_cursor`, id, owner, ttl.Seconds()),
		&l.cursors[sourceCall], &l.cursors[sourceAudit], &l.cursors[sourceTicket])
	if err == nil {
		l.hook = w
		return &l, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("webhooks: claim %s: %w", id, err)
	}
	var status string
	err = s.pool.QueryRow(ctx, `SELECT status FROM webhooks WHERE id = $1`, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && status != StatusActive) {
		return nil, errGone
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks: claim %s: %w", id, err)
	}
	return nil, nil
}

// release gives the lease up (a clean stop): another node may take the webhook at once.
func (s *store) release(ctx context.Context, id, owner string) {
	_, _ = s.pool.Exec(ctx, `UPDATE webhooks SET leased_by = NULL, lease_until = NULL WHERE id = $1 AND leased_by = $2`, id, owner)
}

// activeIDs lists the active webhooks.
func (s *store) activeIDs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM webhooks WHERE status = 'active' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("webhooks: active: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("webhooks: active: %w", err)
	}
	return ids, nil
}

// The sources of events, in the order of lease.cursors.
const (
	sourceCall   = iota // call_events, by pos
	sourceAudit         // audits, by id
	sourceTicket        // ticket_events (migration 018), by id
	numSources
)

// sourceKinds are the sources as webhook_invocations.source names them; sourceTables and
// sourceCursors their tables and the webhooks column of their cursor.
var (
	sourceKinds   = [numSources]string{"call", "audit", "ticket"}
	sourceTables  = [numSources]string{"call_events", "audits", "ticket_events"}
	sourceCursors = [numSources]string{"call_cursor", "audit_cursor", "ticket_cursor"}
)

// source is one event from call_events, audits or ticket_events, before it is sent.
type source struct {
	kind     string // "call", "audit" or "ticket"
	pos      int64  // call_events.pos, audits.id or ticket_events.id
	stored   time.Time
	eventID  string
	typ      string // the webhook event type, zen:event-type:…
	envelope []byte // the JSON body sent
}

// callEvents reads up to n call events after pos, in pos order.
func (s *store) callEvents(ctx context.Context, after int64, n int) ([]source, error) {
	rows, err := s.pool.Query(ctx, `SELECT pos, id::text, call_id, type, at, received_at, body
		FROM call_events WHERE pos > $1 ORDER BY pos LIMIT $2`, after, n)
	if err != nil {
		return nil, fmt.Errorf("webhooks: read call events: %w", err)
	}
	var out []source
	for rows.Next() {
		var src source
		var callID, typ string
		var at time.Time
		var body []byte
		if err := rows.Scan(&src.pos, &src.eventID, &callID, &typ, &at, &src.stored, &body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("webhooks: read call events: %w", err)
		}
		src.kind, src.typ = "call", EventTypePrefix+typ
		src.envelope = envelope(src.typ, src.eventID, at, "zen:call:"+callID, body, []byte(`{}`))
		out = append(out, src)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhooks: read call events: %w", err)
	}
	return out, nil
}

// auditEvents reads up to n audit entries after id, in id order.
func (s *store) auditEvents(ctx context.Context, after int64, n int) ([]source, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, source_type, source_id, actor_id, details, change_description, created_at
		FROM audits WHERE id > $1 ORDER BY id LIMIT $2`, after, n)
	if err != nil {
		return nil, fmt.Errorf("webhooks: read audits: %w", err)
	}
	var out []source
	for rows.Next() {
		var src source
		var kind, sourceType, desc string
		var sourceID, actorID *int64
		var details []byte
		if err := rows.Scan(&src.pos, &kind, &sourceType, &sourceID, &actorID, &details, &desc, &src.stored); err != nil {
			rows.Close()
			return nil, fmt.Errorf("webhooks: read audits: %w", err)
		}
		src.kind = "audit"
		src.eventID = auditEventID(src.pos)
		src.typ = EventTypePrefix + sourceType + "." + kind
		subject := "zen:" + sourceType
		detail := map[string]any{"action": kind, "change_description": desc, "audit_log_id": src.pos}
		if sourceID != nil {
			subject += ":" + strconv.FormatInt(*sourceID, 10)
			detail["id"] = strconv.FormatInt(*sourceID, 10) // Zendesk writes ids in detail as strings
		}
		if actorID != nil {
			detail["actor_id"] = strconv.FormatInt(*actorID, 10)
		} else {
			detail["actor_id"] = "-1" // Zendesk's id of the system
		}
		db, _ := json.Marshal(detail)
		src.envelope = envelope(src.typ, src.eventID, src.stored, subject, db, details)
		out = append(out, src)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhooks: read audits: %w", err)
	}
	return out, nil
}

// ticketEvents reads up to n ticket events after id, in id order.
func (s *store) ticketEvents(ctx context.Context, after int64, n int) ([]source, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, ticket_id, kind, detail, event, created_at
		FROM ticket_events WHERE id > $1 ORDER BY id LIMIT $2`, after, n)
	if err != nil {
		return nil, fmt.Errorf("webhooks: read ticket events: %w", err)
	}
	var out []source
	for rows.Next() {
		var src source
		var ticketID int64
		var kind string
		var detail, event []byte
		if err := rows.Scan(&src.pos, &ticketID, &kind, &detail, &event, &src.stored); err != nil {
			rows.Close()
			return nil, fmt.Errorf("webhooks: read ticket events: %w", err)
		}
		src.kind = "ticket"
		src.eventID = ticketEventID(src.pos)
		src.typ = EventTypePrefix + "ticket." + kind
		src.envelope = envelope(src.typ, src.eventID, src.stored, "zen:ticket:"+strconv.FormatInt(ticketID, 10), detail, event)
		out = append(out, src)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhooks: read ticket events: %w", err)
	}
	return out, nil
}

func (s *store) snapshotXmax(ctx context.Context) (uint64, error) {
	var v string
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text`).Scan(&v); err != nil {
		return 0, fmt.Errorf("webhooks: snapshot: %w", err)
	}
	return strconv.ParseUint(v, 10, 64)
}

// snapshotXmin is the oldest transaction still running: every transaction below it has ended.
func (s *store) snapshotXmin(ctx context.Context) (uint64, error) {
	var v string
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&v); err != nil {
		return 0, fmt.Errorf("webhooks: snapshot: %w", err)
	}
	return strconv.ParseUint(v, 10, 64)
}

// advance moves the cursors over events the webhook does not subscribe to (never backwards).
func (s *store) advance(ctx context.Context, id, owner string, c [numSources]int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE webhooks SET call_cursor = greatest(call_cursor, $3), audit_cursor = greatest(audit_cursor, $4),
		ticket_cursor = greatest(ticket_cursor, $5)
		WHERE id = $1 AND leased_by = $2`, id, owner, c[sourceCall], c[sourceAudit], c[sourceTicket])
	if err != nil {
		return fmt.Errorf("webhooks: advance %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return errLeaseLost
	}
	return nil
}

// beginInvocation returns the invocation of src for the webhook, created on first use, and
// the attempts it already had (a restart mid-retry carries on counting).
func (s *store) beginInvocation(ctx context.Context, webhookID string, src source) (int64, int, error) {
	var id int64
	var attempts int
	err := s.pool.QueryRow(ctx, `INSERT INTO webhook_invocations (webhook_id, source, source_pos, event_id, event_type)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (webhook_id, source, source_pos) DO UPDATE SET event_id = EXCLUDED.event_id
		RETURNING id, attempts`, webhookID, src.kind, src.pos, src.eventID, src.typ).Scan(&id, &attempts)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign key: the webhook was deleted
		return 0, 0, errGone
	}
	if err != nil {
		return 0, 0, fmt.Errorf("webhooks: invocation: %w", err)
	}
	return id, attempts, nil
}

// attemptResult is one try, as recorded.
type attemptResult struct {
	statusCode int // 0: no answer
	err        string
	duration   time.Duration
	success    bool
	retryAfter time.Duration // the receiver's Retry-After
	giveUp     bool          // the last try: the invocation failed, the cursor moves past it
}

// recordAttempt records one try of an invocation; after a success (or when giving up) it moves
// the cursor past the event in the same transaction.
func (s *store) recordAttempt(ctx context.Context, webhookID, owner string, invocationID int64, src source, r attemptResult) error {
	status, invStatus := "failed", "pending"
	if r.success {
		status, invStatus = "success", "success"
	} else if r.giveUp {
		invStatus = "failed"
	}
	var code *int
	if r.statusCode != 0 {
		code = &r.statusCode
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The webhook's row first, as DELETE takes it (then the cascade takes the invocations):
		// taking the invocation first deadlocked with a DELETE of the webhook (40P01, found by
		// TestWebhookDeleteStopsDeliveries in a CI run). A deleted webhook or a lost lease ends
		// the attempt's recording here.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM webhooks WHERE id = $1 AND leased_by = $2 FOR NO KEY UPDATE`,
			webhookID, owner).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLeaseLost
		}
		if err != nil {
			return fmt.Errorf("webhooks: record attempt: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (invocation_id, status, status_code, error, duration_ms)
			VALUES ($1, $2, $3, $4, $5)`, invocationID, status, code, r.err, int(r.duration.Milliseconds())); err != nil {
			return fmt.Errorf("webhooks: record attempt: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE webhook_invocations SET attempts = attempts + 1, status = $2, status_code = $3,
			latest_completed_at = clock_timestamp() WHERE id = $1`, invocationID, invStatus, code); err != nil {
			return fmt.Errorf("webhooks: record attempt: %w", err)
		}
		if !r.success && !r.giveUp {
			return nil
		}
		col := sourceCursors[sourceOf(src.kind)]
		tag, err := tx.Exec(ctx, `UPDATE webhooks SET `+col+` = greatest(`+col+`, $3) WHERE id = $1 AND leased_by = $2`,
			webhookID, owner, src.pos)
		if err != nil {
			return fmt.Errorf("webhooks: advance cursor: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errLeaseLost
		}
		return nil
	})
}

// backlog is the number of events stored after the cursors of the webhooks this node
// delivers (positions, so a gap counts as one).
func (s *store) backlog(ctx context.Context, owner string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(
			greatest(0, (SELECT coalesce(max(pos), 0) FROM call_events) - call_cursor) +
			greatest(0, (SELECT coalesce(max(id), 0) FROM audits) - audit_cursor) +
			greatest(0, (SELECT coalesce(max(id), 0) FROM ticket_events) - ticket_cursor)), 0)::bigint
		FROM webhooks WHERE status = 'active' AND leased_by = $1`, owner).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("webhooks: backlog: %w", err)
	}
	return n, nil
}

// prune deletes invocations (and their attempts) older than keep.
func (s *store) prune(ctx context.Context, keep time.Duration) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM webhook_invocations WHERE created_at < clock_timestamp() - make_interval(secs => $1)
		AND status <> 'pending'`, keep.Seconds())
	if err != nil {
		return fmt.Errorf("webhooks: prune invocations: %w", err)
	}
	// Ticket events exist for webhooks only: those every webhook has passed, once as old.
	_, err = s.pool.Exec(ctx, `DELETE FROM ticket_events WHERE created_at < clock_timestamp() - make_interval(secs => $1)
		AND id <= (SELECT coalesce(min(ticket_cursor), 9223372036854775807) FROM webhooks WHERE status = 'active')`, keep.Seconds())
	if err != nil {
		return fmt.Errorf("webhooks: prune ticket events: %w", err)
	}
	return nil
}

// sourceOf is the index of a source kind.
func sourceOf(kind string) int {
	for i, k := range sourceKinds {
		if k == kind {
			return i
		}
	}
	return sourceCall
}

// anyIn reports whether table holds a row at a position in [from, to) (call_events by pos,
// audits by id).
func (s *store) anyIn(ctx context.Context, table string, from, to int64) (bool, error) {
	q := `SELECT EXISTS (SELECT 1 FROM call_events WHERE pos >= $1 AND pos < $2)`
	switch table {
	case "audits":
		q = `SELECT EXISTS (SELECT 1 FROM audits WHERE id >= $1 AND id < $2)`
	case "ticket_events":
		q = `SELECT EXISTS (SELECT 1 FROM ticket_events WHERE id >= $1 AND id < $2)`
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, q, from, to).Scan(&ok); err != nil {
		return false, fmt.Errorf("webhooks: read %s again: %w", table, err)
	}
	return ok, nil
}
