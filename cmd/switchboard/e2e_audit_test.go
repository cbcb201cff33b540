package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The audit trail through the real binary (issue 16): a caller leaves a message on the
// voicemail line; the admin plays it (TU-9 reading: GET /recordings/{id}), solves its ticket
// (TU-9 closing: PUT /tickets/{id}) and deletes its recordings (CD-6: DELETE
// /tickets/{id}/recordings). GET /audit_logs lists the three on the ticket, in order, by the
// admin, from the admin's address; an agent's view of the trail holds none of them.
func TestEndToEnd_AuditTrail_VoicemailReadCloseAndRecordingDeletion(t *testing.T) {
	requireSipp(t)
	g := runGateway(t)
	caller := startSipp(t, "carrier_rtp.xml", map[string]string{`<pause milliseconds="3000"/>`: `<pause milliseconds="8000"/>`},
		"-s", "+15550198", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	caller.wait(t, "voicemail caller")
	comment, _ := g.recordingOf("+15550198") // reads the message as the admin, from its start
	rec := comment["recording"].(map[string]any)
	call := g.awaitCall("+15550198", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	ticketID := int64(call["ticket_id"].(float64))
	tk, _ := g.ticketOf(call)
	if via := tk["via"].(map[string]any); via["channel"] != "voicemail" {
		t.Fatalf("ticket %d via %v, want voicemail", ticketID, via)
	}
	_, me := g.api("GET", "/users/search?query=admin@example.com", "")
	adminID := me["users"].([]any)[0].(map[string]any)["id"].(float64)
	if code, m := g.api("PUT", fmt.Sprintf("/tickets/%d", ticketID), fmt.Sprintf(`{"ticket":{"status":"solved","assignee_id":%d}}`, int64(adminID))); code != 200 {
		t.Fatalf("solve the voicemail ticket: %d %v", code, m)
	}
	req, _ := http.NewRequest("DELETE", fmt.Sprintf("%s/api/v2/tickets/%d/recordings", g.base, ticketID), nil)
	req.SetBasicAuth("admin@example.com", "adminpass")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE recordings = %d", resp.StatusCode)
	}

	code, m := g.api("GET", fmt.Sprintf("/audit_logs?sort=created_at&filter[source_type]=ticket&filter[source_id]=%d", ticketID), "")
	if code != 200 {
		t.Fatalf("GET /audit_logs = %d %v", code, m)
	}
	var actions []string
	for _, l := range m["audit_logs"].([]any) {
		e := l.(map[string]any)
		if e["action"] == "requester_changed" {
			continue // caller resolution may set the requester of the new ticket
		}
		actions = append(actions, e["action"].(string))
		if e["actor_id"] != adminID || e["ip_address"] != "127.0.0.1" || e["actor_name"] != "Admin" {
			t.Errorf("entry %v: want the admin's, from 127.0.0.1", e)
		}
		if e["action"] == "recording_deleted" && !strings.Contains(e["change_description"].(string), rec["id"].(string)) {
			t.Errorf("deletion %v does not name recording %v", e, rec["id"])
		}
	}
	if want := []string{"voicemail_read", "voicemail_closed", "recording_deleted"}; !slices.Equal(actions, want) {
		t.Fatalf("audit trail of ticket %d: %v, want %v (%v)", ticketID, actions, want, m)
	}
	// An agent sees only what they did: nothing here.
	req, _ = http.NewRequest("GET", g.base+"/api/v2/audit_logs", nil)
	req.SetBasicAuth("agent1@example.com", "agentpass")
	deadline := time.Now().Add(10 * time.Second)
	resp, err = (&http.Client{Timeout: time.Until(deadline)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"audit_logs":[]`) {
		t.Errorf("agent's audit trail: %d %s, want an empty list", resp.StatusCode, b)
	}
}
