package roster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/phone"
)

// Lines managed live (migration 021): a line is a dialled number (DID) and the target its
// calls go to, stored in roster_lines, with (migration 031) its trunk, opening hours and ticket
// settings. They are read with the roster at every reload and handed to Options.Lines (the SIP
// server's line table, the ticketing engine's settings per line), on the loop's goroutine.
//
// Trunk, hours and settings left NULL are not the line's own: the configuration file's line of
// the same number gives them, as before 031, else the defaults (the only trunk, always open, the
// global ticket settings). A value stored wins over the file.

// Line is one line as stored.
type Line struct {
	// Number is E.164 ("+15550100").
	Number string `json:"number"`
	// Target is as the configuration writes it: queue:NAME, menu:NAME, voicemail, hangup or a
	// SIP URI.
	Target string `json:"target"`
	// Name is shown to people ("" the number); Language the call's starting language ("" the
	// default).
	Name     string `json:"name"`
	Language string `json:"language"`
	// Trunk names a trunk of the configuration; nil: the file's line's of this number (else
	// the only trunk).
	Trunk *string `json:"trunk"`
	// Hours are the opening hours as the file writes them, in JSON ({"time_zone", "weekly",
	// "holidays", "closed_target"}); nil: the file's line's of this number (else always open).
	Hours json.RawMessage `json:"hours"`
	// Settings override the global ticket settings as the file's lines[].settings do; nil:
	// the file's line's of this number (else none).
	Settings json.RawMessage `json:"settings"`
}

// LineProblem is what Options.CheckLine finds wrong with a line's trunk, hours or settings:
// the field's path below the line ("hours.weekly.mon[0]") and what is wrong.
type LineProblem struct {
	Field, Message string
}

// legacyLine is a line as migration 021 stored it: the seed's hash of the lines recorded
// before 031 is over these fields.
type legacyLine struct {
	Number   string `json:"number"`
	Target   string `json:"target"`
	Name     string `json:"name"`
	Language string `json:"language"`
}

