package ticketing

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AuditCallSupervised is the audit kind of a supervisor's action on a live call (issue 21):
// monitoring, whispering, barging in, changing between them, and leaving.
const AuditCallSupervised = "call_supervised"

// SupervisionAudit is one supervisor action on a live call, as the trail records it.
type SupervisionAudit struct {
	CallID string
	// AgentID is the agent the call is connected to: the entry's source (source_type user).
	AgentID int64
	// Action is what the supervisor did: "monitor", "whisper", "barge" (started or switched
	// to) or "stop".
	Action string
}

// AuditSupervision records a supervisor's action on a live call: source the agent supervised
// (source_type user), the call's ticket beside it when the call record has one, details
// call_id, action and agent_id. The caller refuses the action when this fails: monitoring is
// never unaudited.
func (s *Store) AuditSupervision(ctx context.Context, actor Actor, a SupervisionAudit) error {
	switch a.Action {
	case "monitor", "whisper", "barge", "stop":
	default:
		return fmt.Errorf("ticketing: audit supervision: unknown action %q", a.Action)
	}
	return s.inTx(ctx, actor, AuditCallSupervised, func(tx pgx.Tx) error {
		var ticketID *int64
		err := tx.QueryRow(ctx, `SELECT ticket_id FROM calls WHERE id = $1`, a.CallID).Scan(&ticketID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return dbError("supervised call", err)
		}
		agentID := a.AgentID
		what := map[string]string{"monitor": "Monitoring", "whisper": "Whispering to the agent on",
			"barge": "Barged into", "stop": "Stopped supervising"}[a.Action]
		return writeAudit(ctx, tx, actor, auditEntry{kind: AuditCallSupervised, userID: &agentID, ticketID: ticketID,
			sourceType:  AuditSourceUser,
			details:     map[string]any{"call_id": a.CallID, "action": a.Action, "agent_id": a.AgentID},
			description: what + " call " + cleanAudit(a.CallID) + " of agent #" + fmt.Sprint(a.AgentID)})
	})
}
