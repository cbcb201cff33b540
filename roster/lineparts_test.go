package roster_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/roster"
)

// partsConfig is a configuration with two trunks, whose rules check the lines' own trunk,
// hours and settings as the gateway's wiring does (cmd/switchboard checkRosterLine).
func partsConfig() (*config.Config, func(*string, json.RawMessage, json.RawMessage) (json.RawMessage, json.RawMessage, *roster.LineProblem)) {
	cfg := config.Default()
	cfg.Trunks = []config.Trunk{{Name: "carrier"}, {Name: "backup"}}
	return &cfg, func(trunk *string, hours, settings json.RawMessage) (json.RawMessage, json.RawMessage, *roster.LineProblem) {
		h, s, ps := cfg.LineParts(trunk, hours, settings)
		if len(ps) > 0 {
			return nil, nil, &roster.LineProblem{Field: ps[0].Path, Message: ps[0].Message}
		}
		var hj, sj json.RawMessage
		if h != nil {
			hj = h.HoursJSON()
		}
		if s != nil {
			sj = config.SettingsJSON(*s)
		}
		return hj, sj, nil
	}
}

// lineOf returns the line numbered n the sink last received.
func (s *lineSink) line(n string) (roster.Line, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l.Number == n {
			return l, true
		}
	}
	return roster.Line{}, false
}

