package ticketing_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Rule (issue 21, supervisors): every supervisor action on a live call is an audit entry on
// the agent supervised (source_type user), the supervisor as actor, naming the call, listed by
// GET /audit_logs and its action filter; a control character in the call id never reaches the
// description; an unknown action is refused.
func TestAuditSupervision_EntriesOnTheAgent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := ticketing.Actor(e.admin.ID)
	for _, a := range []string{"monitor", "whisper", "barge", "stop"} {
		if err := e.store.AuditSupervision(ctx, admin, ticketing.SupervisionAudit{CallID: "call-1\x1b[2J", AgentID: e.agent.ID, Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.AuditSupervision(ctx, admin, ticketing.SupervisionAudit{CallID: "call-1", AgentID: e.agent.ID, Action: "spy"}); err == nil {
		t.Error("an unknown action was written")
	}
	logs := e.auditLogs(e.asAdmin(), "sort=created_at&filter[action]=call_supervised&filter[source_type]=user&filter[source_id]="+fmt.Sprint(e.agent.ID))
	var got []string
	for _, l := range logs {
		d := l["change_description"].(string)
		got = append(got, strings.Fields(d)[0])
		if num(l["actor_id"]) != e.admin.ID || l["source_type"] != "user" || num(l["source_id"]) != e.agent.ID || l["action"] != "call_supervised" {
			t.Errorf("entry %v: want the admin's, on agent %d", l, e.agent.ID)
		}
		if strings.ContainsRune(d, '\x1b') || !strings.Contains(d, "call-1") {
			t.Errorf("description %q: want the call id, cleaned", d)
		}
	}
	if want := []string{"Monitoring", "Whispering", "Barged", "Stopped"}; !slices.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
}
