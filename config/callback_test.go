package config

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// queues.NAME.callback (queue callbacks, issue 21): off when omitted; a key, attempts and
// retry delay as written; a bad key, too many attempts or a negative delay is a problem naming
// its YAML path and line.
func TestQueueCallbackKeyAttemptsAndRetryDelay(t *testing.T) {
	c, err := parse([]byte(base+"queues:\n  support: {overflow: hangup}\n  sales: {overflow: hangup, callback: {key: \"#\", attempts: 2, retry_delay: 30s}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cb := c.Queues["support"].Callback; cb != (QueueCallback{}) {
		t.Errorf("support's callback = %+v, want off", cb)
	}
	if cb := c.Queues["sales"].Callback; cb.Key != "#" || cb.Attempts != 2 || cb.RetryDelay.D() != 30*time.Second {
		t.Errorf("sales's callback = %+v, want key #, 2 attempts, 30s", cb)
	}
	for _, tc := range []struct {
		v    string
		want []Problem
	}{
		{`{key: "12"}`, []Problem{{"queues.support.callback.key", `must be one key of 0-9, * or #, got "12"`, 3}}},
		{`{key: "x"}`, []Problem{{"queues.support.callback.key", `must be one key of 0-9, * or #, got "x"`, 3}}},
		{`{attempts: 3}`, []Problem{{"queues.support.callback.key", `must be one key of 0-9, * or #, got ""`, 3}}},
		{`{key: "1", attempts: 11}`, []Problem{{"queues.support.callback.attempts", "must be from 1 to 10 (0: the default, 3), got 11", 3}}},
		{`{key: "1", retry_delay: -1s}`, []Problem{{"queues.support.callback.retry_delay", "must be from 0s (the default, 60s) to 24h, got -1s", 3}}},
	} {
		_, err := parse([]byte(base+"queues:\n  support: {overflow: hangup, callback: "+tc.v+"}\n"), noEnv)
		var got Problems
		if !errors.As(err, &got) || !reflect.DeepEqual([]Problem(got), tc.want) {
			t.Errorf("callback %s: %v, want %v", tc.v, err, tc.want)
		}
	}
}
