package ticketing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// customDataAPI serves the ticketing API and POST /call_events over the harness's database.
func customDataAPI(t *testing.T, h *engineHarness) func(method, path, body string) (int, map[string]any) {
	log, err := eventlog.Open(context.Background(), eventlog.Options{Pool: h.pool, SpoolPath: filepath.Join(t.TempDir(), "spool")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{PublicURL: srv.URL})
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", log, nil)
	return func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/api/v2"+path, strings.NewReader(body))
		req.SetBasicAuth("admin@example.com", "password1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
}

func postEvents(t *testing.T, do func(method, path, body string) (int, map[string]any), evs []callevent.Event) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"events": evs})
	if code, m := do("POST", "/call_events", string(body)); code != 200 || m["accepted"].(float64) != float64(len(evs)) {
		t.Fatalf("POST /call_events = %d %v", code, m)
	}
}

// rule CF-4: a call's custom data — an integration's data object on call.started and the IVR
// menu path on call.ivr_selected — posted to POST /call_events fills the ticket fields that
// custom_data_fields maps, typed. A value that is missing or does not fit its field leaves
// the field as it was, and one private note names each such field, its data key and the value
// received. A later call on the same ticket (TU-1) updates the fields it carries and keeps
// the others.
func TestRule_CF4_CustomDataMappedToTicketFields(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) {
		s.CustomDataFields = []ticketing.DataField{
			{Key: "account", Field: "account_number", Type: ticketing.FieldDigits},
			{Key: "plan", Field: "plan_level", Type: ticketing.FieldInteger},
			{Key: "menu_path", Field: "menu_choice", Type: ticketing.FieldText},
			{Key: "crm.id", Field: "crm_id", Type: ticketing.FieldText},
		}
	})
	do := customDataAPI(t, h)
	first := h.newCall(h.now).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line = "inbound", "+15557100001", "+15550100", "+15550100"
		e.Data = callevent.NewData(map[string]string{"account": "0012345", "plan": "gold", "unmapped": "x"})
	}).add(callevent.EventIVRSelected, 2, func(e *callevent.Event) {
		e.MenuPath = "2"
		e.Data = callevent.NewData(map[string]string{"crm.id": "CRM-9"})
	}).queued(3, "support").answered(6, h.agent1.ID).ended(40, callevent.OutcomeAnswered)
	postEvents(t, do, first.evs)
	if _, err := h.engine.ApplyPending(h.ctx); err != nil {
		t.Fatal(err)
	}
	id := *h.call(first.id).TicketID
	code, m := do("GET", fmt.Sprintf("/tickets/%d", id), "")
	if code != 200 {
		t.Fatalf("GET ticket = %d %v", code, m)
	}
	fields, _ := m["ticket"].(map[string]any)["fields"].(map[string]any)
	want := map[string]any{"account_number": "0012345", "menu_choice": "2", "crm_id": "CRM-9"}
	if fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Errorf("fields %v, want %v (plan_level refused: gold is no integer)", fields, want)
	}
	if n := noteCount(h, id, `plan_level: the value "gold" of "plan" is not a whole number (integer field)`); n != 1 {
		t.Errorf("%d notes naming plan_level and its value, want 1: %s", n, js(h.comments(id)))
	}
	if noteCount(h, id, "Custom data:\n  account: 0012345\n  crm.id: CRM-9\n  plan: gold\n  unmapped: x") != 1 {
		t.Errorf("the standard data note does not list the call's custom data: %s", js(h.comments(id)))
	}
	if c := h.call(first.id); c.Data["account"] != "0012345" || c.Data["crm.id"] != "CRM-9" {
		t.Errorf("call record data %v", c.Data)
	}

	// A second call from the caller joins the ticket (TU-1): its account and plan are written,
	// its menu path and CRM id are missing, so those fields keep the first call's values.
	second := h.newCall(h.now.Add(time.Hour)).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line = "inbound", "+15557100001", "+15550100", "+15550100"
		e.Data = callevent.NewData(map[string]string{"account": "999", "plan": "3"})
	}).queued(3, "support").answered(6, h.agent1.ID).ended(40, callevent.OutcomeAnswered)
	postEvents(t, do, second.evs)
	if _, err := h.engine.ApplyPending(h.ctx); err != nil {
		t.Fatal(err)
	}
	if got := *h.call(second.id).TicketID; got != id {
		t.Fatalf("second call on ticket %d, want %d (TU-1)", got, id)
	}
	tk := h.ticket(&id)
	// An integer field is a JSON number.
	want = map[string]any{"account_number": "999", "plan_level": float64(3), "menu_choice": "2", "crm_id": "CRM-9"}
	if fmt.Sprint(tk.Fields) != fmt.Sprint(want) {
		t.Errorf("fields after the second call %v", tk.Fields)
	}
	if noteCount(h, id, `menu_choice: no value; the call's data has no "menu_path"`) != 1 ||
		noteCount(h, id, `crm_id: no value; the call's data has no "crm.id"`) != 1 {
		t.Errorf("no notes for the missing values: %s", js(h.comments(id)))
	}
	for _, cm := range h.comments(id) {
		if strings.Contains(cm.Body, "custom data") && cm.Public {
			t.Errorf("the custom data note is public: %s", cm.Body)
		}
	}
}

