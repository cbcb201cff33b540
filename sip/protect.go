package sip

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a per-source token bucket (golang.org/x/time/rate). Its table is bounded: when it
// holds maxSources entries, idle entries are swept, and if none is idle the table starts afresh
// (a flood of spoofed sources must not grow memory without bound).
type limiter struct {
	mu      sync.Mutex
	perSec  rate.Limit
	burst   int
	sources map[netip.Addr]*sourceBucket
	now     func() time.Time
}

type sourceBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const maxSources = 65536

func newLimiter(perSec float64, burst int, now func() time.Time) *limiter {
	return &limiter{perSec: rate.Limit(perSec), burst: burst, sources: map[netip.Addr]*sourceBucket{}, now: now}
}

// allow reports whether one more request from addr fits its bucket.
func (l *limiter) allow(addr netip.Addr) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.sources[addr]
	if !ok {
		if len(l.sources) >= maxSources {
			for a, sb := range l.sources {
				if now.Sub(sb.seen) > time.Minute {
					delete(l.sources, a)
				}
			}
			if len(l.sources) >= maxSources {
				clear(l.sources)
			}
		}
		b = &sourceBucket{lim: rate.NewLimiter(l.perSec, l.burst)}
		l.sources[addr] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// isScanner reports whether ua contains one of the scanner substrings (case-insensitive).
func isScanner(ua string, scanners []string) bool {
	if ua == "" {
		return false
	}
	lua := strings.ToLower(ua)
	for _, s := range scanners {
		if s != "" && strings.Contains(lua, strings.ToLower(s)) {
			return true
		}
	}
	return false
}
