package ticketing_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// fakeClock is a settable clock for the AuthGuard.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fromLoopback is an HTTP client whose connections leave from src (127.0.0.2, 127.0.0.3 …),
// standing for one attacker's address.
func fromLoopback(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
}

// basic sends GET /api/v2/users with HTTP Basic from client and returns the status and the
// Retry-After header.
func basic(t *testing.T, c *http.Client, base, email, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v2/users?per_page=1", nil)
	req.SetBasicAuth(email, pass)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After")
}

// Password guessing over HTTP Basic from several loopback addresses: each address may fail 3
// times, then waits (429 with Retry-After, no password checked — even the right one), the wait
// doubling; an account may fail 6 times from all addresses together, so spreading the guesses
// over more addresses does not help; every failure is a security event; once the wait is over
// the right password works and clears the count.
func TestBasicBruteForce_BackoffPerAddressAndAccount(t *testing.T) {
	e := newEnv(t)
	clock := &fakeClock{now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	var failures, throttled atomic.Int64
	guard := ticketing.NewAuthGuard(ticketing.AuthGuardOptions{
		Failures: 3, Initial: 2 * time.Second, Max: time.Minute, Now: clock.Now,
		SecurityEvent: func(typ string) {
			switch typ {
			case ticketing.SecHTTPAuthFailure:
				failures.Add(1)
			case ticketing.SecHTTPAuthThrottled:
				throttled.Add(1)
			}
		},
	})
	api := ticketing.NewAPI(e.store, ticketing.APIOptions{Guard: guard})
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	defer srv.Close()

	a2, a3, a4, a5 := fromLoopback("127.0.0.2"), fromLoopback("127.0.0.3"), fromLoopback("127.0.0.4"), fromLoopback("127.0.0.5")
	const victim = "agent1@example.com"
	for i := range 3 {
		if st, _ := basic(t, a2, srv.URL, victim, fmt.Sprintf("guess%d", i)); st != http.StatusUnauthorized {
			t.Fatalf("guess %d from 127.0.0.2: %d, want 401", i, st)
		}
	}
	// The address waits now: even the right password is refused unchecked.
	st, ra := basic(t, a2, srv.URL, victim, agentPass)
	if n, _ := strconv.Atoi(ra); st != http.StatusTooManyRequests || n < 1 || n > 2 {
		t.Fatalf("4th attempt from 127.0.0.2: %d Retry-After %q, want 429 and 2", st, ra)
	}
	// Another address is not held back by 127.0.0.2's wait …
	if st, _ := basic(t, a3, srv.URL, "admin@example.com", adminPass); st != http.StatusOK {
		t.Fatalf("the admin from 127.0.0.3: %d, want 200", st)
	}
	// … but the account is: 3 more failures from 127.0.0.3 make 6, and then the victim's
	// account waits whichever address asks.
	for i := range 3 {
		if st, _ := basic(t, a3, srv.URL, victim, fmt.Sprintf("more%d", i)); st != http.StatusUnauthorized {
			t.Fatalf("guess %d from 127.0.0.3: %d", i, st)
		}
	}
	if st, _ := basic(t, a4, srv.URL, victim, agentPass); st != http.StatusTooManyRequests {
		t.Fatalf("the victim's account from a fresh address 127.0.0.4: %d, want 429", st)
	}
	if got := failures.Load(); got != 6 {
		t.Errorf("http_auth_failure events: %d, want 6", got)
	}
	if throttled.Load() < 2 {
		t.Errorf("http_auth_throttled events: %d, want at least 2", throttled.Load())
	}
	// A further failure after the wait doubles it.
	clock.Add(2 * time.Second)
	if st, _ := basic(t, a2, srv.URL, victim, "again"); st != http.StatusUnauthorized {
		t.Fatalf("a guess after the wait: %d, want 401", st)
	}
	if st, ra := basic(t, a2, srv.URL, victim, agentPass); st != http.StatusTooManyRequests || ra != "4" {
		t.Fatalf("after a 4th failure: %d Retry-After %q, want 429 and 4 (doubled)", st, ra)
	}
	// Once the waits are over, the right password works and clears the counts.
	clock.Add(4 * time.Second)
	if st, _ := basic(t, a5, srv.URL, victim, agentPass); st != http.StatusOK {
		t.Fatalf("the right password after the backoff: %d, want 200", st)
	}
	if st, _ := basic(t, a2, srv.URL, victim, agentPass); st != http.StatusOK {
		t.Fatalf("the right password from 127.0.0.2 after the backoff: %d, want 200", st)
	}
}

// An unauthenticated HTTP Basic flood — 200 requests at once, right emails and unknown ones,
// from several addresses — never runs more than BcryptConcurrency bcrypt comparisons at once:
// the rest are refused at once with 429 and Retry-After, none is a 500, and the cores that
// carry RTP stay free.
func TestBasicFlood_BcryptConcurrencyBounded(t *testing.T) {
	e := newEnv(t)
	var inFlight, peak, calls atomic.Int64
	store := ticketing.NewStore(e.store.Pool(), ticketing.StoreOptions{BcryptCost: bcrypt.MinCost, BcryptConcurrency: 2,
		CompareHash: func(hash, pw []byte) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			calls.Add(1)
			time.Sleep(5 * time.Millisecond) // a real cost-10 bcrypt takes ~50 ms
			return bcrypt.CompareHashAndPassword(hash, pw)
		}})
	api := ticketing.NewAPI(store, ticketing.APIOptions{}) // no backoff: the slots alone must hold
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	defer srv.Close()

	clients := []*http.Client{fromLoopback("127.0.0.2"), fromLoopback("127.0.0.3"), fromLoopback("127.0.0.4"), fromLoopback("127.0.0.5")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := "agent1@example.com"
			if i%2 == 1 {
				email = fmt.Sprintf("nobody%d@example.com", i)
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v2/users?per_page=1", nil)
			req.SetBasicAuth(email, fmt.Sprintf("flood%d", i))
			res, err := clients[i%len(clients)].Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") != "1" {
				t.Errorf("429 without Retry-After: 1: %v", res.Header)
			}
			mu.Lock()
			statuses[res.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 2 || p < 1 {
		t.Errorf("bcrypt comparisons at once: peak %d, want at most 2 (and some)", p)
	}
	if statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != 200 {
		t.Errorf("statuses %v: want only 401 and 429", statuses)
	}
	t.Logf("statuses %v, %d bcrypt comparisons, peak %d at once", statuses, calls.Load(), peak.Load())
}
