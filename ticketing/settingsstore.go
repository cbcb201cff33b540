package ticketing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Settings returns the global voice settings: the stored ones, or StoreOptions.Defaults until
// some are stored. Fields a stored row lacks (added in a later version) keep their defaults.
func (s *Store) Settings(ctx context.Context) (Settings, error) {
	return settings(ctx, s.pool, *s.opts.Defaults)
}

func settings(ctx context.Context, q querier, defaults Settings) (Settings, error) {
	var raw []byte
	err := q.QueryRow(ctx, `SELECT settings FROM voice_settings`).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return defaults, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("ticketing: settings: %w", err)
	}
	out := defaults
	if err := json.Unmarshal(raw, &out); err != nil {
		return Settings{}, fmt.Errorf("ticketing: settings: stored row: %w", err)
	}
	out.normalize()
	return out, nil
}

// normalize makes the lists that a JSON null left nil empty, so that the settings always read
// back as lists.
func (s *Settings) normalize() {
	if s.WriteBatching.Kinds == nil {
		s.WriteBatching.Kinds = []string{}
	}
	if s.CustomDataFields == nil {
		s.CustomDataFields = []DataField{}
	}
}

// PutSettings validates and stores the global voice settings. Every problem comes back at once
// in one *Error (ErrInvalid) whose Details name the fields; default_assignee must be the email
// of an agent or admin. The keys that changed are audited (old → new) in the same
// transaction.
func (s *Store) PutSettings(ctx context.Context, actor Actor, v Settings) (Settings, error) {
	v.normalize()
	details := map[string][]string{}
	for _, fe := range v.Validate() {
		details[fe.Field] = append(details[fe.Field], fe.Message)
	}
	if v.DefaultAssignee != "" && len(details["default_assignee"]) == 0 {
		var role string
		err := s.pool.QueryRow(ctx, `SELECT role FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`, v.DefaultAssignee).Scan(&role)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			details["default_assignee"] = append(details["default_assignee"], fmt.Sprintf("no user has the email %q", v.DefaultAssignee))
		case err != nil:
			return Settings{}, fmt.Errorf("ticketing: put settings: %w", err)
		case role == RoleEndUser:
			details["default_assignee"] = append(details["default_assignee"], fmt.Sprintf("%q is an end user; it must be an agent or admin", v.DefaultAssignee))
		}
	}
	if len(details) > 0 {
		return Settings{}, &Error{Kind: ErrInvalid, Description: "invalid voice settings", Details: details}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return Settings{}, fmt.Errorf("ticketing: put settings: %w", err)
	}
	err = s.inTx(ctx, actor, AuditSettingsChanged, func(tx pgx.Tx) error {
		// The row is locked first, so that two admins' changes are audited in the order they
		// are stored, each against the settings it replaced.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM voice_settings FOR UPDATE`); err != nil {
			return dbError("put settings", err)
		}
		old, err := settings(ctx, tx, *s.opts.Defaults)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO voice_settings (singleton, settings) VALUES (true, $1)
			ON CONFLICT (singleton) DO UPDATE SET settings = EXCLUDED.settings, updated_at = clock_timestamp()`, raw); err != nil {
			return dbError("put settings", err)
		}
		keys, lines, err := settingsChanges(old, v)
		if err != nil {
			return fmt.Errorf("ticketing: put settings: %w", err)
		}
		if len(keys) == 0 {
			return nil // nothing changed: nothing to audit
		}
		return writeAudit(ctx, tx, actor, auditEntry{kind: AuditSettingsChanged, sourceType: AuditSourceSetting,
			details:     map[string]any{"keys": keys},
			description: "Voice settings changed: " + strings.Join(lines, "; ")})
	})
	if err != nil {
		return Settings{}, err
	}
	return v, nil
}
