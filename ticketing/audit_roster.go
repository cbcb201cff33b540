package ticketing

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Kinds of audit entry written by the roster's admin API (agents, queues and memberships
// changed live): the source is the agent's user, or the account's settings for a queue.
const (
	AuditAgentChanged = "agent_changed" // an agent created, changed, given a SIP secret or taken off
	AuditQueueChanged = "queue_changed" // a queue created, changed or deleted, or a membership changed
)

// RosterAudit is one change of the roster, recorded in the audit trail.
type RosterAudit struct {
	Kind string // AuditAgentChanged or AuditQueueChanged
	// UserID is the agent the change is about (0: a queue's change, recorded as a setting).
	UserID int64
	// Description is what a person reads (cleaned here: control characters removed, 200 runes).
	Description string
	Details     map[string]any
}

// WriteRosterAudit records a roster change in the audit trail inside the caller's
// transaction, so the change and its entry commit together. ctx carries the client's address
// (WithClientAddr) as for the API's own changes.
func WriteRosterAudit(ctx context.Context, tx pgx.Tx, actor Actor, a RosterAudit) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('switchboard.ip', $1, true)`, clientAddrOf(ctx)); err != nil {
		return fmt.Errorf("ticketing: roster audit: %w", err)
	}
	e := auditEntry{kind: a.Kind, details: a.Details, description: cleanAudit(a.Description), sourceType: AuditSourceSetting}
	if a.UserID != 0 {
		id := a.UserID
		e.userID, e.sourceType = &id, AuditSourceUser
	}
	return writeAudit(ctx, tx, actor, e)
}
