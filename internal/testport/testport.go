// Package testport finds free loopback ports for tests that start SIP peers (SIPp, baresip)
// and gateways: every peer gets an explicit port, never SIPp's default 5060.
package testport

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Peers' ports come from [PeerLow, PeerHigh): below the kernel's ephemeral range (32768–60999
// on Linux), so no socket of any process on the machine (a database connection, a resolver, a
// gateway's outbound leg) is handed one of them between our probe and the peer's bind. Asking
// the kernel for port 0 handed out exactly such ports: SIPp then exited 254 with "unable to
// bind" when another test's process took the port first (CI, TestEarlyMediaRelayed).
// Gateways' RTP ranges in tests come from FreeRange in [20000, 32000), above this band.
const (
	PeerLow  = 10000
	PeerHigh = 20000
)

// handed holds every peer-band port this test binary was given. A port is handed out before
// its peer binds it (SIPp binds when it runs), and a probe cannot see that: the phone's port of
// TestInternalLegAgentHangsUp, taken first, was handed again to the gateway started next, both
// bound it, and the gateway refused the phone's Contact as its own address (403, one CI run).
// So a port is never handed twice in one process. Tests-only package: the state is per
// process on purpose; the band (10,000 ports) is far wider than a test binary's use.
var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// claim marks ports [start, start+n) handed out, unless one of them already was.
func claim(start, n int) bool {
	handedMu.Lock()
	defer handedMu.Unlock()
	for p := start; p < start+n; p++ {
		if handed[p] {
			return false
		}
	}
	if !claimAcross(start, n, time.Now()) {
		return false
	}
	for p := start; p < start+n; p++ {
		handed[p] = true
	}
	return true
}

// registry is the file the test processes of one machine record their claims in: make test runs
// several at once (packages in parallel, then two shards of cmd/switchboard), and a port one
// process probed free and handed to a peer that had not bound it yet was handed by another
// process too (a cluster node's SIP port, "bind: address already in use", one CI run).
var registry = filepath.Join(os.TempDir(), "switchboard-testport.claims")

// claimTTL is how long a claim keeps a port from the other processes: the time between a
// port's probe and its peer's bind (a gateway's start on a loaded machine: a minute or two).
// After it the probe alone decides (a port in use is never free).
const claimTTL = 5 * time.Minute

// claimAcross records ports [start, start+n) in the registry under an exclusive flock, unless
// another process claimed one of them within claimTTL. Without a registry (a read-only temp
// directory) only this process's claims count.
func claimAcross(start, n int, now time.Time) bool {
	f, err := os.OpenFile(registry, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return true
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return true
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	b, err := io.ReadAll(f)
	if err != nil {
		return true
	}
	var live bytes.Buffer
	for line := range strings.Lines(string(b)) {
		port, at, ok := strings.Cut(strings.TrimSpace(line), " ")
		p, perr := strconv.Atoi(port)
		ts, terr := strconv.ParseInt(at, 10, 64)
		if !ok || perr != nil || terr != nil || now.Sub(time.Unix(ts, 0)) > claimTTL {
			continue // expired (or torn): dropped as the file is rewritten
		}
		if p >= start && p < start+n {
			return false
		}
		live.WriteString(line)
	}
	for p := start; p < start+n; p++ {
		fmt.Fprintf(&live, "%d %d\n", p, now.Unix())
	}
	if _, err := f.WriteAt(live.Bytes(), 0); err == nil {
		_ = f.Truncate(int64(live.Len()))
	}
	return true
}

// FreeUDP returns a port free on 127.0.0.1 for UDP and TCP (SIP listens on both) at the time
// of the call, drawn at random from the peer band, probed, and never handed out before in
// this process.
func FreeUDP(t testing.TB) int {
	t.Helper()
	for range 500 {
		port := PeerLow + rand.IntN(PeerHigh-PeerLow)
		if udpFree(port) && tcpFree(port) && claim(port, 1) {
			return port
		}
	}
	t.Fatal("testport: no free port in the peer band")
	return 0
}

// FreeMedia returns a port for SIPp's -mp: SIPp binds it for audio RTP, the next for its RTCP,
// and the two after for video, so all four must be free (a video port in use made SIPp exit
// with "Unable to bind video RTP socket").
func FreeMedia(t testing.TB) int {
	t.Helper()
	for range 500 {
		p := PeerLow + 2*rand.IntN((PeerHigh-PeerLow-4)/2)
		if rangeFree(p, 4) && claim(p, 4) {
			return p
		}
	}
	t.Fatal("testport: no four free ports in a row for SIPp's media")
	return 0
}

func udpFree(port int) bool {
	c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func tcpFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// FreeRange returns the first port of n ports in a row, from an even port in [lo, hi), all
// free on 127.0.0.1 for UDP at the time of the call: a gateway's RTP range. Other processes on
// the machine (a benchmark's gateway, another test's) may hold thousands of ports there, so
// starts are drawn at random and probed.
func FreeRange(t testing.TB, lo, hi, n int) int {
	t.Helper()
	span := (hi - lo - n) / 2
	if span <= 0 {
		t.Fatalf("testport: no room for %d ports in %d-%d", n, lo, hi)
	}
	for range 200 {
		start := lo + 2*rand.IntN(span)
		if rangeFree(start, n) {
			return start
		}
	}
	t.Fatalf("testport: no %d free UDP ports in a row in %d-%d", n, lo, hi)
	return 0
}

func rangeFree(start, n int) bool {
	for p := start; p < start+n; p++ {
		if !udpFree(p) {
			return false
		}
	}
	return true
}