// linesHash is the digest of the configuration's lines, recorded when they seed the table.
func linesHash(ls []Line) string {
	b, _ := json.Marshal(ls) // plain structs: never fails
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// legacyLinesHash is linesHash as it was before migration 031 (number, target, name and
// language only): a seed recorded then is not taken for a different file.
func legacyLinesHash(ls []Line) string {
	old := make([]legacyLine, len(ls))
	for i, l := range ls {
		old[i] = legacyLine{l.Number, l.Target, l.Name, l.Language}
	}
	b, _ := json.Marshal(old) // plain structs: never fails
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// jsonArg is a jsonb parameter: NULL for nil or JSON null.
func jsonArg(b json.RawMessage) any {
	t := strings.TrimSpace(string(b))
	if t == "" || t == "null" {
		return nil
	}
	return t
}

// seedLines writes the configuration's lines when they never were (inside ApplySeed's
// transaction, under its advisory lock); it reports whether it wrote them and, when they were
// written before, whether the file's differ from the seed recorded then.
func seedLines(ctx context.Context, tx pgx.Tx, ls []Line) (seeded, differs bool, err error) {
	hash := linesHash(ls)
	var old string
	err = tx.QueryRow(ctx, `SELECT seed_hash FROM roster_lines_seed`).Scan(&old)
	if err == nil {
		return false, old != hash && old != legacyLinesHash(ls), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, false, fmt.Errorf("lines: %w", err)
	}
	for _, l := range ls {
		if _, err := tx.Exec(ctx, `INSERT INTO roster_lines (number, target, name, language, trunk, hours, settings)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (number) DO NOTHING`,
			l.Number, l.Target, l.Name, l.Language, l.Trunk, jsonArg(l.Hours), jsonArg(l.Settings)); err != nil {
			return false, false, fmt.Errorf("line %s: %w", l.Number, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO roster_lines_seed (seed_hash) VALUES ($1)`, hash); err != nil {
		return false, false, fmt.Errorf("lines: %w", err)
	}
	return true, false, nil
}

// loadLines reads every line, by number.
func loadLines(ctx context.Context, q querier) ([]Line, error) {
	rows, err := q.Query(ctx, `SELECT number, target, name, language, trunk, hours, settings FROM roster_lines ORDER BY number`)
	if err != nil {
		return nil, fmt.Errorf("roster: load lines: %w", err)
	}
	ls, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Line])
	if err != nil {
		return nil, fmt.Errorf("roster: load lines: %w", err)
	}
	return ls, nil
}

func lineOf(ctx context.Context, q querier, number string) (Line, error) {
	var l Line
	err := q.QueryRow(ctx, `SELECT number, target, name, language, trunk, hours, settings FROM roster_lines WHERE number = $1`, number).
		Scan(&l.Number, &l.Target, &l.Name, &l.Language, &l.Trunk, &l.Hours, &l.Settings)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, ErrNotFound
	}
	if err != nil {
		return l, fmt.Errorf("roster: line %s: %w", number, err)
	}
	return l, nil
}

var language = regexp.MustCompile(`^([A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)?$`)

var (
	lineFields = []string{"target", "name", "language", "trunk", "hours", "settings"}
	lineRead   = []string{"number", "url"}
)

// parseLine applies a body's fields to l.
func parseLine(in map[string]json.RawMessage, l *Line) error {
	if ok, err := field(in, "target", &l.Target); err != nil {
		return err
	} else if ok && strings.TrimSpace(l.Target) == "" {
		return invalid("target", "is required: queue:NAME, menu:NAME, voicemail, hangup or a SIP URI")
	}
	if ok, err := field(in, "name", &l.Name); err != nil {
		return err
	} else if ok {
		l.Name = strings.TrimSpace(l.Name)
		if len([]rune(l.Name)) > 200 || strings.ContainsFunc(l.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return invalid("name", "must be at most 200 characters without control characters")
		}
	}
	if ok, err := field(in, "language", &l.Language); err != nil {
		return err
	} else if ok && !language.MatchString(l.Language) {
		return invalid("language", "%q is not a language tag such as en or fr-CA", clip(l.Language))
	}
	if raw, ok := in["trunk"]; ok {
		l.Trunk = nil
		if jsonArg(raw) != nil {
			var t string
			if err := json.Unmarshal(raw, &t); err != nil {
				return invalid("trunk", "has the wrong type: want a trunk's name (a string) or null")
			}
			l.Trunk = &t
		}
	}
	for _, f := range []struct {
		name string
		dst  *json.RawMessage
	}{{"hours", &l.Hours}, {"settings", &l.Settings}} {
		if raw, ok := in[f.name]; ok {
			*f.dst = nil
			if jsonArg(raw) != nil {
				if t := strings.TrimSpace(string(raw)); !strings.HasPrefix(t, "{") {
					return invalid(f.name, "has the wrong type: want a JSON object or null")
				}
				*f.dst = append(json.RawMessage(nil), raw...)
			}
		}
	}
	return nil
}

// checkLineParts checks a line's trunk, hours and settings with the configuration's rules
// (Options.CheckLine) and stores them as it writes them back; then that a queue the hours'
// closed_target names is a queue of the roster, and that a settings.default_assignee is a
// user.
func (a *API) checkLineParts(ctx context.Context, tx pgx.Tx, l *Line) error {
	if l.Trunk == nil && l.Hours == nil && l.Settings == nil {
		return nil
	}
	if a.m.opts.CheckLine == nil {
		return invalid("hours", "a line's own trunk, hours and settings are not taken by this gateway")
	}
	hours, settings, p := a.m.opts.CheckLine(l.Trunk, l.Hours, l.Settings)
	if p != nil {
		return invalid(p.Field, "%s", p.Message)
	}
	l.Hours, l.Settings = hours, settings
	if l.Hours != nil {
		var h struct {
			ClosedTarget string `json:"closed_target"`
		}
		if err := json.Unmarshal(l.Hours, &h); err == nil && strings.HasPrefix(h.ClosedTarget, "queue:") {
			var ok bool
			name := strings.TrimPrefix(h.ClosedTarget, "queue:")
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM roster_queues WHERE name = $1)`, name).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return invalid("hours.closed_target", "no queue named %s", clip(name))
			}
		}
	}
	if l.Settings != nil {
		var s struct {
			DefaultAssignee *string `json:"default_assignee"`
		}
		if err := json.Unmarshal(l.Settings, &s); err == nil && s.DefaultAssignee != nil && *s.DefaultAssignee != "" {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1)
				AND role IN ('agent', 'admin') AND deleted_at IS NULL)`, *s.DefaultAssignee).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return invalid("settings.default_assignee", "%q is not an agent or admin; name one, or leave default_assignee empty", clip(*s.DefaultAssignee))
			}
		}
	}
	return nil
}

// checkLineTarget refuses a target that does not parse, names a menu the configuration does
// not have (ParseTarget) or a queue the roster does not have.
func (a *API) checkLineTarget(ctx context.Context, tx pgx.Tx, l Line) error {
	if l.Target == "" {
		return invalid("target", "is required: queue:NAME, menu:NAME, voicemail, hangup or a SIP URI")
	}
	if len(l.Target) > 512 {
		return invalid("target", "is longer than 512 characters")
	}
	t, err := a.m.opts.ParseTarget(l.Target)
	if err != nil {
		return invalid("target", "%v", err)
	}
	if t.Kind != ivr.TargetQueue {
		return nil
	}
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM roster_queues WHERE name = $1)`, t.Name).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return invalid("target", "no queue named %s", clip(t.Name))
	}
	return nil
}

func writeLine(w http.ResponseWriter, status int, l Line) {
	writeJSON(w, status, map[string]any{"line": l})
}

// pathNumber reads {number} of the path as E.164 (the "+" may come percent-encoded or not).
func pathNumber(r *http.Request) (string, error) {
	raw := r.PathValue("number")
	n, ok := phone.Normalize(raw, "")
	if !ok {
		return "", notFound("no line %s: not an E.164 number", clip(raw))
	}
	return n, nil
}