// TestLines_TrunkHoursAndSettingsThroughTheAPIReachTheLineTable: a line created only in the
// database with its own trunk, opening hours and ticket settings is answered with them as
// stored (durations in seconds, ranges as written), handed at once to the line table of the
// node that served the request and, on the notification, to the other node; the hours read
// there send a call outside them (and on a holiday) to the closed target, in the line's time
// zone; setting them back to null hands over a line without them (the file's, by number);
// a queue the closed target names cannot be deleted.
func TestLines_TrunkHoursAndSettingsThroughTheAPIReachTheLineTable(t *testing.T) {
	e := newEnv(t)
	cfg, check := partsConfig()
	seed := devSeed()
	seed.Lines = []roster.Line{{Number: "+15550100", Target: "queue:support"}}
	sa, sb := &lineSink{}, &lineSink{}
	a := e.lineNodeChecking(seed, sa, check)
	awaitLines(t, sa, "+15550100→queue:support")
	e.lineNodeChecking(seed, sb, check)
	awaitLines(t, sb, "+15550100→queue:support")

	code, m := a.call(t, e.admin, "POST", "/lines", `{"line":{"number":"+15550123","target":"queue:support","trunk":"backup",
		"hours":{"time_zone":"Europe/Paris","weekly":{"mon":["09:00-17:00"],"tue":["09:00-12:00","13:00-17:00"]},
			"holidays":["2026-12-25"],"closed_target":"queue:sales"},
		"settings":{"abandoned_calls_create_tickets":false,"callback_max_delay":"90s","ticket_subject":{"inbound":"Hotline: {{caller_number}}"}}}}`)
	if code != 201 {
		t.Fatalf("POST /lines = %d %v", code, m)
	}
	l := m["line"].(map[string]any)
	if l["trunk"] != "backup" {
		t.Errorf("trunk %v, want backup", l["trunk"])
	}
	h, _ := l["hours"].(map[string]any)
	if h["time_zone"] != "Europe/Paris" || h["closed_target"] != "queue:sales" ||
		fmt.Sprint(h["weekly"].(map[string]any)["tue"]) != "[09:00-12:00 13:00-17:00]" || fmt.Sprint(h["holidays"]) != "[2026-12-25]" {
		t.Errorf("hours answered %v", h)
	}
	if s, _ := l["settings"].(map[string]any); s["abandoned_calls_create_tickets"] != false || s["callback_max_delay"] != float64(90) ||
		s["ticket_subject"].(map[string]any)["inbound"] != "Hotline: {{caller_number}}" {
		t.Errorf("settings answered %v", l["settings"])
	}
	if code, g := a.call(t, e.admin, "GET", "/lines/+15550123", ""); code != 200 || fmt.Sprint(g["line"]) != fmt.Sprint(l) {
		t.Errorf("GET = %d %v, want what POST answered %v", code, g, l)
	}

	// Handed over before the answer on the serving node, on the notification on the other.
	got, ok := sa.line("+15550123")
	if !ok || got.Trunk == nil || *got.Trunk != "backup" || got.Hours == nil || got.Settings == nil {
		t.Fatalf("serving node's line table has %+v", got)
	}
	awaitLines(t, sb, "+15550100→queue:support", "+15550123→queue:support")
	other, _ := sb.line("+15550123")
	hours, settings, ps := cfg.LineParts(other.Trunk, other.Hours, other.Settings)
	if len(ps) > 0 {
		t.Fatalf("the other node cannot read the line it was handed: %v", ps)
	}
	if settings == nil || settings.AbandonedCallsCreateTickets == nil || *settings.AbandonedCallsCreateTickets ||
		settings.CallbackMaxDelay == nil || settings.CallbackMaxDelay.Duration() != 90*time.Second {
		t.Errorf("settings on the other node %+v", settings)
	}
	ih := hours.IVR()
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tc := range []struct {
		at   time.Time
		open bool
	}{
		{time.Date(2026, 11, 23, 10, 0, 0, 0, paris), true},                   // a Monday
		{time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC), true},                // 09:30 in Paris
		{time.Date(2026, 11, 23, 16, 30, 0, 0, time.UTC), false},              // 17:30 in Paris
		{time.Date(2026, 11, 24, 12, 30, 0, 0, paris), false},                 // Tuesday's lunch
		{time.Date(2026, 11, 25, 10, 0, 0, 0, paris), false},                  // Wednesday: closed
		{time.Date(2026, 12, 22, 10, 0, 0, 0, paris), true},                   // a Tuesday
		{time.Date(2026, 12, 25, 10, 0, 0, 0, paris).AddDate(0, 0, 0), false}, // Christmas, a Friday
	} {
		if ih.Open(tc.at) != tc.open {
			t.Errorf("open at %s = %v, want %v", tc.at, !tc.open, tc.open)
		}
	}
	if ih.Closed != ivr.QueueTarget("sales") {
		t.Errorf("closed target %v, want queue:sales", ih.Closed)
	}

	// The closed target's queue is in use.
	if code, m := a.call(t, e.admin, "DELETE", "/queues/sales", ""); code != 409 || !strings.Contains(fmt.Sprint(m), "+15550123") {
		t.Errorf("DELETE the closed target's queue = %d %v, want 409 naming the line", code, m)
	}

	// Back to the file's (null), and a name change keeps the hours.
	if code, m := a.call(t, e.admin, "PUT", "/lines/+15550123", `{"line":{"name":"Hotline"}}`); code != 200 || m["line"].(map[string]any)["hours"] == nil {
		t.Fatalf("PUT name = %d %v, want the hours kept", code, m)
	}
	if code, m := a.call(t, e.admin, "PUT", "/lines/+15550123", `{"line":{"hours":null,"trunk":null}}`); code != 200 ||
		m["line"].(map[string]any)["hours"] != nil || m["line"].(map[string]any)["trunk"] != nil || m["line"].(map[string]any)["settings"] == nil {
		t.Fatalf("PUT hours null = %d %v, want hours and trunk null, settings kept", code, m)
	}
	deadline := time.Now().Add(await)
	for {
		if l, _ := sb.line("+15550123"); l.Hours == nil && l.Trunk == nil && l.Name == "Hotline" {
			break
		}
		if time.Now().After(deadline) {
			l, _ := sb.line("+15550123")
			t.Fatalf("the other node still has %+v", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var audit string
	if err := e.pool.QueryRow(context.Background(), `SELECT change_description FROM audits WHERE details->>'line' = '+15550123'
		ORDER BY id DESC LIMIT 1`).Scan(&audit); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(audit, `trunk "backup" → "(the file's)"`) || !strings.Contains(audit, `hours "{`) {
		t.Errorf("audit %q does not say the trunk and hours changed", audit)
	}
}

// TestLines_TrunkHoursAndSettingsRefusedNamingTheField: what the configuration file refuses in
// a line's trunk, hours and settings the API refuses with 422 naming the field's path; nothing
// is stored and nothing reaches the line table.
func TestLines_TrunkHoursAndSettingsRefusedNamingTheField(t *testing.T) {
	e := newEnv(t)
	_, check := partsConfig()
	seed := devSeed()
	seed.Lines = []roster.Line{{Number: "+15550100", Target: "queue:support"}}
	s := &lineSink{}
	a := e.lineNodeChecking(seed, s, check)
	awaitLines(t, s, "+15550100→queue:support")
	post := func(extra string) string {
		return `{"line":{"number":"+15550123","target":"voicemail",` + extra + `}}`
	}
	for _, tc := range []struct {
		name, body, field, says string
	}{
		{"unknown trunk", post(`"trunk":"nowhere"`), "trunk", "names no trunk"},
		{"empty trunk", post(`"trunk":""`), "trunk", "must name a trunk"},
		{"trunk not a string", post(`"trunk":5`), "trunk", "wrong type"},
		{"unknown time zone", post(`"hours":{"time_zone":"Mars/Olympus","weekly":{"mon":["09:00-17:00"]}}`), "hours.time_zone", "IANA"},
		{"crossing midnight", post(`"hours":{"weekly":{"mon":["22:00-02:00"]}}`), "hours.weekly.mon[0]", "cannot cross midnight"},
		{"not a range", post(`"hours":{"weekly":{"mon":["09:00-17:00","9-5"]}}`), "hours.weekly.mon[1]", "HH:MM-HH:MM"},
		{"not a day", post(`"hours":{"weekly":{"funday":["09:00-17:00"]}}`), "hours.weekly.funday", "not a day"},
		{"never open", post(`"hours":{"weekly":{}}`), "hours.weekly", "always be closed"},
		{"bad holiday", post(`"hours":{"weekly":{"mon":["09:00-17:00"]},"holidays":["25/12/2026"]}`), "hours.holidays[0]", "YYYY-MM-DD"},
		{"unknown hours key", post(`"hours":{"weekly":{"mon":["09:00-17:00"]},"open":true}`), "hours.open", "not a known key"},
		{"closed target does not parse", post(`"hours":{"weekly":{"mon":["09:00-17:00"]},"closed_target":"elsewhere"}`), "hours.closed_target", "not a target"},
		{"closed target no such queue", post(`"hours":{"weekly":{"mon":["09:00-17:00"]},"closed_target":"queue:nowhere"}`), "hours.closed_target", "no queue"},
		{"hours not an object", post(`"hours":["09:00-17:00"]`), "hours", "JSON object"},
		{"bad duration", post(`"settings":{"callback_max_delay":"soon"}`), "settings.callback_max_delay", "duration"},
		{"negative window", post(`"settings":{"callback_append_window":-5}`), "settings.callback_append_window", "negative"},
		{"unknown setting value", post(`"settings":{"anonymous_caller_policy":"ignore"}`), "settings.anonymous_caller_policy", "not allowed"},
		{"unknown setting", post(`"settings":{"abandoned_calls_make_tickets":false}`), "settings.abandoned_calls_make_tickets", "not a known key"},
		{"setting of the wrong type", post(`"settings":{"append_to_open_ticket":"yes"}`), "settings.append_to_open_ticket", "wrong type"},
		{"bad subject", post(`"settings":{"ticket_subject":{"inbound":"Call {{caler}}"}}`), "settings.ticket_subject.inbound", "not a placeholder"},
		{"assignee not a user", post(`"settings":{"default_assignee":"nobody@example.com"}`), "settings.default_assignee", "not an agent"},
		{"assignee not an email", post(`"settings":{"default_assignee":"nobody"}`), "settings.default_assignee", "email"},
		{"on_queue_entry without abandoned tickets", post(`"settings":{"ticket_creation_point":"on_queue_entry","abandoned_calls_create_tickets":false}`),
			"settings.abandoned_calls_create_tickets", "cannot be false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := a.call(t, e.admin, "POST", "/lines", tc.body)
			if code != 422 {
				t.Fatalf("POST = %d %v, want 422", code, m)
			}
			d, _ := m["details"].(map[string]any)
			if d[tc.field] == nil || !strings.Contains(fmt.Sprint(d[tc.field]), tc.says) {
				t.Errorf("answer %v, want %q naming %q", m, tc.says, tc.field)
			}
		})
	}
	// A PUT is checked the same way.
	if code, m := a.call(t, e.admin, "PUT", "/lines/+15550100", `{"line":{"hours":{"weekly":{"sat":["10:00-09:00"]}}}}`); code != 422 ||
		m["details"].(map[string]any)["hours.weekly.sat[0]"] == nil {
		t.Errorf("PUT crossing midnight = %d %v", code, m)
	}
	// A valid assignee is taken.
	if code, m := a.call(t, e.admin, "PUT", "/lines/+15550100", `{"line":{"settings":{"default_assignee":"agent1@example.com"}}}`); code != 200 {
		t.Errorf("PUT a user as default_assignee = %d %v", code, m)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM roster_lines`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d lines stored (%v), want only the seeded one", n, err)
	}
	if got := s.numbers(); !slices.Equal(got, []string{"+15550100→queue:support"}) {
		t.Errorf("lines after refused requests: %v", got)
	}
}

// TestLines_Upgrade021RowKeepsTheFilesHoursBySeedOnceWithThem: a line seeded before migration
// 031 (trunk, hours and settings NULL, the seed's hash over number, target, name and language)
// is handed over without them — the file's, by number, as before — and the next start, whose
// file has the same line with hours, neither says the file differs nor overwrites the row; a
// database seeded after 031 stores the file's trunk, hours and settings as the line's own.
func TestLines_Upgrade021RowKeepsTheFilesHoursBySeedOnceWithThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg, check := partsConfig()
	if _, err := roster.ApplySeed(ctx, e.pool, *devSeed()); err != nil {
		t.Fatal(err)
	}
	// As 021 left it.
	type line021 struct {
		Number   string `json:"number"`
		Target   string `json:"target"`
		Name     string `json:"name"`
		Language string `json:"language"`
	}
	legacy, _ := json.Marshal([]line021{{Number: "+15550100", Target: "queue:support", Name: "Support"}})
	sum := sha256.Sum256(legacy)
	if _, err := e.pool.Exec(ctx, `DELETE FROM roster_lines_seed;
		INSERT INTO roster_lines (number, target, name) VALUES ('+15550100', 'queue:support', 'Support');`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO roster_lines_seed (seed_hash) VALUES ($1)`, hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	// The file as it is now: the same line, with hours and a trunk.
	fileHours := &config.Hours{TimeZone: "UTC", ClosedTarget: config.MustTarget("voicemail")}
	fileHours.Weekly.Mon = []config.TimeRange{mustRange(t, "09:00-17:00")}
	seed := devSeed()
	trunk := "carrier"
	seed.Lines = []roster.Line{{Number: "+15550100", Target: "queue:support", Name: "Support", Trunk: &trunk, Hours: fileHours.HoursJSON()}}
	res, err := roster.ApplySeed(ctx, e.pool, *seed)
	if err != nil {
		t.Fatal(err)
	}
	if res.LinesSeeded || res.LinesDiffer {
		t.Errorf("ApplySeed after the upgrade = %+v: want nothing seeded and no difference reported", res)
	}
	s := &lineSink{}
	e.lineNodeChecking(seed, s, check)
	awaitLines(t, s, "+15550100→queue:support")
	if l, _ := s.line("+15550100"); l.Trunk != nil || l.Hours != nil || l.Settings != nil {
		t.Errorf("the upgraded line has %+v: want trunk, hours and settings null (the file's, by number)", l)
	}

	// A fresh database seeded from that file stores them as the line's own.
	fresh := newEnv(t)
	if _, err := roster.ApplySeed(ctx, fresh.pool, *seed); err != nil {
		t.Fatal(err)
	}
	fs := &lineSink{}
	fresh.lineNodeChecking(seed, fs, check)
	awaitLines(t, fs, "+15550100→queue:support")
	l, _ := fs.line("+15550100")
	if l.Trunk == nil || *l.Trunk != "carrier" || l.Hours == nil {
		t.Fatalf("freshly seeded line %+v: want the file's trunk and hours stored", l)
	}
	if h, _, ps := cfg.LineParts(l.Trunk, l.Hours, l.Settings); len(ps) > 0 || len(h.Weekly.Mon) != 1 || h.Weekly.Mon[0].String() != "09:00-17:00" {
		t.Errorf("seeded hours read back as %+v (%v)", h, ps)
	}
}

func mustRange(t *testing.T, s string) config.TimeRange {
	t.Helper()
	r, err := config.ParseTimeRange(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
