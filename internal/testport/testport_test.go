package testport

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPortsAreNeverHandedTwice proves a port handed out but not yet bound by its peer is not
// handed again in the same process (the peer binds later: a probe alone would hand it twice).
func TestPortsAreNeverHandedTwice(t *testing.T) {
	old := registry // its 1,500 claims must not keep the ports from the other test processes
	registry = filepath.Join(t.TempDir(), "claims")
	t.Cleanup(func() { registry = old })
	seen := map[int]bool{}
	for range 300 {
		p := FreeUDP(t)
		if seen[p] {
			t.Fatalf("port %d handed twice", p)
		}
		seen[p] = true
		m := FreeMedia(t)
		for q := m; q < m+4; q++ {
			if seen[q] {
				t.Fatalf("media port %d handed twice", q)
			}
			seen[q] = true
		}
	}
}

// A port another test process claimed a moment ago (the registry file they share) is not
// handed out here, and stops counting after claimTTL; the rewrite drops expired claims.
func TestClaimsOfOtherProcessesAreRespectedUntilTheyExpire(t *testing.T) {
	old := registry
	registry = filepath.Join(t.TempDir(), "claims")
	t.Cleanup(func() { registry = old })
	now := time.Now()
	other := fmt.Sprintf("%d %d\n%d %d\n", 15000, now.Add(-time.Minute).Unix(), 15010, now.Add(-claimTTL-time.Minute).Unix())
	if err := os.WriteFile(registry, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	if claimAcross(14998, 4, now) {
		t.Error("ports 14998-15001 handed out although another process claimed 15000 a minute ago")
	}
	if !claimAcross(15010, 1, now) {
		t.Error("port 15010 refused although its claim expired")
	}
	if claimAcross(15010, 1, now) {
		t.Error("port 15010 handed out twice")
	}
	b, err := os.ReadFile(registry)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != fmt.Sprintf("%d %d\n%d %d\n", 15000, now.Add(-time.Minute).Unix(), 15010, now.Unix()) {
		t.Errorf("registry after the claims:\n%s", got)
	}
}
