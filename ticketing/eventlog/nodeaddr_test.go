package eventlog_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// Each node records where it takes internal INVITEs; another node reads it (the cluster's
// internal leg): a node without one is ErrNoInternalSIP; an address read is kept for the TTL,
// read again after it (a node restarted with another address is found), and, while the
// database is away, the last one read is still given.
func TestNodeAddressesReadWhatEachNodeRecorded(t *testing.T) {
	dbURL := pgtest.URL(t)
	p, pool := pgtest.ProxiedPoolTo(t, dbURL)
	ctx := context.Background()
	for _, n := range []string{"node-a", "node-b"} {
		if err := eventlog.RecordNode(ctx, pool, n, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventlog.RecordNodeInternalSIP(ctx, pool, "node-b", "127.0.0.1:5072"); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	addrs := eventlog.NewNodeAddresses(pool, time.Minute, now)
	lookup := func(name string) (string, error) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return addrs.InternalSIP(c, name)
	}
	if a, err := lookup("node-b"); err != nil || a != "127.0.0.1:5072" {
		t.Fatalf("node-b: %q, %v", a, err)
	}
	if _, err := lookup("node-a"); !errors.Is(err, eventlog.ErrNoInternalSIP) {
		t.Errorf("node-a (no internal leg): %v, want ErrNoInternalSIP", err)
	}
	if _, err := lookup("node-z"); !errors.Is(err, eventlog.ErrNoInternalSIP) {
		t.Errorf("unknown node: %v, want ErrNoInternalSIP", err)
	}
	// node-b restarts with another address: the old one is kept for the TTL, then read anew.
	if err := eventlog.RecordNodeInternalSIP(ctx, pool, "node-b", "127.0.0.1:5073"); err != nil {
		t.Fatal(err)
	}
	if a, _ := lookup("node-b"); a != "127.0.0.1:5072" {
		t.Errorf("node-b within the TTL: %q, want the address read before", a)
	}
	clock.Add(int64(2 * time.Minute))
	if a, _ := lookup("node-b"); a != "127.0.0.1:5073" {
		t.Errorf("node-b after the TTL: %q, want the new address", a)
	}
	// The database goes away: the last address read still serves.
	p.Down()
	clock.Add(int64(2 * time.Minute))
	if a, err := lookup("node-b"); err != nil || a != "127.0.0.1:5073" {
		t.Errorf("node-b with the database away: %q, %v; want the last address read", a, err)
	}
	p.Up()
}
