//go:build linux

package uring

import (
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recvRing is a receive ring owned by the test's goroutine, locked to its thread until the
// test ends; skipped where the kernel lacks what it needs.
func recvRing(t *testing.T, nbufs uint16) *RecvRing {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	rr, err := NewRecv(64, 256, nbufs, 1500)
	if err != nil {
		t.Skipf("no multishot receive ring here: %v", err)
	}
	t.Cleanup(rr.Close)
	return rr
}

// boundSocket is a non-blocking UDP socket bound to an ephemeral port of 127.0.0.1.
func boundSocket(t *testing.T) (int, int) {
	t.Helper()
	fd := socketTo(t, nil)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port
}

// reapAll enters until want completions came or the bound passed.
func reapAll(t *testing.T, rr *RecvRing, want int) []Completion {
	t.Helper()
	var got []Completion
	buf := make([]Completion, 64)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		if errno := rr.Enter(); errno != 0 {
			t.Fatalf("enter: %v", errno)
		}
		n := rr.Reap(buf)
		got = append(got, buf[:n]...)
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if len(got) < want {
		t.Fatalf("%d completions, want %d: %+v", len(got), want, got)
	}
	return got
}

// Rule: one multishot receive per socket delivers every datagram of several sockets, with its
// source and its bytes, in one Enter; datagrams that arrive while the owner waits in the ring
// end its Wait (not its timeout); a cancelled receive ends with a completion without More,
// after which nothing more comes for it.
func TestRecvRingReceivesManySocketsInOneEnterAndCancels(t *testing.T) {
	rr := recvRing(t, 16)
	fds := make([]int, 3)
	ports := make([]int, 3)
	for i := range fds {
		fds[i], ports[i] = boundSocket(t)
		rr.PrepRecv(fds[i], uint64(100+i))
	}
	if errno := rr.Enter(); errno != 0 {
		t.Fatalf("enter: %v", errno)
	}
	if n := rr.Reap(make([]Completion, 8)); n != 0 {
		t.Fatalf("%d completions before any datagram", n)
	}
	from, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	for i, p := range ports {
		for k := range 2 {
			if _, err := from.WriteToUDP([]byte{byte(i), byte(k), 'x'}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !rr.Wait(time.Minute) {
		t.Fatal("Wait ended without a completion with datagrams waiting")
	}
	got := reapAll(t, rr, 6)
	src := from.LocalAddr().(*net.UDPAddr).AddrPort()
	seen := map[[2]byte]bool{}
	for _, c := range got {
		id, ok := c.Buffer()
		if !ok || !c.More() || c.Res < 0 {
			t.Fatalf("completion %+v: want a buffer and More", c)
		}
		b, from, trunc := rr.Datagram(id, c.Res)
		if trunc || len(b) != 3 || from.Addr().Unmap() != src.Addr() || from.Port() != src.Port() {
			t.Fatalf("datagram %q from %v (truncated %v), want 3 bytes from %v", b, from, trunc, src)
		}
		if uint64(100+int(b[0])) != c.UserData {
			t.Fatalf("datagram for socket %d came with user data %d", b[0], c.UserData)
		}
		seen[[2]byte{b[0], b[1]}] = true
		rr.Recycle(id)
	}
	if len(seen) != 6 {
		t.Fatalf("distinct datagrams %d, want 6", len(seen))
	}
	// Cancel socket 1's receive: its last completion has no More.
	rr.PrepCancel(101, 999)
	got = reapAll(t, rr, 2)
	var ended, cancelled bool
	for _, c := range got {
		switch c.UserData {
		case 101:
			ended = !c.More() && errors.Is(unix.Errno(-c.Res), unix.ECANCELED)
		case 999:
			cancelled = c.Res == 0
		}
	}
	if !ended || !cancelled {
		t.Fatalf("cancel: %+v", got)
	}
	if _, err := from.WriteToUDP([]byte{1, 5, 'x'}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ports[1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := from.WriteToUDP([]byte{2, 5, 'x'}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ports[2]}); err != nil {
		t.Fatal(err)
	}
	got = reapAll(t, rr, 1)
	time.Sleep(20 * time.Millisecond)
	got = append(got, reapAll(t, rr, 0)...)
	for _, c := range got {
		if c.UserData == 101 {
			t.Fatalf("a completion for the cancelled receive: %+v", c)
		}
	}
}

// Rule: when the buffers run out, the receive ends with ENOBUFS (no More) and loses no datagram:
// armed again once buffers are back, it receives what stayed queued on the socket.
func TestRecvRingOutOfBuffersEndsTheReceiveAndLosesNothing(t *testing.T) {
	rr := recvRing(t, 4)
	fd, port := boundSocket(t)
	rr.PrepRecv(fd, 7)
	if errno := rr.Enter(); errno != 0 {
		t.Fatal(errno)
	}
	from, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	const sent = 10
	for k := range sent {
		if _, err := from.WriteToUDP([]byte{byte(k)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	buf := make([]Completion, 16)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < sent && time.Now().Before(deadline) {
		if errno := rr.Enter(); errno != 0 {
			t.Fatal(errno)
		}
		n := rr.Reap(buf)
		for _, c := range buf[:n] {
			if id, ok := c.Buffer(); ok && c.Res >= 0 {
				b, _, _ := rr.Datagram(id, c.Res)
				got = append(got, b[0])
				rr.Recycle(id)
			}
			if !c.More() {
				if !errors.Is(unix.Errno(-c.Res), unix.ENOBUFS) && c.Res < 0 {
					t.Fatalf("receive ended with %v", unix.Errno(-c.Res))
				}
				rr.PrepRecv(fd, 7)
			}
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if len(got) != sent {
		t.Fatalf("received %v, want %d datagrams", got, sent)
	}
	for k, b := range got {
		if int(b) != k {
			t.Fatalf("received %v: out of order", got)
		}
	}
}

// Rule: one Enter receives the datagrams of a whole round of sockets — 100 sockets with one
// datagram each, the round of a poll loop at 1,000 calls — not the kernel's default of 20
// sockets' deferred work an enter; and no more than a batch (an eighth of the buffers).
func TestRecvRingEnterReceivesARoundOfSocketsAtOnce(t *testing.T) {
	rr := recvRing(t, 1024)
	if rr.Batch() != 128 {
		t.Fatalf("batch %d with 1,024 buffers, want 128", rr.Batch())
	}
	from, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	const sockets = 100
	var ports []int
	for i := range sockets {
		fd, p := boundSocket(t)
		ports = append(ports, p)
		if rr.Room() == 0 {
			if errno := rr.Enter(); errno != 0 {
				t.Fatal(errno)
			}
		}
		rr.PrepRecv(fd, uint64(i))
	}
	if errno := rr.Enter(); errno != 0 {
		t.Fatal(errno)
	}
	for _, p := range ports {
		if _, err := from.WriteToUDP([]byte{1}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}); err != nil {
			t.Fatal(err)
		}
	}
	// On loopback each datagram is queued on its socket inside the send that wrote it.
	buf := make([]Completion, 512)
	if errno := rr.Enter(); errno != 0 {
		t.Fatal(errno)
	}
	if n := rr.Reap(buf); n != sockets {
		t.Fatalf("one enter received %d datagrams, want %d", n, sockets)
	}
	// 3 more datagrams on each socket: a socket's receive takes all it has queued.
	for _, p := range ports {
		for range 3 {
			if _, err := from.WriteToUDP([]byte{2}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if errno := rr.Enter(); errno != 0 {
		t.Fatal(errno)
	}
	if n := rr.Reap(buf); n < 100 || n > 3*100 {
		t.Fatalf("one enter received %d datagrams of 100 sockets with 3 each, want between 100 and 300", n)
	}
}

// Rule: a Wait with nothing to do ends on its timeout (false); a poll armed on an eventfd ends
// a Wait when another goroutine writes the eventfd — the way a ring's owner is woken for
// requests — and stays armed for the next write (its completion carries More).
func TestRecvRingWaitEndsOnAPolledEventfdOrItsTimeout(t *testing.T) {
	rr := recvRing(t, 16)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	rr.PrepPoll(efd, 42)
	if rr.Wait(10 * time.Millisecond) {
		t.Fatalf("Wait with nothing to do reported a completion: %+v", reapAll(t, rr, 0))
	}
	for round := range 2 {
		go func() {
			time.Sleep(20 * time.Millisecond) // the writer comes while the owner waits
			one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
			unix.Write(efd, one)
		}()
		if !rr.Wait(time.Minute) {
			t.Fatalf("round %d: Wait ended without a completion after the eventfd was written", round)
		}
		got := reapAll(t, rr, 1)
		if len(got) != 1 || got[0].UserData != 42 || !got[0].More() || got[0].Res&unix.POLLIN == 0 {
			t.Fatalf("round %d: completions %+v, want the poll's (42, POLLIN, More)", round, got)
		}
		var b [8]byte
		unix.Read(efd, b[:])
	}
}
