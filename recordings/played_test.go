package recordings

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TU-9 (reading a voicemail): Options.Played hears of every GET that reads a recording from its
// first byte — no Range, or a range from byte 0 — with the listening user, before any audio
// is sent; a player's later range requests, HEAD and refused requests are not reads. When
// Played fails, the audio is refused (500): no read goes unrecorded.
func TestRule_TU9_PlayedHearsEveryReadFromTheStart(t *testing.T) {
	var mu sync.Mutex
	var played []string
	var fail error
	e := &httpEnv{auth: &fakeAuth{agentsCan: true}, tickets: &fakeTickets{tickets: map[int64][]string{}}, clk: newClock()}
	e.s = newService(t, Options{Now: e.clk.Now, Buffer: 1024, Authorizer: e.auth, Tickets: e.tickets,
		Played: func(_ context.Context, rec Recording, userID int64) error {
			mu.Lock()
			defer mu.Unlock()
			if fail != nil {
				return fail
			}
			played = append(played, rec.ID+":"+rec.Kind)
			if userID != 2 {
				t.Errorf("Played by user %d, want the agent (2)", userID)
			}
			return nil
		}})
	mux := http.NewServeMux()
	e.s.Register(mux, "/api/v2/")
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	rec := e.record(t, "call-played")
	path := "/api/v2/recordings/" + rec.ID
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(played)
	}

	for _, tc := range []struct {
		method, rng  string
		status, want int
	}{
		{"GET", "", 200, 1},
		{"GET", "bytes=0-99", 206, 2},
		{"GET", "bytes=100-199", 206, 2}, // seeking: the same reading
		{"GET", "bytes=-100", 206, 2},    // the last bytes: not from the start
		{"HEAD", "", 200, 2},
	} {
		var hdr []string
		if tc.rng != "" {
			hdr = []string{"Range", tc.rng}
		}
		resp, _ := e.do(t, tc.method, path, "agent", hdr...)
		if resp.StatusCode != tc.status || count() != tc.want {
			t.Errorf("%s Range %q: status %d, %d reads; want %d, %d", tc.method, tc.rng, resp.StatusCode, count(), tc.status, tc.want)
		}
	}
	if resp, _ := e.do(t, "GET", path, ""); resp.StatusCode != 401 || count() != 2 {
		t.Errorf("anonymous: %d, %d reads", resp.StatusCode, count())
	}
	mu.Lock()
	fail = errors.New("database down")
	mu.Unlock()
	resp, body := e.do(t, "GET", path, "agent")
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") == "audio/wav" || errorName(t, body) != "InternalError" {
		t.Errorf("Played failing: %d %s, want a 500 and no audio", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if played[0] != rec.ID+":call" {
		t.Errorf("played %v", played)
	}
}
