package roster_test

import (
	"testing"
	"time"
)

// TestAPI_QueueServiceLevelAndCallbackSetLive: a queue created through the API sets its
// service_level_seconds and callback (key, attempts, retry_delay); PUT changes them and
// "callback": null turns callbacks off; the manager's ServiceLevels (what the reports and the
// switchboard_report_* gauges use) has the stored value, or the file's fallback for a queue that
// stores none; the seed writes the file's values.
func TestAPI_QueueServiceLevelAndCallbackSetLive(t *testing.T) {
	e := newEnv(t)
	seed := devSeed()
	seed.Queues[0].ServiceLevelSeconds = 45
	seed.Queues[0].CallbackKey, seed.Queues[0].CallbackAttempts = "1", 2
	a := e.node(seed)
	code, m := a.call(t, e.admin, "POST", "/queues",
		`{"queue":{"name":"billing","service_level_seconds":30,"callback":{"key":"#","attempts":4,"retry_delay":90}}}`)
	q, _ := m["queue"].(map[string]any)
	if code != 201 || q["service_level_seconds"] != float64(30) {
		t.Fatalf("POST /queues = %d %v, want 201 with service_level_seconds 30", code, m)
	}
	if cb, _ := q["callback"].(map[string]any); cb["key"] != "#" || cb["attempts"] != float64(4) || cb["retry_delay"] != float64(90) {
		t.Errorf("callback %v, want key #, 4 attempts, 90 s apart", q["callback"])
	}
	levels := a.m.ServiceLevels(map[string]int{"sales": 25})
	if levels["billing"] != 30 || levels["support"] != 45 || levels["sales"] != 25 {
		t.Errorf("service levels %v, want billing 30 (API), support 45 (seed), sales 25 (the file's fallback)", levels)
	}
	for _, s := range a.m.Snapshot().Queues {
		if s.Name == "support" && (s.CallbackKey != "1" || s.CallbackAttempts != 2) {
			t.Errorf("seeded support %+v, want callback key 1, 2 attempts", s)
		}
		if s.Name == "billing" && (s.CallbackKey != "#" || s.CallbackRetry != 90*time.Second) {
			t.Errorf("billing %+v, want callback key #, retry 90 s", s)
		}
	}

	code, m = a.call(t, e.admin, "PUT", "/queues/billing", `{"queue":{"service_level_seconds":60,"callback":{"attempts":2}}}`)
	q, _ = m["queue"].(map[string]any)
	if cb, _ := q["callback"].(map[string]any); code != 200 || q["service_level_seconds"] != float64(60) || cb["key"] != "#" || cb["attempts"] != float64(2) {
		t.Errorf("PUT /queues/billing = %d %v, want service level 60, callback key # kept, 2 attempts", code, m)
	}
	if got := a.m.ServiceLevels(nil)["billing"]; got != 60 {
		t.Errorf("billing's service level after PUT %d, want 60 (effective at once)", got)
	}
	code, m = a.call(t, e.admin, "PUT", "/queues/billing", `{"queue":{"callback":null}}`)
	if q, _ := m["queue"].(map[string]any); code != 200 || q["callback"] != nil {
		t.Errorf("PUT callback null = %d %v, want callbacks off (callback null)", code, m)
	}

	for _, tc := range []struct{ name, body, field string }{
		{"service level out of range", `{"queue":{"service_level_seconds":3601}}`, "service_level_seconds"},
		{"service level a string", `{"queue":{"service_level_seconds":"20s"}}`, "service_level_seconds"},
		{"callback not an object", `{"queue":{"callback":"1"}}`, "callback"},
		{"callback key two keys", `{"queue":{"callback":{"key":"12"}}}`, "callback.key"},
		{"callback key a letter", `{"queue":{"callback":{"key":"x"}}}`, "callback.key"},
		{"callback attempts too many", `{"queue":{"callback":{"key":"1","attempts":11}}}`, "callback.attempts"},
		{"callback retry negative", `{"queue":{"callback":{"key":"1","retry_delay":-1}}}`, "callback.retry_delay"},
		{"callback unknown field", `{"queue":{"callback":{"key":"1","colour":"red"}}}`, "callback.colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := a.call(t, e.admin, "PUT", "/queues/billing", tc.body)
			d, _ := m["details"].(map[string]any)
			if code != 422 || d[tc.field] == nil {
				t.Errorf("PUT %s = %d %v, want 422 naming %s", tc.body, code, m, tc.field)
			}
		})
	}
}