// rule CF-4: an outbound call's data fills its ticket's fields too, and a voicemail's ticket
// gets the note when the data is missing.
func TestRule_CF4_CustomDataOutboundAndVoicemail(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) {
		s.CustomDataFields = []ticketing.DataField{{Key: "account", Field: "account_number", Type: ticketing.FieldDigits}}
	})
	h.endUser("Olga", "+15557100002")
	out := h.outbound(h.now, "+15557100002", func(e *callevent.Event) { e.Data = callevent.NewData(map[string]string{"account": "777"}) }, true)
	vm := h.newCall(h.now.Add(time.Minute)).started("+15557100003", "+15550100").
		add(callevent.EventVoicemail, 5, func(e *callevent.Event) { e.RecordingID = "vm-cf4" }).ended(30, callevent.OutcomeVoicemail)
	h.run(append(out.evs, vm.evs...)...)
	if got := h.ticket(h.call(out.id).TicketID).Fields["account_number"]; got != "777" {
		t.Errorf("outbound account_number %v, want 777", got)
	}
	vid := *h.call(vm.id).TicketID
	if len(h.ticket(&vid).Fields) != 0 || noteCount(h, vid, `account_number: no value; the call's data has no "account"`) != 1 {
		t.Errorf("voicemail fields %v, comments %s", h.ticket(&vid).Fields, js(h.comments(vid)))
	}
}

// rule CF-4: POST /call_events refuses bad data by its key (422 naming data.KEY), and the
// mapping is validated with each entry named.
func TestRule_CF4_CustomDataRefusedByField(t *testing.T) {
	h := newEngineHarness(t, nil)
	do := customDataAPI(t, h)
	s := h.newCall(h.now).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From = "inbound", "+15557100004"
		e.Data = callevent.NewData(map[string]string{"account": "12\n34"})
	})
	body, _ := json.Marshal(map[string]any{"events": s.evs})
	code, m := do("POST", "/call_events", string(body))
	errs, _ := m["errors"].([]any)
	if code != 422 || len(errs) != 1 || errs[0].(map[string]any)["field"] != "data.account" {
		t.Errorf("POST /call_events with a line break in data = %d %v, want 422 on data.account", code, m)
	}

	st := ticketing.DefaultSettings()
	st.CustomDataFields = []ticketing.DataField{
		{Key: "acc ount", Field: "a", Type: "text"},
		{Key: "x", Field: "caller_number", Type: "text"},
		{Key: "y", Field: "a", Type: "number"},
		{Key: "z", Field: "Bad-Name"},
	}
	got := fmt.Sprint(st.Validate())
	for _, want := range []string{
		`custom_data_fields[0].key: "acc ount" is not a data key`,
		`custom_data_fields[1].field: "caller_number" is a call field the engine sets itself`,
		`custom_data_fields[2].field: "a" is already filled by custom_data_fields[0]`,
		`custom_data_fields[2].type: "number" is not allowed; use one of text, digits, integer`,
		`custom_data_fields[3].field: "Bad-Name" is not a field name`,
		`custom_data_fields[3].type: is required`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %s\nlack %s", got, want)
		}
	}
}

