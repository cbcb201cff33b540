package web

import (
	"errors"
	"testing"
)

var messageSeeds = []string{
	`{"type":"hello","pc":true}`, `{"type":"answer_sdp","sdp":"v=0\r\n"}`, `{"type":"state","state":"available"}`,
	`{"type":"answer","call_id":"c1"}`, `{"type":"mute","muted":false}`, `{"type":"dtmf","digit":"5"}`,
	`{"type":"dtmf","digit":"55"}`, `{"type":"dtmf","digit":"x"}`, `{"type":"transfer","queue":"sales"}`,
	`{"type":"transfer","agent_id":3,"queue":"sales"}`, `{"type":"mute"}`, `{"type":"nope"}`, `{`, `[]`, `null`,
	`{"type":"wrap_up","extend":60}`, `{"type":"wrap_up"}`, `{"type":"wrap_up","extend":601}`, `{"type":"wrap_up","extend":-5}`,
	`{"type":"recording","paused":true}`, `{"type":"recording"}`,
}

// Rule: every message the page may send parses; anything else is refused as malformed, never
// handled.
func TestParseMessage(t *testing.T) {
	ok := map[string]bool{messageSeeds[0]: true, messageSeeds[1]: true, messageSeeds[2]: true, messageSeeds[3]: true,
		messageSeeds[4]: true, messageSeeds[5]: true, messageSeeds[8]: true, messageSeeds[15]: true, messageSeeds[19]: true}
	for _, s := range messageSeeds {
		_, err := parseMessage([]byte(s))
		if ok[s] != (err == nil) {
			t.Errorf("%s: err %v", s, err)
		}
		if err != nil && !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v does not wrap errMalformed", s, err)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		if m.Type == "" {
			t.Fatal("accepted a message without type")
		}
	})
}
