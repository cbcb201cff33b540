package web

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons an OutboundGuard refuses a dial: the JSON error's "reason" and the label of
// switchboard_outbound_refused_total.
const (
	RefusedDestinationDenied     = "destination_denied"      // a deny prefix matched (403)
	RefusedDestinationNotAllowed = "destination_not_allowed" // allow is set and nothing in it matched (403)
	RefusedRate                  = "rate"                    // the agent's calls per minute (429)
	RefusedConcurrent            = "concurrent"              // the agent's concurrent calls (429)
)

// GuardOptions configures NewOutboundGuard: the outbound trunk's destinations and agent limits
// (config trunks[].outbound.destinations and agent_limits).
type GuardOptions struct {
	// Allow and Deny are E.164 prefixes ("+1900"). The longest matching prefix decides and deny
	// wins a tie; with a non-empty Allow, a number matching none of it is refused.
	Allow, Deny []string
	// CallsPerMinute is the most dials one agent may start in any 60 s; 0 no limit.
	CallsPerMinute int
	// MaxCalls is the most outbound calls one agent may have at once; 0 no limit.
	MaxCalls int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Registerer receives switchboard_outbound_calls_total and
	// switchboard_outbound_refused_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// OutboundGuard stops toll fraud through POST /calls: a stolen agent password or token used
// to call premium-rate numbers, or to spray calls. Its checks run before anything is dialled.
// Safe for concurrent use; its lock guards only its own maps and nothing is called under it.
type OutboundGuard struct {
	opts    GuardOptions
	refused *prometheus.CounterVec
	calls   prometheus.Counter

	mu     sync.Mutex
	recent map[int64][]time.Time // agent → start times of its dials within the last minute, oldest first
	active map[int64]int         // agent → its outbound calls not yet ended
}

// NewOutboundGuard returns a guard, its counters registered on opts.Registerer.
func NewOutboundGuard(opts GuardOptions) (*OutboundGuard, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &OutboundGuard{
		opts:   opts,
		recent: map[int64][]time.Time{},
		active: map[int64]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_outbound_refused_total",
			Help: "Outbound calls (POST /calls) refused before dialling, by reason: destination_denied, destination_not_allowed, rate, concurrent.",
		}, []string{"reason"}),
		calls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_outbound_calls_total",
			Help: "Outbound calls (POST /calls) that passed the checks and went to the trunk.",
		}),
	}
	for _, r := range []string{RefusedDestinationDenied, RefusedDestinationNotAllowed, RefusedRate, RefusedConcurrent} {
		g.refused.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{g.refused, g.calls} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, errors.Join(errors.New("web: outbound guard: register"), err)
			}
		}
	}
	return g, nil
}

// Destination returns the reason an E.164 number may not be dialled, or "" when it may.
func (g *OutboundGuard) Destination(to string) string {
	allow, deny := longestPrefix(g.opts.Allow, to), longestPrefix(g.opts.Deny, to)
	switch {
	case deny > 0 && deny >= allow:
		return RefusedDestinationDenied
	case len(g.opts.Allow) > 0 && allow == 0:
		return RefusedDestinationNotAllowed
	}
	return ""
}

// longestPrefix is the length of the longest prefix in ps that starts s, 0 for none.
func longestPrefix(ps []string, s string) int {
	n := 0
	for _, p := range ps {
		if len(p) > n && strings.HasPrefix(s, p) {
			n = len(p)
		}
	}
	return n
}

// acquire takes one of the agent's call slots. It returns the function that gives it back
// (idempotent: call it when the call is over or was never placed), or the reason the agent
// may not dial now and, for the rate, how long until it may.
func (g *OutboundGuard) acquire(agentID int64) (release func(), reason string, retryAfter time.Duration) {
	now := g.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opts.MaxCalls > 0 && g.active[agentID] >= g.opts.MaxCalls {
		return nil, RefusedConcurrent, 0
	}
	if n := g.opts.CallsPerMinute; n > 0 {
		rs := g.recent[agentID]
		i := 0
		for i < len(rs) && now.Sub(rs[i]) >= time.Minute {
			i++
		}
		rs = rs[i:]
		if len(rs) >= n {
			g.recent[agentID] = rs
			return nil, RefusedRate, rs[0].Add(time.Minute).Sub(now)
		}
		g.recent[agentID] = append(rs, now)
	}
	g.active[agentID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.active[agentID]--; g.active[agentID] <= 0 {
				delete(g.active, agentID)
			}
		})
	}, "", 0
}

// refuse counts a refusal.
func (g *OutboundGuard) refuse(reason string) { g.refused.WithLabelValues(reason).Inc() }
