//go:build linux

package media

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// epollWatchers counts, for every descriptor of this process, the epoll instances that watch
// it, from /proc/self/fdinfo (an epoll's fdinfo lists a "tfd:" line per watched descriptor).
func epollWatchers(t *testing.T) map[int]int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := map[int]int{}
	for _, d := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", d.Name()))
		if err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		f, err := os.Open(filepath.Join("/proc/self/fdinfo", d.Name()))
		if err != nil {
			continue // closed meanwhile (another test's loop)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "tfd:" {
				if fd, err := strconv.Atoi(fields[1]); err == nil {
					n[fd]++
				}
			}
		}
		f.Close()
	}
	return n
}

// Proves: an endpoint's RTP and RTCP sockets are watched by exactly one epoll instance — its
// poll loop's, or where a multishot receive ring reads them the ring loop's park set — and not also by the Go runtime's netpoller, which would take every datagram
// received and every send's wake-up onto a ready list that nobody reads (the scheduler and
// sysmon drain it, re-polling each socket: BENCHMARKS.md, "Session 12: the media sockets
// outside the runtime's netpoller"). With the sockets opened through the net package each
// was watched twice.
func TestEndpointSocketsAreWatchedOnlyByTheirPollLoop(t *testing.T) {
	alloc := testAllocator(t, 8)
	var eps []*Endpoint
	for range 3 {
		eps = append(eps, newTestEndpoint(t, EndpointOptions{Allocator: alloc}))
	}
	watchers := epollWatchers(t)
	want, whose := 1, "its poll loop's"
	if alloc.rx.ringLoops() > 0 {
		whose = "its ring loop's park set"
	}
	for i, e := range eps {
		for _, s := range []*Socket{e.ports.RTP, e.ports.RTCP} {
			fd := s.descriptor()
			if got := watchers[fd]; got != want {
				t.Errorf("endpoint %d: socket %s (descriptor %d) is watched by %d epoll instances, want %d (%s)",
					i, s.LocalAddrPort(), fd, got, want, whose)
			}
		}
	}
	// And after Close the descriptors are gone from every epoll (and closed).
	var closed []int
	for _, e := range eps {
		closed = append(closed, e.ports.RTP.descriptor(), e.ports.RTCP.descriptor())
		e.Close()
	}
	after := epollWatchers(t)
	for _, fd := range closed {
		if _, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil {
			continue // the number was reused by another test's descriptor: nothing to say
		}
		if after[fd] != 0 {
			t.Errorf("closed descriptor %d still watched by %d epoll instances", fd, after[fd])
		}
	}
}

// Proves: a Socket closed while RTCP reports are being written through it is never written
// through after Close returned (its descriptor number may be reused at once): every write after
// Close returns os.ErrClosed, and -race sees the descriptor guarded. Loops the race.
func TestSocketWriteRacingCloseNeverUsesAClosedDescriptor(t *testing.T) {
	alloc := testAllocator(t, 4)
	p := newPeer(t)
	for range 200 {
		pp, err := alloc.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			close(started)
			for {
				if _, err := pp.RTCP.WriteToUDPAddrPort([]byte{0x80, 0xc9, 0, 1, 0, 0, 0, 1}, p.addr()); errors.Is(err, os.ErrClosed) {
					done <- nil
					return
				} else if err != nil && !errors.Is(err, unix.EAGAIN) {
					done <- err
					return
				}
			}
		}()
		<-started
		alloc.Release(pp)
		if _, err := pp.RTCP.WriteToUDPAddrPort([]byte{0}, p.addr()); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("write after Close: %v, want os.ErrClosed", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("write racing Close: %v", err)
		}
	}
}
