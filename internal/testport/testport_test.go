package testport

import "testing"

// TestPortsAreNeverHandedTwice proves a port handed out but not yet bound by its peer is not
// handed again in the same process (the peer binds later: a probe alone would hand it twice).
func TestPortsAreNeverHandedTwice(t *testing.T) {
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
