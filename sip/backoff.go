package sip

import (
	"sync"
	"time"
)

// authBackoff slows digest guessing on REGISTER: after AuthFailuresFree failures of one key (a
// source IP, or an agent account) every further failure backs the key off for
// AuthBackoffBase, doubling with each failure up to AuthBackoffMax. While a key is backed off
// its REGISTERs are refused without the password being checked, so a guess made then tells
// the guesser nothing. A success resets the key; a key quiet for AuthBackoffMax after its
// backoff ended starts afresh.
//
// The table is bounded like the rate limiter's: at maxSources entries the expired ones are
// swept, and if none is, the table starts afresh (a flood of spoofed sources must not grow
// memory without bound; it can at worst reset the backoff it floods).
type authBackoff struct {
	free      int
	base, max time.Duration
	now       func() time.Time

	mu      sync.Mutex
	entries map[string]*backoffEntry
}

type backoffEntry struct {
	fails int
	until time.Time // backed off until then
	last  time.Time // last failure
}

func newAuthBackoff(free int, base, max time.Duration, now func() time.Time) *authBackoff {
	return &authBackoff{free: free, base: base, max: max, now: now, entries: map[string]*backoffEntry{}}
}

// blocked returns how long key stays backed off (0: not backed off).
func (b *authBackoff) blocked(key string) time.Duration {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil || !e.until.After(now) {
		return 0
	}
	return e.until.Sub(now)
}

// fail records a failure of key and returns the backoff it starts (0 while within the free
// failures).
func (b *authBackoff) fail(key string) time.Duration {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e != nil && now.Sub(e.last) > b.max && now.Sub(e.until) > b.max {
		e = nil // quiet long enough: start afresh
	}
	if e == nil {
		if len(b.entries) >= maxSources {
			for k, old := range b.entries {
				if now.Sub(old.last) > b.max && now.Sub(old.until) > b.max {
					delete(b.entries, k)
				}
			}
			if len(b.entries) >= maxSources {
				clear(b.entries)
			}
		}
		e = &backoffEntry{}
		b.entries[key] = e
	}
	e.fails++
	e.last = now
	if e.fails <= b.free {
		return 0
	}
	d := b.base
	for i := e.fails - b.free - 1; i > 0 && d < b.max; i-- {
		d *= 2
	}
	d = min(d, b.max)
	e.until = now.Add(d)
	return d
}

// reset forgets key's failures (a successful authentication).
func (b *authBackoff) reset(key string) {
	b.mu.Lock()
	delete(b.entries, key)
	b.mu.Unlock()
}
