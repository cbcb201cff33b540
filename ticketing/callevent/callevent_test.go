package callevent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func validStarted() Event {
	return Event{ID: "0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1", CallID: "c1", Seq: 1, Type: EventStarted,
		At: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Direction: "inbound", From: "+15550001"}
}

// Validate names the JSON field of every problem, so POST /api/v2/call_events can answer 422
// pointing at it, and accepts what the gateway itself emits.
func TestValidateNamesTheField(t *testing.T) {
	if errs := Validate(validStarted()); len(errs) != 0 {
		t.Fatalf("a valid call.started: %v", errs)
	}
	for _, ch := range []string{"", ChannelWebRTC, ChannelSIP} {
		ans := validStarted()
		ans.Type, ans.AgentID, ans.Channel = EventAnswered, 7, ch
		if errs := Validate(ans); len(errs) != 0 {
			t.Errorf("call.answered with channel %q: %v", ch, errs)
		}
	}
	cases := []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"id not a UUID", func(e *Event) { e.ID = "x" }, "id"},
		{"seq from 1", func(e *Event) { e.Seq = 0 }, "seq"},
		{"unknown type", func(e *Event) { e.Type = "call.nope" }, "type"},
		{"direction", func(e *Event) { e.Direction = "sideways" }, "direction"},
		{"answered channel", func(e *Event) { e.Type, e.AgentID, e.Channel = EventAnswered, 7, "pigeon" }, "channel"},
		{"control character", func(e *Event) { e.CallerName = "Eve\x00" }, "caller_name"},
		{"abandoned where", func(e *Event) { e.Type, e.Where = EventAbandoned, "lobby" }, "where"},
		{"ended outcome", func(e *Event) { e.Type, e.Outcome = EventEnded, "maybe" }, "outcome"},
		{"hangup_by", func(e *Event) { e.Type, e.Outcome, e.HangupBy = EventEnded, OutcomeAnswered, "alien" }, "hangup_by"},
		{"sip_status", func(e *Event) { e.Type, e.Outcome, e.SIPStatus = EventEnded, OutcomeAnswered, 99 }, "sip_status"},
		{"sip_call_ids control character", func(e *Event) {
			e.Type, e.Outcome, e.SIPCallIDs = EventEnded, OutcomeAnswered, CallIDs("a@b c\x01d")
		}, "sip_call_ids"},
		{"sip_call_ids too many", func(e *Event) {
			e.Type, e.Outcome = EventEnded, OutcomeAnswered
			e.SIPCallIDs = NewCallIDs(strings.Split(strings.Repeat("x ", MaxSIPCallIDs+1), " ")...)
		}, "sip_call_ids"},
		{"sip_call_id too long", func(e *Event) { e.SIPCallID = strings.Repeat("x", MaxSIPCallIDLen+1) }, "sip_call_id"},
		{"sip_call_ids entry too long", func(e *Event) {
			e.Type, e.Outcome, e.SIPCallIDs = EventEnded, OutcomeAnswered, NewCallIDs("a@b", strings.Repeat("x", MaxSIPCallIDLen+1))
		}, "sip_call_ids"},
		{"negative duration", func(e *Event) {
			e.Type, e.Outcome, e.Durations = EventEnded, OutcomeAnswered, &Durations{TalkTime: -1}
		}, "talk_time"},
	}
	cases = append(cases, []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"data key", func(e *Event) { e.Data = NewData(map[string]string{"acc ount": "1"}) }, "data"},
		{"data value control character", func(e *Event) { e.Data = NewData(map[string]string{"account": "12\n34"}) }, "data.account"},
		{"data value too long", func(e *Event) { e.Data = NewData(map[string]string{"account": strings.Repeat("1", MaxDataValue+1)}) }, "data.account"},
		{"data on another event", func(e *Event) { e.Type, e.Data = EventHeld, NewData(map[string]string{"account": "1"}) }, "data"},
		{"too many data keys", func(e *Event) {
			m := map[string]string{}
			for i := range MaxDataKeys + 1 {
				m[fmt.Sprintf("k%d", i)] = "v"
			}
			e.Data = NewData(m)
		}, "data"},
	}...)
	for _, c := range cases {
		e := validStarted()
		c.edit(&e)
		errs := Validate(e)
		if len(errs) != 1 || errs[0].Field != c.field {
			t.Errorf("%s: errors %v, want one naming %s", c.name, errs, c.field)
		}
	}
}