func (a *API) listLines(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	ls, err := loadLines(r.Context(), a.m.opts.Pool)
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []Line{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"lines": ls})
	return nil
}

func (a *API) getLine(w http.ResponseWriter, r *http.Request, _ ticketing.Principal) error {
	n, err := pathNumber(r)
	if err != nil {
		return err
	}
	l, err := lineOf(r.Context(), a.m.opts.Pool, n)
	if errors.Is(err, ErrNotFound) {
		return notFound("no line %s", n)
	}
	if err != nil {
		return err
	}
	writeLine(w, http.StatusOK, l)
	return nil
}

func (a *API) createLine(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	in, err := body(r, "line", append([]string{"number"}, lineFields...), []string{"url"})
	if err != nil {
		return err
	}
	var l Line
	var raw string
	if ok, err := field(in, "number", &raw); err != nil {
		return err
	} else if !ok {
		return invalid("number", "is required: an E.164 number such as +15550100")
	}
	n, ok := phone.Normalize(raw, "")
	if !ok || !strings.HasPrefix(strings.TrimSpace(raw), "+") {
		return invalid("number", "%q is not an E.164 phone number such as +15550100", clip(raw))
	}
	l.Number = n
	if err := parseLine(in, &l); err != nil {
		return err
	}
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		if err := a.checkLineTarget(r.Context(), tx, l); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if err := a.checkLineParts(r.Context(), tx, &l); err != nil {
			return ticketing.RosterAudit{}, err
		}
		_, err := tx.Exec(r.Context(), `INSERT INTO roster_lines (number, target, name, language, trunk, hours, settings)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			l.Number, l.Target, l.Name, l.Language, l.Trunk, jsonArg(l.Hours), jsonArg(l.Settings))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return ticketing.RosterAudit{}, conflict("number", "a line %s exists", l.Number)
		}
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditQueueChanged, Description: "Line " + l.Number + " created → " + l.Target,
			Details: map[string]any{"line": l.Number, "target": l.Target, "created": true}}, nil
	})
	if err != nil {
		return err
	}
	writeLine(w, http.StatusCreated, l)
	return nil
}

func (a *API) putLine(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	n, err := pathNumber(r)
	if err != nil {
		return err
	}
	in, err := body(r, "line", lineFields, lineRead)
	if err != nil {
		return err
	}
	var l Line
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		var err error
		l, err = lineOf(r.Context(), tx, n)
		if errors.Is(err, ErrNotFound) {
			return ticketing.RosterAudit{}, notFound("no line %s", n)
		}
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		old := l
		if err := parseLine(in, &l); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if err := a.checkLineTarget(r.Context(), tx, l); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if err := a.checkLineParts(r.Context(), tx, &l); err != nil {
			return ticketing.RosterAudit{}, err
		}
		if _, err := tx.Exec(r.Context(), `UPDATE roster_lines SET target = $2, name = $3, language = $4,
				trunk = $5, hours = $6, settings = $7, updated_at = now()
			WHERE number = $1`, l.Number, l.Target, l.Name, l.Language, l.Trunk, jsonArg(l.Hours), jsonArg(l.Settings)); err != nil {
			return ticketing.RosterAudit{}, err
		}
		var d []string
		for _, f := range [][3]string{{"target", old.Target, l.Target}, {"name", old.Name, l.Name}, {"language", old.Language, l.Language},
			{"trunk", deref(old.Trunk), deref(l.Trunk)}, {"hours", compact(old.Hours), compact(l.Hours)},
			{"settings", compact(old.Settings), compact(l.Settings)}} {
			if f[1] != f[2] {
				d = append(d, fmt.Sprintf("%s %q → %q", f[0], f[1], f[2]))
			}
		}
		if len(d) == 0 {
			d = []string{"nothing"}
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditQueueChanged, Description: "Line " + l.Number + " changed: " + strings.Join(d, ", "),
			Details: map[string]any{"line": l.Number, "target": l.Target}}, nil
	})
	if err != nil {
		return err
	}
	writeLine(w, http.StatusOK, l)
	return nil
}

func (a *API) deleteLine(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	n, err := pathNumber(r)
	if err != nil {
		return err
	}
	err = a.change(r.Context(), p, func(tx pgx.Tx) (ticketing.RosterAudit, error) {
		var target string
		err := tx.QueryRow(r.Context(), `DELETE FROM roster_lines WHERE number = $1 RETURNING target`, n).Scan(&target)
		if errors.Is(err, pgx.ErrNoRows) {
			return ticketing.RosterAudit{}, notFound("no line %s", n)
		}
		if err != nil {
			return ticketing.RosterAudit{}, err
		}
		return ticketing.RosterAudit{Kind: ticketing.AuditQueueChanged, Description: "Line " + n + " deleted (was → " + target + ")",
			Details: map[string]any{"line": n, "target": target, "deleted": true}}, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "(the file's)"
	}
	return *s
}

// compact is a JSON value on one line for the audit's description ("(the file's)" for none).
func compact(b json.RawMessage) string {
	if jsonArg(b) == nil {
		return "(the file's)"
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}
