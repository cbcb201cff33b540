package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// A line of the database (the roster's, /api/v2/lines) carries the trunk, hours and settings
// of a line of this file, written in JSON with the file's shapes:
//
//	"trunk": "carrier",
//	"hours": {"time_zone": "Europe/Paris", "weekly": {"mon": ["09:00-17:00"]},
//	          "holidays": ["2026-12-25"], "closed_target": "voicemail"},
//	"settings": {"abandoned_calls_create_tickets": false, "ticket_subject": {"inbound": "…"}}
//
// LineParts reads and checks them with the rules of lines[] (validateLines): the same trunk,
// time zone, weekly range, holiday, closed target and settings checks, with problems named by
// their path below the line ("hours.weekly.mon[0]", "settings.callback_max_delay").

// weekdays are the keys of hours.weekly, in the file's order.
var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// hoursJSON is Hours as JSON writes it.
type hoursJSON struct {
	TimeZone     string              `json:"time_zone"`
	Weekly       map[string][]string `json:"weekly"`
	Holidays     []string            `json:"holidays"`
	ClosedTarget string              `json:"closed_target"`
}

func (w *Weekly) day(name string) *[]TimeRange {
	switch name {
	case "mon":
		return &w.Mon
	case "tue":
		return &w.Tue
	case "wed":
		return &w.Wed
	case "thu":
		return &w.Thu
	case "fri":
		return &w.Fri
	case "sat":
		return &w.Sat
	case "sun":
		return &w.Sun
	}
	return nil
}

// HoursJSON writes h in the shape LineParts reads (the seed of the database's lines).
func (h *Hours) HoursJSON() json.RawMessage {
	out := hoursJSON{TimeZone: h.TimeZone, Weekly: map[string][]string{}, Holidays: []string{}, ClosedTarget: h.ClosedTarget.String()}
	for _, d := range weekdays {
		for _, r := range *h.Weekly.day(d) {
			out.Weekly[d] = append(out.Weekly[d], r.String())
		}
	}
	for _, d := range h.Holidays {
		out.Holidays = append(out.Holidays, d.String())
	}
	b, _ := json.Marshal(out) // strings, slices and maps: never fails
	return b
}

// SettingsJSON writes a line's settings overrides as LineParts reads them.
func SettingsJSON(s ticketing.LineSettings) json.RawMessage {
	b, _ := json.Marshal(s) // plain fields: never fails
	return b
}

// strictJSON decodes b into v refusing unknown fields and trailing data; the error names the
// field below path when encoding/json says which.
func strictJSON(b []byte, v any, path string) *Problem {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil {
		if _, terr := d.Token(); terr != io.EOF {
			return &Problem{Path: path, Message: "must be one JSON object"}
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		p := path
		if te.Field != "" {
			p += "." + te.Field
		}
		return &Problem{Path: p, Message: fmt.Sprintf("has the wrong type: want %s, got a JSON %s", te.Type, te.Value)}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return &Problem{Path: path + "." + f, Message: "is not a known key"}
	}
	// A value's own UnmarshalJSON (ticketing.Seconds) says what it wants, not where: find it.
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) == nil {
		for k, raw := range top {
			probe := map[string]json.RawMessage{k: raw}
			pb, _ := json.Marshal(probe)
			if perr := json.Unmarshal(pb, v); perr != nil {
				return &Problem{Path: path + "." + k, Message: strings.TrimPrefix(perr.Error(), "json: ")}
			}
		}
	}
	return &Problem{Path: path, Message: "must be a JSON object: " + strings.TrimPrefix(msg, "json: ")}
}

// LineParts reads a database line's trunk, hours and settings (each nil or JSON null when the
// line has none of its own) and checks them as the file's lines[] are checked. A closed_target
// naming a queue is not looked up here (the database's queues are the roster's), nor is a
// settings.default_assignee among the file's accounts. The hours returned have their time zone
// loaded (Hours.IVR).
func (c *Config) LineParts(trunk *string, hours, settings json.RawMessage) (*Hours, *ticketing.LineSettings, Problems) {
	k := &checker{}
	if trunk != nil {
		c.checkLineTrunk(k, "trunk", *trunk, true)
		if *trunk == "" {
			k.add("trunk", "must name a trunk, or be null for the file's line's (or the only trunk)")
		}
	}
	var h *Hours
	if isSet(hours) {
		var in hoursJSON
		if p := strictJSON(hours, &in, "hours"); p != nil {
			return nil, nil, Problems{*p}
		}
		h = &Hours{TimeZone: in.TimeZone}
		if h.TimeZone == "" {
			h.TimeZone = "UTC"
		}
		days := make([]string, 0, len(in.Weekly))
		for d := range in.Weekly {
			days = append(days, d)
		}
		for _, d := range sortedStrings(days) {
			dst := h.Weekly.day(d)
			if dst == nil {
				k.add("hours.weekly."+d, "is not a day; use %s", strings.Join(weekdays, ", "))
				continue
			}
			for i, s := range in.Weekly[d] {
				r, err := ParseTimeRange(s)
				if err != nil {
					k.add("hours.weekly."+d+index(i), "%s", err)
					continue
				}
				*dst = append(*dst, r)
			}
		}
		for i, s := range in.Holidays {
			d, err := ParseDate(s)
			if err != nil {
				k.add("hours.holidays"+index(i), "%s", err)
				continue
			}
			h.Holidays = append(h.Holidays, d)
		}
		if in.ClosedTarget == "" {
			h.ClosedTarget = Target{Target: ivr.VoicemailTarget()}
		} else if t, err := ParseTarget(in.ClosedTarget); err != nil {
			k.add("hours.closed_target", "%s", err)
		} else {
			h.ClosedTarget = t
		}
		if len(k.ps) == 0 {
			c.checkHours(k, "hours", h, false)
		}
	}
	var s *ticketing.LineSettings
	if isSet(settings) {
		s = &ticketing.LineSettings{}
		if p := strictJSON(settings, s, "settings"); p != nil {
			return nil, nil, append(k.ps, *p)
		}
		c.checkLineSettings(k, "settings", *s, false)
	}
	if len(k.ps) > 0 {
		return nil, nil, k.ps
	}
	return h, s, nil
}

// isSet reports whether b holds a JSON value other than null.
func isSet(b json.RawMessage) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}

func sortedStrings(s []string) []string {
	order := map[string]int{}
	for i, d := range weekdays {
		order[d] = i + 1
	}
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && less(order, out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func less(order map[string]int, a, b string) bool {
	oa, ob := order[a], order[b]
	if oa == 0 && ob == 0 {
		return a < b
	}
	if oa == 0 || ob == 0 {
		return ob == 0
	}
	return oa < ob
}
