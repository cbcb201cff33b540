package sip

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// Race (run under -race): a leg's session timer armed, re-armed by a refresh from the far end
// and stopped by the leg's end, all at once, 200 times: nothing races or deadlocks, and once
// the three are done no timer is left armed (a timer armed after the end would keep the leg
// in memory for the whole session interval, and fire into an ended leg). The timer is a
// time.AfterFunc since session 7 (it was a goroutine per leg, which the end's channel ended).
func TestSessionTimerStartRefreshEndRace(t *testing.T) {
	g := startGateway(t, nil)
	cause := errors.New("test: leg over")
	for i := range 200 {
		l := newLeg(g.s, nil, roleUAS)
		l.sessExpires, l.weRefresh = time.Hour, i%2 == 0 // half of them refresh themselves
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); l.startSessionTimer() }()
		go func() { defer wg.Done(); l.noteRefresh(nil) }()
		go func() { defer wg.Done(); l.end(cause) }()
		wg.Wait()
		l.noteRefresh(nil) // a refresh arriving after the end re-arms nothing
		l.mu.Lock()
		st := l.sessTimer
		l.mu.Unlock()
		if st != nil && st.Stop() {
			t.Fatalf("round %d: the session timer was still armed after the leg ended", i)
		}
	}
}
