// Package testport finds free loopback ports for tests that start SIP peers (SIPp, baresip)
// and gateways: every peer gets an explicit port, never SIPp's default 5060.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreeUDP returns a port free on 127.0.0.1 for UDP and TCP (SIP listens on both) at the time
// of the call.
func FreeUDP(t testing.TB) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// FreeMedia returns a port for SIPp's -mp: SIPp binds it for audio RTP, the next for its RTCP,
// and the two after for video, so all four must be free (a video port in use made SIPp exit
// with "Unable to bind video RTP socket").
func FreeMedia(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := FreeUDP(t)
		if p%2 == 1 || p > 65531 {
			continue
		}
		free := true
		for i := 1; i < 4 && free; i++ {
			c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				free = false
				continue
			}
			c.Close()
		}
		if free {
			return p
		}
	}
	t.Fatal("no four free ports in a row for SIPp's media")
	return 0
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
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}
