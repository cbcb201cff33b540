package media

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// receiveRearms counts the multishot receives armed again after they ended without an unwatch
// (recvring_linux.go): a loop that ran out of receive buffers, or a socket error.
// switchboard_media_receive_rearms_total.
var receiveRearms atomic.Uint64

// A media poll loop's stalls: rounds of a busy loop (one that did not park) that began more
// than stallAfter after the previous one began — its thread did not run, or did not get the
// runtime's processor, or a handler held it, for that long, and a datagram of its sockets may
// have waited as long.
// switchboard_media_loop_stalls_total and switchboard_media_loop_stall_seconds_total (the
// stalls' whole length). A parked loop's wake-up is not measured here: a datagram that waited
// for it shows as a late arrival (switchboard_rtp_late_arrivals_total, stats.go).
var (
	loopStalls     atomic.Uint64
	loopStallNanos atomic.Uint64
)

const stallAfter = 50 * time.Millisecond

// ringMissedWakeups counts the rounds a parked ring loop made when its wait ended on parkMax
// and in which it found datagrams nothing had woken it for (recvring_linux.go).
// switchboard_media_ring_missed_wakeups_total.
var ringMissedWakeups atomic.Uint64

// stallCheck counts a stall when a busy loop's round began at now and its last one began at
// last (zero: it parked since, or had no round yet).
func stallCheck(last, now time.Time) {
	if last.IsZero() {
		return
	}
	if gap := now.Sub(last); gap > stallAfter {
		loopStalls.Add(1)
		loopStallNanos.Add(uint64(gap))
	}
}

// handler handles one datagram received on a watched socket, on the socket's reader. tx is the
// reader's send batch: what the handler forwards joins it and goes out when the reader flushes
// it, after the datagrams of the same read (nil: sent at once; see txBatch).
type handler func(b []byte, src netip.AddrPort, at time.Time, tx *txBatch)

// ReceiveEnv names the environment variable that, set to "epoll", makes the media plane receive
// with epoll and recvmmsg(2) rather than through a multishot io_uring per poll loop, the default
// where the kernel has it (Linux 6.1 and later; recvring_linux.go). make test runs the
// receiver's tests on both paths.
const ReceiveEnv = "SWITCHBOARD_MEDIA_RECEIVE"
