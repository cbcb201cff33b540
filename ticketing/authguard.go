package ticketing

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Security event types an AuthGuard reports (switchboard_security_events_total{type}).
const (
	// SecHTTPAuthFailure is a wrong email or password on /login or HTTP Basic, or an unknown,
	// expired or revoked API token.
	SecHTTPAuthFailure = "http_auth_failure"
	// SecHTTPAuthThrottled is a password check refused without being made: the client or the
	// account is waiting out its backoff, or every bcrypt slot is busy.
	SecHTTPAuthThrottled = "http_auth_throttled"
)

// AuthGuardOptions configure NewAuthGuard; zero values take the documented defaults.
type AuthGuardOptions struct {
	// Failures is how many failures in a row a client address may make before it must wait
	// (0 takes DefaultAuthFailures, 5); an account may fail twice as often, from all
	// addresses together.
	Failures int
	// Initial is the first wait (0 takes DefaultAuthBackoffInitial, 1 s), doubled by each
	// further failure up to Max (below Initial: DefaultAuthBackoffMax, 15 min). Failures are
	// forgotten after Max without one. The guard cannot be off.
	Initial, Max time.Duration
	// TrustedProxies are reverse proxies whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
	// MaxEntries bounds the addresses and accounts remembered (default 65536); when full,
	// forgotten entries go first, then arbitrary ones.
	MaxEntries int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SecurityEvent counts one security event of type typ (SecHTTPAuthFailure,
	// SecHTTPAuthThrottled); called with no lock held, it must not block. Nil: not counted.
	SecurityEvent func(typ string)
	// Logger receives one "http: security event" line per failure (throttled refusals at
	// most once a second), with the client's address for fail2ban. Nil: slog.Default().
	Logger *slog.Logger
}

// AuthGuard slows password guessing on /login and HTTP Basic down: per client address and per
// account, after a few failures in a row every further attempt must wait, the wait doubling
// with each failure (exponential backoff, as fail2ban's bantime.increment or Kamailio's pike
// with htable do it). An attempt during a wait is refused with ErrTooManyRequests — answered
// 429 with Retry-After — before any password is checked, so a guesser spends no CPU of ours.
// A success clears the address's and the account's count. IPv6 clients are counted by /64,
// the block one subscriber gets. A nil *AuthGuard lets everything through. Safe for
// concurrent use.
type AuthGuard struct {
	opts    AuthGuardOptions
	log     *slog.Logger
	lastLog atomic.Int64 // unix nanos of the last throttled log line

	mu      sync.Mutex // guards entries; nothing is called while it is held
	entries map[string]*backoff
}

type backoff struct {
	failures int
	last     time.Time // last failure
	until    time.Time // no attempt before this
}

// NewAuthGuard returns an AuthGuard.
// Defaults of AuthGuardOptions; the configuration's http.auth_backoff defaults are these.
const (
	DefaultAuthFailures       = 5
	DefaultAuthBackoffInitial = time.Second
	DefaultAuthBackoffMax     = 15 * time.Minute
)

func NewAuthGuard(opts AuthGuardOptions) *AuthGuard {
	if opts.Failures <= 0 {
		opts.Failures = DefaultAuthFailures
	}
	if opts.Initial <= 0 {
		opts.Initial = DefaultAuthBackoffInitial
	}
	if opts.Max < opts.Initial {
		opts.Max = DefaultAuthBackoffMax
		if opts.Max < opts.Initial {
			opts.Max = opts.Initial
		}
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 65536
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &AuthGuard{opts: opts, log: log, entries: map[string]*backoff{}}
}

// Source is r's client address: the TCP peer, or — when the peer is a trusted proxy — the
// rightmost address of X-Forwarded-For that is not a trusted proxy (the leftmost ones are
// whatever the client wrote).
func (g *AuthGuard) Source(r *http.Request) netip.Addr {
	var trusted []netip.Prefix
	if g != nil {
		trusted = g.opts.TrustedProxies
	}
	return ClientAddr(r, trusted)
}

// ClientAddr is r's client address given the trusted proxies (see AuthGuard.Source); the
// zero Addr when RemoteAddr cannot be read.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		a, err := netip.ParseAddr(strings.Trim(h, "[]"))
		if err != nil {
			return addr // garbage from here on: the last proxy is all we know
		}
		a = a.Unmap()
		if !isTrusted(a) {
			return a
		}
		addr = a
	}
	return addr
}

// keys are the address's and the account's entries.
func (g *AuthGuard) keys(r *http.Request, account string) (src netip.Addr, ipKey, acctKey string) {
	src = g.Source(r)
	k := src
	if k.Is6() {
		if p, err := k.Prefix(64); err == nil {
			k = p.Addr()
		}
	}
	ipKey = "ip " + k.String()
	if account = normalAccount(account); account != "" {
		acctKey = "account " + account
	}
	return src, ipKey, acctKey
}

// normalAccount is the account as counted: lower-case, trimmed, bounded.
func normalAccount(a string) string {
	a = strings.ToLower(strings.TrimSpace(a))
	if len(a) > 254 {
		a = a[:254]
	}
	return a
}

