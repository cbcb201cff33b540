package ivr

import "time"

// Clock is the time source of the engine and the ACD: ring timeouts, maximum waits, wrap-up,
// announcements, menu timeouts, voicemail length and every state timestamp come from it, so that
// tests can drive them. Audio pacing is media's and always runs on the real clock.
//
// The ACD calls Now, NewTimer, AfterFunc and Timer.Stop with its lock held, so a Clock is a
// leaf: its methods return promptly and never call into ivr themselves (AfterFunc runs f later
// on its own goroutine, never inside AfterFunc or Stop).
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer firing once after d on C.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f on its own goroutine after d; the returned timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a Clock's one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
}

// RealClock is the wall clock (with the monotonic reading).
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// AfterFunc wraps time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
