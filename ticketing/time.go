package ticketing

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Time is a timestamp that the API writes as RFC 3339 in UTC with whole seconds
// ("2026-11-22T19:12:36Z"), as docs/api.md says. It scans from timestamptz.
type Time struct{ time.Time }

// MarshalJSON writes RFC 3339 UTC.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(time.RFC3339) + `"`), nil
}

// UnmarshalJSON reads RFC 3339.
func (t *Time) UnmarshalJSON(b []byte) error {
	var v time.Time
	if err := v.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("want an RFC 3339 time: %w", err)
	}
	t.Time = v.UTC()
	return nil
}

// ScanTimestamptz lets pgx scan a timestamptz into t.
func (t *Time) ScanTimestamptz(v pgtype.Timestamptz) error {
	if !v.Valid {
		return fmt.Errorf("cannot scan NULL into ticketing.Time")
	}
	t.Time = v.Time.UTC()
	return nil
}

// TimestamptzValue lets pgx write t as a timestamptz.
func (t Time) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: t.Time, Valid: true}, nil
}
