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

// The page's consult buttons and its transfer to an outside number send these (app.js): each
// must parse. Before the fix parseMessage refused consult_complete and consult_cancel as unknown
// types and a transfer naming a number, so "Complete transfer", "Back to caller" and the
// outside-number transfer did nothing but show "malformed message".
func TestParseMessage_ConsultButtonsAndNumberTransferParse(t *testing.T) {
	for _, s := range []string{`{"type":"consult_complete"}`, `{"type":"consult_cancel"}`,
		`{"type":"transfer","mode":"consult","agent_id":7}`, `{"type":"transfer","mode":"consult","number":"+15557770000"}`,
		`{"type":"transfer","mode":"blind","number":"+15557770000"}`} {
		if _, err := parseMessage([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{`{"type":"transfer","agent_id":7,"number":"+15557770000"}`, `{"type":"transfer","mode":"consult"}`} {
		if _, err := parseMessage([]byte(s)); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err %v, want malformed", s, err)
		}
	}
}
