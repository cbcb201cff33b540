package config

import (
	"errors"
	"reflect"
	"testing"
)

// queues.NAME.service_level_seconds (the reports' threshold, issue 21): 20 when omitted, as
// written otherwise, and a value outside 1–3600 is a problem naming its YAML path and line.
func TestQueueServiceLevelSecondsDefaultAndRange(t *testing.T) {
	c, err := parse([]byte(base+"queues:\n  support: {overflow: hangup}\n  sales: {overflow: hangup, service_level_seconds: 45}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Queues["support"].ServiceLevelSeconds; got != 20 {
		t.Errorf("support's service_level_seconds = %d, want the default 20", got)
	}
	if got := c.Queues["sales"].ServiceLevelSeconds; got != 45 {
		t.Errorf("sales's service_level_seconds = %d, want 45", got)
	}
	for _, tc := range []struct {
		v    string
		want []Problem
	}{
		{"0", []Problem{{"queues.support.service_level_seconds", "must be from 1 to 3600 seconds, got 0", 3}}},
		{"3601", []Problem{{"queues.support.service_level_seconds", "must be from 1 to 3600 seconds, got 3601", 3}}},
		{"-5", []Problem{{"queues.support.service_level_seconds", "must be from 1 to 3600 seconds, got -5", 3}}},
	} {
		_, err := parse([]byte(base+"queues:\n  support: {overflow: hangup, service_level_seconds: "+tc.v+"}\n"), noEnv)
		var got Problems
		if !errors.As(err, &got) || !reflect.DeepEqual([]Problem(got), tc.want) {
			t.Errorf("service_level_seconds %s: %v, want %v", tc.v, err, tc.want)
		}
	}
}
