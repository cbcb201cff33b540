//go:build linux

package uring

import (
	"net"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is a ring of 8 entries, closed at the end of the test; the test is skipped where the
// kernel refuses io_uring (callers then send another way).
func ring(t *testing.T) *Ring {
	t.Helper()
	r, err := New(8)
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// sink is a UDP socket on loopback that the sends go to.
func sink(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// socketTo is a non-blocking UDP socket on loopback, connected to c when c is not nil.
func socketTo(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if c != nil {
		p := c.LocalAddr().(*net.UDPAddr).Port
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

// expect reads want from c, in any order, within a generous bound.
func expect(t *testing.T, c *net.UDPConn, want ...[]byte) {
	t.Helper()
	buf := make([]byte, 2048)
	left := map[string]bool{}
	for _, w := range want {
		left[string(w)] = true
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for range want {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (still waiting for %d)", err, len(left))
		}
		if !left[string(buf[:n])] {
			t.Fatalf("read %q, not one of the sends left", buf[:n])
		}
		delete(left, string(buf[:n]))
	}
}

// Rule: one Submit hands the kernel a batch of sends on different sockets — send(2) by
// descriptor, send(2) by registered file, sendmsg(2) with a destination — in one
// io_uring_enter(2), and each one's result (bytes sent) lands at its batch index.
func TestSubmitSendsABatchOnSeveralSocketsInOneEnter(t *testing.T) {
	r := ring(t)
	a, b := sink(t), sink(t)
	fa, fb, fc := socketTo(t, a), socketTo(t, b), socketTo(t, nil)
	if err := r.RegisterFiles([]int32{int32(fb)}); err != nil {
		t.Fatal(err)
	}
	if r.Files() != 1 {
		t.Fatalf("Files() = %d, want 1", r.Files())
	}
	one, two, three := []byte("one"), []byte("two!"), []byte("three")
	r.PrepSend(0, fa, one)
	r.PrepSendFixed(1, 0, two)
	to := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{127, 0, 0, 1}}
	port := b.LocalAddr().(*net.UDPAddr).Port
	to.Port = uint16(port>>8) | uint16(port&0xff)<<8 // network byte order
	iov := unix.Iovec{Base: &three[0]}
	iov.SetLen(len(three))
	msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&to)), Namelen: unix.SizeofSockaddrInet4, Iov: &iov, Iovlen: 1}
	r.PrepSendmsg(2, fc, &msg)
	res := make([]int32, 3)
	if errno := r.Submit(3, res); errno != 0 {
		t.Fatalf("Submit: %v", errno)
	}
	if want := []int32{3, 4, 5}; !slices.Equal(res, want) {
		t.Errorf("results %v, want %v", res, want)
	}
	if e, s := r.Enters(), r.Sends(); e != 1 || s != 3 {
		t.Errorf("%d enters for %d sends, want 1 for 3", e, s)
	}
	expect(t, a, one)
	expect(t, b, two, three)
}

// Rule: a send the kernel refuses completes with −errno at its own index; the others of the
// batch go, and the ring stays usable.
func TestSubmitARefusedSendFailsAloneAndTheRingGoesOn(t *testing.T) {
	r := ring(t)
	a := sink(t)
	fa, unconnected := socketTo(t, a), socketTo(t, nil)
	x, y := []byte("x"), []byte("y")
	for round := range 2 {
		r.PrepSend(0, unconnected, x) // no destination: EDESTADDRREQ
		r.PrepSend(1, fa, y)
		res := make([]int32, 2)
		if errno := r.Submit(2, res); errno != 0 {
			t.Fatalf("round %d: Submit: %v", round, errno)
		}
		if res[0] != -int32(syscall.EDESTADDRREQ) || res[1] != 1 {
			t.Errorf("round %d: results %v, want [%d 1]", round, res, -int32(syscall.EDESTADDRREQ))
		}
		expect(t, a, y)
	}
}

// BenchmarkSubmitSends sends a batch of 150 datagrams, each on its own connected socket (a
// generator's 1 ms slot at 1,500 calls), to sockets that discard them in the kernel, through
// one Submit: by descriptor, and by registered file. An op is one packet; cpu-ns/op is the
// process's user + system CPU (getrusage) per packet, the figure to read on a shared machine.
func BenchmarkSubmitSends(b *testing.B) {
	for _, fixed := range []bool{false, true} {
		name := "descriptors"
		if fixed {
			name = "registered"
		}
		b.Run(name, func(b *testing.B) { benchSubmit(b, fixed) })
	}
}

func benchSubmit(b *testing.B, fixed bool) {
	const legs = 150
	r, err := New(legs)
	if err != nil {
		b.Skipf("no io_uring here: %v", err)
	}
	defer r.Close()
	dropAll := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	prog := unix.SockFprog{Len: 1, Filter: &dropAll[0]}
	fds := make([]int32, legs)
	for i := range legs {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		rc, _ := c.SyscallConn()
		_ = rc.Control(func(fd uintptr) {
			err = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
		})
		if err != nil {
			b.Fatal(err)
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: c.LocalAddr().(*net.UDPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			b.Fatal(err)
		}
		fds[i] = int32(fd)
	}
	if fixed {
		if err := r.RegisterFiles(fds); err != nil {
			b.Fatal(err)
		}
	}
	pkt := make([]byte, 172)
	res := make([]int32, legs)
	cpu := func() int64 {
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	b.ResetTimer()
	cpu0 := cpu()
	for done := 0; done < b.N; {
		n := min(legs, b.N-done)
		for i := range n {
			if fixed {
				r.PrepSendFixed(uint32(i), i, pkt)
			} else {
				r.PrepSend(uint32(i), int(fds[i]), pkt)
			}
		}
		if errno := r.Submit(uint32(n), res[:n]); errno != 0 {
			b.Fatal(errno)
		}
		for _, v := range res[:n] {
			if v != int32(len(pkt)) {
				b.Fatalf("a send returned %d", v)
			}
		}
		done += n
	}
	b.ReportMetric(float64(cpu()-cpu0)/float64(b.N), "cpu-ns/op")
}
