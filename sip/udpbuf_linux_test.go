//go:build linux

package sip

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSIPSocketGetsTheReceiveQueueItAsks proves the SIP socket's receive queue is raised from
// the kernel's default to udpReceiveBuffer (or net.core.rmem_max, without CAP_NET_ADMIN).
func TestSIPSocketGetsTheReceiveQueueItAsks(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got, err := sizeUDPReceiveBuffer(pc, udpReceiveBuffer)
	if err != nil {
		t.Fatal(err)
	}
	want := udpReceiveBuffer
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil && got < want {
		// Without CAP_NET_ADMIN the kernel grants at most rmem_max.
		if max, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && max < want {
			want = max
		}
	}
	if got < want {
		t.Fatalf("receive queue %d bytes, want at least %d", got, want)
	}
}

// TestUDPDropsCountsWhatAFullQueueLost proves udpDrops reads the kernel's count of datagrams
// a full receive queue dropped (the switchboard_sip_udp_receive_drops_total counter).
func TestUDPDropsCountsWhatAFullQueueLost(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.(*net.UDPConn).SetReadBuffer(2048); err != nil { // the kernel's minimum: a few datagrams
		t.Fatal(err)
	}
	if n, ok := udpDrops(pc); !ok || n != 0 {
		t.Fatalf("a new socket: drops %d (ok %v), want 0", n, ok)
	}
	out, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	const sent = 200
	msg := make([]byte, 500)
	for range sent {
		if _, err := out.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	// Loopback delivers within the write; nothing reads pc, so all but a few are dropped.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, ok := udpDrops(pc)
		if !ok {
			t.Fatal("SO_MEMINFO not readable")
		}
		if n > sent/2 && n <= sent {
			return
		}
		if n > sent || time.Now().After(deadline) {
			t.Fatalf("drops %d after %d datagrams into a full queue", n, sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