func noteCount(h *engineHarness, ticketID int64, sub string) int {
	n := 0
	for _, c := range h.comments(ticketID) {
		if c.Type == ticketing.TypeComment && !c.Public && strings.Contains(c.Body, sub) {
			n++
		}
	}
	return n
}

// rule CF-4, data that comes after the ticket: a call.ivr_selected with data reaching a call
// that already has its ticket — an IVR collect step after a queue's overflow on a line that
// makes the ticket at queue entry, or an integration posting data through POST /call_events
// after the answer — maps into the ticket's fields with the same checks and the same kind of
// private note for an invalid value. The mapped keys the later event does not carry, or
// carries unchanged (the IVR sends all its variables again), are not noted again; a replay of
// the event adds no second note; calls whose ticket and later data are applied in one batch
// get their fields too.
func TestRule_CF4_CustomDataAfterTheTicketFillsItsFields(t *testing.T) {
	onQueue := ticketing.CreateOnQueueEntry
	h := newEngineHarness(t, map[string]ticketing.LineSettings{"+15550199": {TicketCreationPoint: &onQueue}})
	h.settings(func(s *ticketing.Settings) {
		s.CustomDataFields = []ticketing.DataField{
			{Key: "account", Field: "account_number", Type: ticketing.FieldDigits},
			{Key: "plan", Field: "plan_level", Type: ticketing.FieldInteger},
			{Key: "crm.id", Field: "crm_id", Type: ticketing.FieldText},
		}
	})
	do := customDataAPI(t, h)
	apply := func() {
		t.Helper()
		if _, err := h.engine.ApplyPending(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	const lateNote = "(data received after the ticket was made): custom data not written to ticket fields"

	// The ticket is made at queue entry with no data: every mapped field noted missing, once.
	ivr := h.newCall(h.now).started("+15557100011", "+15550199").queued(1, "support")
	postEvents(t, do, ivr.evs)
	apply()
	id := *h.call(ivr.id).TicketID
	if noteCount(h, id, `crm_id: no value; the call's data has no "crm.id"`) != 1 {
		t.Fatalf("no note for the missing data at queue entry: %s", js(h.comments(id)))
	}
	// The queue overflows to an IVR collect step: the caller's account and plan come now.
	ivr.add(callevent.EventIVRSelected, 60, func(e *callevent.Event) {
		e.Data = callevent.NewData(map[string]string{"account": "0042", "plan": "gold"})
	})
	late := ivr.evs[len(ivr.evs)-1]
	postEvents(t, do, []callevent.Event{late})
	apply()
	tk := h.ticket(&id)
	if want := map[string]any{"account_number": "0042"}; fmt.Sprint(tk.Fields) != fmt.Sprint(want) {
		t.Errorf("fields after the later data %v, want %v", tk.Fields, want)
	}
	if noteCount(h, id, lateNote) != 1 || noteCount(h, id, `plan_level: the value "gold" of "plan" is not a whole number (integer field)`) != 1 {
		t.Errorf("want one note for the invalid later plan: %s", js(h.comments(id)))
	}
	if noteCount(h, id, `crm_id: no value`) != 1 || noteCount(h, id, `account_number: no value`) != 1 {
		t.Errorf("a key the later data does not carry was noted again, or the valid one noted: %s", js(h.comments(id)))
	}
	// The same event again (an emitter's retry): nothing written twice.
	postEvents(t, do, []callevent.Event{late})
	apply()
	if noteCount(h, id, lateNote) != 1 {
		t.Errorf("a replayed event added a second note: %s", js(h.comments(id)))
	}
	// A later collect step: the IVR sends all its variables again with the new one. Only the
	// new one is mapped; the unchanged invalid plan is not noted twice.
	ivr.add(callevent.EventIVRSelected, 90, func(e *callevent.Event) {
		e.Data = callevent.NewData(map[string]string{"account": "0042", "plan": "gold", "crm.id": "CRM-1"})
	})
	postEvents(t, do, ivr.evs[len(ivr.evs)-1:])
	apply()
	if want := map[string]any{"account_number": "0042", "crm_id": "CRM-1"}; fmt.Sprint(h.ticket(&id).Fields) != fmt.Sprint(want) {
		t.Errorf("fields after the second collect %v, want %v", h.ticket(&id).Fields, want)
	}
	if noteCount(h, id, lateNote) != 1 {
		t.Errorf("the unchanged invalid plan was noted again: %s", js(h.comments(id)))
	}
	// An integration sends the plan empty: noted as such, the fields as they were.
	ivr.add(callevent.EventIVRSelected, 100, func(e *callevent.Event) {
		e.Data = callevent.NewData(map[string]string{"plan": " "})
	})
	postEvents(t, do, ivr.evs[len(ivr.evs)-1:])
	apply()
	if noteCount(h, id, lateNote) != 2 || noteCount(h, id, `plan_level: no value; "plan" came empty`) != 1 ||
		len(h.ticket(&id).Fields) != 2 {
		t.Errorf("an empty later value: fields %v, comments %s", h.ticket(&id).Fields, js(h.comments(id)))
	}

	// An integration posts the CRM id once the call was answered on a default line (ticket at
	// the answer): written, and no note, the other keys being absent from that event.
	api := h.newCall(h.now.Add(time.Minute)).started("+15557100012", "+15550100").queued(1, "support").answered(5, h.agent1.ID)
	postEvents(t, do, api.evs)
	apply()
	aid := *h.call(api.id).TicketID
	before := len(h.comments(aid))
	api.add(callevent.EventIVRSelected, 30, func(e *callevent.Event) {
		e.Data = callevent.NewData(map[string]string{"crm.id": "CRM-7"})
	})
	postEvents(t, do, api.evs[len(api.evs)-1:])
	apply()
	if got := h.ticket(&aid).Fields["crm_id"]; got != "CRM-7" {
		t.Errorf("crm_id %v after the integration's later data, want CRM-7", got)
	}
	if after := len(h.comments(aid)); after != before {
		t.Errorf("%d comments added by valid later data, want 0: %s", after-before, js(h.comments(aid)))
	}
	if c := h.call(api.id); c.Data["crm.id"] != "CRM-7" {
		t.Errorf("call record data %v", c.Data)
	}

	// In one batch (the set-based path): two calls' tickets made at queue entry and their
	// later data, applied together.
	var batch []callevent.Event
	var ids []string
	for i, acct := range []string{"7001", "7002"} {
		s := h.newCall(h.now.Add(2*time.Minute)).started(fmt.Sprintf("+155571000%d", 20+i), "+15550199").queued(1, "support").
			add(callevent.EventIVRSelected, 40, func(e *callevent.Event) {
				e.Data = callevent.NewData(map[string]string{"account": acct, "plan": "2"})
			})
		batch = append(batch, s.evs...)
		ids = append(ids, s.id)
	}
	h.run(batch...)
	for i, cid := range ids {
		tid := h.call(cid).TicketID
		want := map[string]any{"account_number": []string{"7001", "7002"}[i], "plan_level": float64(2)}
		if got := h.ticket(tid).Fields; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("call %d of the batch: fields %v, want %v", i, got, want)
		}
	}
}