// Decode refuses unknown fields and wrong types by name.
func TestDecodeRefusesUnknownAndMistypedFields(t *testing.T) {
	b, _ := json.Marshal(validStarted())
	if _, errs := Decode(b); len(errs) != 0 {
		t.Fatalf("round trip: %v", errs)
	}
	unknown := strings.Replace(string(b), `"from"`, `"frm"`, 1)
	if _, errs := Decode([]byte(unknown)); len(errs) != 1 || errs[0].Field != "frm" {
		t.Errorf("unknown field: %v", errs)
	}
	mistyped := strings.Replace(string(b), `"seq":1`, `"seq":"1"`, 1)
	if _, errs := Decode([]byte(mistyped)); len(errs) != 1 || errs[0].Field != "seq" {
		t.Errorf("mistyped field: %v", errs)
	}
	// The data object: strings only, named on data; a valid one round-trips.
	withData := strings.Replace(string(b), `"from"`, `"data":{"account":"12345","ivr.choice":"2"},"from"`, 1)
	if e, errs := Decode([]byte(withData)); len(errs) != 0 || e.Data.Map()["account"] != "12345" || e.Data.Map()["ivr.choice"] != "2" {
		t.Errorf("data: %v %v", e.Data, errs)
	}
	// Events stay comparable values, equal when their data is, whatever the key order.
	a, _ := Decode([]byte(strings.Replace(string(b), `"from"`, `"data":{"a":"1","b":"2"},"from"`, 1)))
	c, _ := Decode([]byte(strings.Replace(string(b), `"from"`, `"data":{"b":"2","a":"1"},"from"`, 1)))
	if a != c {
		t.Errorf("the same data in another order: %q != %q", a.Data, c.Data)
	}
	for _, bad := range []string{`"data":{"account":12345},`, `"data":"12345",`} {
		raw := strings.Replace(string(b), `"from"`, bad+`"from"`, 1)
		if _, errs := Decode([]byte(raw)); len(errs) != 1 || errs[0].Field != "data" {
			t.Errorf("%s: %v", bad, errs)
		}
	}
}

// Every event type fuzzed through Decode never panics, and a valid decoded event
// re-encodes to an event that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c","seq":1,"type":"call.started","at":"2026-11-22T10:00:00Z","direction":"inbound","from":"+15550001"}`))
	f.Add([]byte(`{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c","seq":9,"type":"call.ended","at":"2026-11-22T10:00:00Z","outcome":"answered","duration":5,"talk_time":-1}`))
	f.Add([]byte(`{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c","seq":3,"type":"call.answered","at":"2026-11-22T10:00:00Z","agent_id":4,"channel":"webrtc"}`))
	f.Add([]byte(`{"seq":1e99}`))
	f.Add([]byte(`{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c\u0000","seq":1,"type":"call.started","at":"2026-11-22T10:00:00Z","direction":"inbound","caller_name":"Eve\u0000"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c","seq":1,"type":"call.started","at":"2026-11-22T10:00:00Z","direction":"inbound","data":{"account":"12345","k\u0000":"v\u0007"}}`))
	f.Add([]byte(`{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c","seq":2,"type":"call.ivr_selected","at":"2026-11-22T10:00:00Z","data":{"a":null,"b":1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, errs := Decode(raw)
		if len(errs) > 0 {
			return
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, errs := Decode(b); len(errs) > 0 {
			t.Fatalf("a valid event re-encoded is invalid: %v", errs)
		}
	})
}

// POST /call_events names the field of every problem: a time that does not parse is reported
// on "at" (encoding/json's error from time.Time names no field, and it used to land on
// "event"), and a mistyped duration on its own JSON name, not the Go path "Durations.duration".
func TestDecodeNamesTheFieldOfABadTimeAndOfADuration(t *testing.T) {
	b, _ := json.Marshal(validStarted())
	at := `"at":"2026-11-22T10:00:00Z"`
	if !strings.Contains(string(b), at) {
		t.Fatalf("fixture has no %s: %s", at, b)
	}
	cases := []struct{ name, from, to, field string }{
		{"at not a time", at, `"at":"yesterday"`, "at"},
		{"at out of range", at, `"at":"2026-13-01T00:00:00Z"`, "at"},
		{"at a number", at, `"at":5`, "at"},
		{"at null is zero and refused by Validate", at, `"at":null`, "at"},
		{"duration a string", `"seq":1`, `"seq":1,"duration":"x"`, "duration"},
		{"talk_time fractional", `"seq":1`, `"seq":1,"talk_time":1.5`, "talk_time"},
	}
	for _, c := range cases {
		raw := strings.Replace(string(b), c.from, c.to, 1)
		_, errs := Decode([]byte(raw))
		if len(errs) != 1 || errs[0].Field != c.field {
			t.Errorf("%s: errors %v, want one naming %s", c.name, errs, c.field)
		}
	}
	if _, errs := Decode([]byte(`[]`)); len(errs) != 1 || errs[0].Field != "event" {
		t.Errorf("not an object: %v, want one naming event", errs)
	}
}

// sip_call_ids is a JSON array on the wire, an Event stays comparable, and a bad entry is
// reported on sip_call_ids.
func TestSIPCallIDsRoundTripAndRefusal(t *testing.T) {
	e := validStarted()
	e.Type, e.Outcome, e.SIPCallIDs = EventEnded, OutcomeAnswered, NewCallIDs("a@pc33", " b-2 ", "")
	b, _ := json.Marshal(e)
	if !strings.Contains(string(b), `"sip_call_ids":["a@pc33","b-2"]`) {
		t.Fatalf("JSON %s", b)
	}
	got, errs := Decode(b)
	if len(errs) != 0 || got != e {
		t.Fatalf("round trip: %v %+v", errs, got)
	}
	for _, bad := range []string{`"x"`, `["a b"]`, `[""]`, `[1]`} {
		raw := strings.Replace(string(b), `["a@pc33","b-2"]`, bad, 1)
		if _, errs := Decode([]byte(raw)); len(errs) != 1 || errs[0].Field != "sip_call_ids" {
			t.Errorf("sip_call_ids %s: %v, want one error naming sip_call_ids", bad, errs)
		}
	}
}
