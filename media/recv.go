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

// handler handles one datagram received on a watched socket, on the socket's reader. tx is the
// reader's send batch: what the handler forwards joins it and goes out when the reader flushes
// it, after the datagrams of the same read (nil: sent at once; see txBatch).
type handler func(b []byte, src netip.AddrPort, at time.Time, tx *txBatch)

// ReceiveEnv names the environment variable that, set to "io_uring", makes the media plane
// receive through a multishot io_uring per poll loop where the kernel has it (Linux 6.1 and
// later; recvring_linux.go) instead of epoll and recvmmsg(2). Not the default: see CHANGELOG,
// "Not built yet" (issue 18). make test runs the receiver's tests on both paths.
const ReceiveEnv = "SWITCHBOARD_MEDIA_RECEIVE"