// Check returns nil when r may try the account's password now, or an *Error of kind
// ErrTooManyRequests with the wait in RetryAfter (counted and logged as throttled).
func (g *AuthGuard) Check(r *http.Request, account string) error {
	if g == nil {
		return nil
	}
	src, ipKey, acctKey := g.keys(r, account)
	now := g.opts.Now()
	var wait time.Duration
	g.mu.Lock()
	for _, k := range []string{ipKey, acctKey} {
		if e := g.entries[k]; e != nil && now.Before(e.until) {
			wait = max(wait, e.until.Sub(now))
		}
	}
	g.mu.Unlock()
	if wait == 0 {
		return nil
	}
	g.throttled(src, r, account, "too many failed logins: wait before trying again")
	return &Error{Kind: ErrTooManyRequests, RetryAfter: wait,
		Description: "too many failed logins from this address or for this account: wait before trying again"}
}

// Failed counts a wrong password (or token) for r's address and the account, and reports it
// as a security event with a log line naming the source.
func (g *AuthGuard) Failed(r *http.Request, account string) {
	if g == nil {
		return
	}
	src, ipKey, acctKey := g.keys(r, account)
	now := g.opts.Now()
	g.mu.Lock()
	g.fail(ipKey, g.opts.Failures, now)
	if acctKey != "" {
		g.fail(acctKey, 2*g.opts.Failures, now)
	}
	g.mu.Unlock()
	if g.opts.SecurityEvent != nil {
		g.opts.SecurityEvent(SecHTTPAuthFailure)
	}
	g.log.Warn("http: security event", "security_event", SecHTTPAuthFailure, "source", src.String(),
		"method", r.Method, "path", cleanLog(r.URL.Path), "account", cleanLog(normalAccount(account)),
		"user_agent", cleanLog(r.UserAgent()), "detail", "wrong email, password or API token")
}

// fail counts one failure on key; g.mu is held.
func (g *AuthGuard) fail(key string, free int, now time.Time) {
	e := g.entries[key]
	if e == nil {
		if len(g.entries) >= g.opts.MaxEntries {
			g.evict(now)
		}
		e = &backoff{}
		g.entries[key] = e
	}
	if now.Sub(e.last) > g.opts.Max {
		e.failures = 0 // forgotten
	}
	e.failures++
	e.last = now
	if e.failures >= free {
		wait := g.opts.Initial
		for i := free; i < e.failures && wait < g.opts.Max; i++ {
			wait *= 2
		}
		e.until = now.Add(min(wait, g.opts.Max))
	}
}

// evict makes room: entries forgotten by now go, and if none was, an arbitrary tenth (map
// order) — a flood of fresh addresses must not grow memory without bound.
func (g *AuthGuard) evict(now time.Time) {
	for k, e := range g.entries {
		if now.Sub(e.last) > g.opts.Max && !now.Before(e.until) {
			delete(g.entries, k)
		}
	}
	n := len(g.entries) / 10
	for k := range g.entries {
		if len(g.entries) < g.opts.MaxEntries || n <= 0 {
			break
		}
		delete(g.entries, k)
		n--
	}
}

// TokenFailed reports an unknown, expired or revoked API token as a security event. It does
// not count towards the backoff: a 256-bit token cannot be guessed, and a script with an
// expired token must keep getting its 401, not a 429.
func (g *AuthGuard) TokenFailed(r *http.Request) {
	if g == nil {
		return
	}
	if g.opts.SecurityEvent != nil {
		g.opts.SecurityEvent(SecHTTPAuthFailure)
	}
	g.log.Warn("http: security event", "security_event", SecHTTPAuthFailure, "source", g.Source(r).String(),
		"method", r.Method, "path", cleanLog(r.URL.Path), "user_agent", cleanLog(r.UserAgent()),
		"detail", "unknown, expired or revoked API token")
}

// Succeeded clears r's address's and the account's failures.
func (g *AuthGuard) Succeeded(r *http.Request, account string) {
	if g == nil {
		return
	}
	_, ipKey, acctKey := g.keys(r, account)
	g.mu.Lock()
	delete(g.entries, ipKey)
	if acctKey != "" {
		delete(g.entries, acctKey)
	}
	g.mu.Unlock()
}

// Busy reports a password check refused because every bcrypt slot was taken.
func (g *AuthGuard) Busy(r *http.Request, account string) {
	if g == nil {
		return
	}
	g.throttled(g.Source(r), r, account, "every password check slot is busy")
}

// throttled counts a refused attempt and logs it at most once a second (a flood is what it is
// about; the counter has every one).
func (g *AuthGuard) throttled(src netip.Addr, r *http.Request, account, detail string) {
	if g.opts.SecurityEvent != nil {
		g.opts.SecurityEvent(SecHTTPAuthThrottled)
	}
	now := g.opts.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(time.Second) || !g.lastLog.CompareAndSwap(last, now) {
		return
	}
	g.log.Warn("http: security event", "security_event", SecHTTPAuthThrottled, "source", src.String(),
		"method", r.Method, "path", cleanLog(r.URL.Path), "account", cleanLog(normalAccount(account)),
		"user_agent", cleanLog(r.UserAgent()), "detail", detail)
}

// cleanLog bounds a client's string for a log line and drops control characters.
func cleanLog(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
