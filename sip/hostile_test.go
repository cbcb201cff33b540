package sip

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestHostileFromReachesEventsClean: an INVITE whose From display name carries raw control
// bytes (NUL, ESC, DEL, a quoted-pair) and whose user part is %-escaped with an escaped NUL,
// a User-Agent and Call-ID with control bytes, as sipgo parses them off the wire: call.started
// carries a clean caller_name and from, and no log line carries a control character.
func TestHostileFromReachesEventsClean(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			return &StatusError{Code: 486, Reason: "Busy Here", Outcome: "no_answer"}
		})}}
		o.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	inv := rawInvite("+15550197", "User-Agent: evil\x00\x1b[31mUA\n", pcmuOffer)
	inv = strings.Replace(inv, `From: "Bob" <sip:+15557654321@127.0.0.1>`,
		"From: \"Al\x00i\x01ce\x7f C\\\"aller\x1b\" <sip:%00%2B1555765%004321@127.0.0.1>", 1)
	inv = strings.Replace(inv, "Call-ID: ", "Call-ID: x\x01\x7f", 1)
	if res := udpExchange(t, g.port(), inv, 5*time.Second); statusCode(res) != 486 {
		t.Fatalf("INVITE with a hostile From: %d, want the target's 486\n%q", statusCode(res), res)
	}
	evs := g.sink.waitEnded(t, 10*time.Second)
	st := evs[0]
	if st.Type != callevent.EventStarted || st.CallerName != `Alice C"aller` || st.From != "+15557654321" {
		t.Errorf("call.started caller_name %q from %q, want %q %q", st.CallerName, st.From, `Alice C"aller`, "+15557654321")
	}
	logMu.Lock()
	defer logMu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		for k, v := range m {
			if s, ok := v.(string); ok && strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
				t.Errorf("log %q: %s = %q carries a control character", m["msg"], k, s)
			}
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
