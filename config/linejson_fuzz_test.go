package config

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzLineParts proves LineParts (a database line's hours and settings as JSON, from the admin
// API) never panics, that every problem it returns names a field below hours or settings and
// says something, and that what it accepts reads back the same from what is stored
// (HoursJSON, SettingsJSON).
func FuzzLineParts(f *testing.F) {
	f.Add([]byte(`{"time_zone":"Europe/Paris","weekly":{"mon":["09:00-17:00"],"sun":["10:00-24:00"]},"holidays":["2026-12-25"],"closed_target":"queue:support"}`),
		[]byte(`{"abandoned_calls_create_tickets":false,"callback_max_delay":"90s","ticket_subject":{"inbound":"Hotline {{caller_number}}"}}`))
	f.Add([]byte(`{"weekly":{"mon":["22:00-02:00"]}}`), []byte(`{"anonymous_caller_policy":"x"}`))
	f.Add([]byte(`null`), []byte(`{"callback_append_window":-1,"x":1}`))
	f.Add([]byte(`{"weekly":{"funday":[]},"holidays":["2026-02-30"]} {}`), []byte(`[]`))
	c := Default()
	c.Trunks = []Trunk{{Name: "carrier"}}
	f.Fuzz(func(t *testing.T, hours, settings []byte) {
		h, s, ps := c.LineParts(nil, hours, settings)
		for _, p := range ps {
			if p.Message == "" || !(bytes.HasPrefix([]byte(p.Path), []byte("hours")) || bytes.HasPrefix([]byte(p.Path), []byte("settings"))) {
				t.Fatalf("problem %+v names no field or says nothing", p)
			}
		}
		if len(ps) > 0 {
			return
		}
		var hj, sj json.RawMessage
		if h != nil {
			hj = h.HoursJSON()
		}
		if s != nil {
			sj = SettingsJSON(*s)
		}
		h2, s2, ps2 := c.LineParts(nil, hj, sj)
		if len(ps2) > 0 {
			t.Fatalf("stored form %s %s refused: %v", hj, sj, ps2)
		}
		if (h == nil) != (h2 == nil) || (h != nil && !bytes.Equal(h2.HoursJSON(), hj)) {
			t.Fatalf("hours changed through the store: %s", hj)
		}
		if (s == nil) != (s2 == nil) || (s != nil && !bytes.Equal(SettingsJSON(*s2), sj)) {
			t.Fatalf("settings changed through the store: %s", sj)
		}
	})
}
