package ticketing

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel kinds of error. Every error the Store returns for a caller's mistake wraps one of
// them (through *Error), so that callers branch with errors.Is and the API maps each to its
// status: ErrInvalid 422, ErrNotFound 404, ErrConflict 409, ErrUnauthorized 401, ErrForbidden 403.
var (
	ErrInvalid      = errors.New("record invalid")
	ErrNotFound     = errors.New("record not found")
	ErrConflict     = errors.New("conflict")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	// ErrTooManyRequests is a login refused without checking the password: the client or
	// the account is waiting out a backoff, or every password check slot is busy. The API
	// answers 429 with Retry-After (Error.RetryAfter).
	ErrTooManyRequests = errors.New("too many requests")
)

// Error is a caller's mistake or a state conflict, with the fields it concerns. Details maps a
// field name (as in the API body, "value", "assignee_id", "outbound.allow_new_ticket") to
// messages about it.
type Error struct {
	Kind        error
	Description string
	Details     map[string][]string
	// Codes maps a field of Details to its Zendesk error code when it is not the default of
	// the kind: CodeDuplicateValue for a value another record already holds.
	Codes map[string]string
	// RetryAfter is how long to wait before trying again (ErrTooManyRequests).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Kind.Error() + ": " + e.Description
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(e.Details[k], "; "))
	}
	return e.Kind.Error() + ": " + e.Description + " (" + strings.Join(parts, ", ") + ")"
}

// TryAgainAfter is how long to wait before the request can succeed (a login during its
// backoff: ErrTooManyRequests), 0 otherwise. Packages that cannot import ticketing (ivr,
// recordings) find it through errors.As with an interface and answer 429 with Retry-After.
func (e *Error) TryAgainAfter() time.Duration {
	if errors.Is(e.Kind, ErrTooManyRequests) {
		return max(e.RetryAfter, time.Second)
	}
	return 0
}

// Unwrap returns the kind, so that errors.Is(err, ErrInvalid) works.
func (e *Error) Unwrap() error { return e.Kind }

// CodeDuplicateValue is Zendesk's error code of a field whose value another record already
// holds (a user's email or external_id, a number the user already has): a 422 RecordInvalid
// whose details name the field with "error": "DuplicateValue".
const CodeDuplicateValue = "DuplicateValue"

// duplicateField is a 422 about a field whose value is taken (Zendesk's DuplicateValue).
func duplicateField(field, format string, args ...any) *Error {
	e := invalidField(field, format, args...)
	e.Codes = map[string]string{field: CodeDuplicateValue}
	return e
}

// duplicate reports whether e is about a value already taken.
func (e *Error) duplicate() bool {
	for _, c := range e.Codes {
		if c == CodeDuplicateValue {
			return true
		}
	}
	return false
}

// invalidField is a 422 about one field.
func invalidField(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Kind: ErrInvalid, Description: field + ": " + msg, Details: map[string][]string{field: {msg}}}
}

func notFound(format string, args ...any) *Error {
	return &Error{Kind: ErrNotFound, Description: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *Error {
	return &Error{Kind: ErrConflict, Description: fmt.Sprintf(format, args...)}
}

func conflictField(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Kind: ErrConflict, Description: field + ": " + msg, Details: map[string][]string{field: {msg}}}
}

// SQLSTATEs raised by the triggers of migration 002.
const (
	stateClosedTicket = "SB409"
	stateBackToNew    = "SB422"
)

// dbError turns the database's refusals into *Error (constraint names are those of migration
// 002) and wraps anything else with op. Races resolve here: the loser of two requests that
// both passed the checks in Go hits the constraint and gets a 409 or 422, never a 500.
func dbError(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *Error
	if errors.As(err, &te) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("%s: not found", op)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("ticketing: %s: %w", op, err)
	}
	switch pe.Code {
	case stateClosedTicket:
		return conflictField("status", "%s", pe.Message)
	case stateBackToNew:
		return invalidField("status", "%s", pe.Message)
	case "40001", "40P01": // serialization failure, deadlock: a concurrent change won
		return conflict("%s: a concurrent change conflicted; retry", op)
	case "23505": // unique_violation
		switch pe.ConstraintName {
		case "user_identities_one_direct_owner":
			return conflictField("value", "the number became another user's direct line concurrently; retry to add it as a shared number (PM-6)")
		case "user_identities_one_shared_per_user":
			return invalidField("value", "the user already holds a shared number; a user holds at most one (PM-8)")
		case "user_identities_user_value":
			return duplicateField("value", "the user already has this number")
		case "user_identities_one_primary":
			return conflict("%s: the primary identity changed concurrently; retry", op)
		case "users_email_key":
			return duplicateField("email", "is already being used by another user")
		case "users_external_id_key":
			return duplicateField("external_id", "is already being used by another user")
		case "groups_name_key":
			return duplicateField("name", "is already the name of another group")
		case "group_memberships_user_group":
			return duplicateField("user_id", "is already a member of this group")
		case "groups_one_default", "group_memberships_one_default":
			return conflict("%s: the default group changed concurrently; retry", op)
		}
		return conflict("%s: %s", op, pe.Message)
	case "23514": // check_violation
		switch pe.ConstraintName {
		case "tickets_solved_needs_assignee":
			return invalidField("assignee_id", "a solved ticket needs an assignee")
		}
		return invalidField(strings.TrimSuffix(strings.TrimPrefix(pe.ConstraintName, pe.TableName+"_"), "_check"), "%s", pe.Message)
	case "23503": // foreign_key_violation
		return invalidField(strings.TrimSuffix(strings.TrimPrefix(pe.ConstraintName, pe.TableName+"_"), "_fkey"), "refers to a record that does not exist")
	case "22001", "22003", "22P02", "22021": // too long, out of range, bad text representation, bad encoding
		return &Error{Kind: ErrInvalid, Description: op + ": " + pe.Message}
	}
	return fmt.Errorf("ticketing: %s: %w", op, err)
}
