package ticketing

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// A spoofed X-Forwarded-For must not let an attacker choose the address its failures count
// against: only a trusted proxy's header is read, from the right, skipping trusted hops.
func TestClientAddr_XForwardedForOnlyFromTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		remote, xff, want string
	}{
		{"203.0.113.9:4000", "1.2.3.4", "203.0.113.9"},                       // not a proxy: header ignored
		{"10.0.0.2:4000", "198.51.100.7", "198.51.100.7"},                    // the proxy names the client
		{"10.0.0.2:4000", "1.2.3.4, 198.51.100.7, 10.0.0.3", "198.51.100.7"}, // rightmost untrusted
		{"10.0.0.2:4000", "garbage", "10.0.0.2"},
		{"10.0.0.2:4000", "", "10.0.0.2"},
		{"[::ffff:203.0.113.9]:4000", "", "203.0.113.9"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ClientAddr(r, trusted).String(); got != c.want {
			t.Errorf("%s with X-Forwarded-For %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

// A guesser rotating through fresh addresses (an IPv6 /48 has 65536 /64s) cannot grow the
// guard's memory without bound; addresses in one /64 count together.
func TestAuthGuard_FreshAddressFloodStaysBounded(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	g := NewAuthGuard(AuthGuardOptions{MaxEntries: 100, Now: func() time.Time { return now }, Logger: discardLogger()})
	for i := range 5000 {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = fmt.Sprintf("[2001:db8:%x::1]:5060", i)
		g.Failed(r, fmt.Sprintf("user%d@example.com", i))
	}
	if n := len(g.entries); n > 100 {
		t.Fatalf("%d entries, want at most 100", n)
	}
	g = NewAuthGuard(AuthGuardOptions{Failures: 3, Now: func() time.Time { return now }, Logger: discardLogger()})
	for i := range 3 {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = fmt.Sprintf("[2001:db8:1:2::%x]:5060", i+1)
		g.Failed(r, "")
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "[2001:db8:1:2::ffff]:5060"
	if err := g.Check(r, ""); err == nil {
		t.Fatal("three addresses of one /64 are not counted together")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
