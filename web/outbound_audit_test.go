package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// TU-9 (calling a voicemail back): POST /calls with the ticket of a voicemail writes an audit
// entry on that ticket naming the agent, the number and the call, once the call is placed; a
// dial on any other ticket, and a dial the Dialer refused, write none.
func TestRule_TU9_CallingAVoicemailBackIsAudited(t *testing.T) {
	f := outboundtest.New(t)
	f.Settings(t, true, true, true, true) // the agent picks the ticket (OB-2)
	ctx := context.Background()
	aid := f.Agent.ID
	vm, err := f.Store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "Voicemail from " + f.ContactNumber,
		RequesterID: f.Contact.ID, AssigneeID: &aid, Via: ticketing.Via{Channel: ticketing.ChannelVoicemail, Source: "inbound"}})
	if err != nil {
		t.Fatal(err)
	}
	dialer := &recordingDialer{}
	h := (&Outbound{Store: f.Store, Dialer: dialer}).Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	post := func(body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls", strings.NewReader(body)))
		return rec.Code
	}
	contact := itoa(f.Contact.ID)
	if code := post(`{"call":{"to":"` + f.ContactNumber + `","contact_id":` + contact + `,"ticket_id":` + itoa(f.Open.ID) + `}}`); code != 201 {
		t.Fatalf("dial on an open ticket: %d", code)
	}
	if code := post(`{"call":{"to":"` + f.ContactNumber + `","contact_id":` + contact + `,"ticket_id":` + itoa(vm.ID) + `}}`); code != 201 {
		t.Fatalf("dial on the voicemail ticket: %d", code)
	}
	// The Dialer refuses this one (ErrBusy): nothing was called back.
	if code := post(`{"call":{"to":"` + f.EnteredNumber + `","entered_number":true,"contact_id":` + contact + `,"ticket_id":` + itoa(vm.ID) + `}}`); code != 409 {
		t.Fatalf("dial the Dialer refuses: %d", code)
	}
	logs, _, err := f.Store.AuditLogs(ctx, ticketing.AuditLogFilter{Action: ticketing.AuditVoicemailCalledBack})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 1 || logs[0].SourceID == nil || *logs[0].SourceID != vm.ID || logs[0].ActorID == nil || *logs[0].ActorID != f.Agent.ID ||
		!strings.Contains(logs[0].ChangeDescription, "call-out-1") || !strings.Contains(logs[0].ChangeDescription, f.ContactNumber) {
		t.Fatalf("callback entries %+v, want one on ticket %d by the agent for call-out-1", logs, vm.ID)
	}
}
