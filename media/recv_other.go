//go:build !linux

package media

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Receiving elsewhere than Linux: one blocking reader goroutine per socket (recv_linux.go has
// the epoll-driven loops). The API is the same: watch, unwatch.

type rxBatch struct{ buf [maxPacket]byte }

// receiver starts a reader goroutine per watched socket; its buffers are pooled, held only
// while a datagram is read and handled.
type receiver struct {
	batches sync.Pool // *rxBatch
}

func newReceiver(int) *receiver {
	r := &receiver{}
	r.batches.New = func() any { return &rxBatch{} }
	return r
}

// maxReaders is the most goroutines reading the given number of sockets: one each.
func (r *receiver) maxReaders(sockets int) int { return sockets }

type watch struct {
	conn    *net.UDPConn
	stopped atomic.Bool
	done    chan struct{}
}

// watch hands every datagram conn receives to handle, on a goroutine of its own, until
// unwatch. handle must not call watch or unwatch.
func (r *receiver) watch(_ int, sock *Socket, handle handler) (*watch, error) {
	conn := sock.conn
	w := &watch{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for errs := 0; errs < 100 && !w.stopped.Load(); {
			b := r.batches.Get().(*rxBatch)
			n, src, err := conn.ReadFromUDPAddrPort(b.buf[:])
			if err != nil || w.stopped.Load() {
				r.batches.Put(b)
				if w.stopped.Load() || errors.Is(err, net.ErrClosed) {
					return
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					errs++
				}
				continue
			}
			errs = 0
			handle(b.buf[:n], src, time.Now(), nil)
			r.batches.Put(b)
		}
	}()
	return w, nil
}

// unwatch stops the reader: when it returns, the handler is not running and will not be
// called again, and the socket may be closed. Idempotent.
func (r *receiver) unwatch(w *watch) {
	if !w.stopped.Swap(true) {
		_ = w.conn.SetReadDeadline(time.Now()) // wakes a blocked read
	}
	<-w.done
}

// rawSender sends through the net package (which waits while the socket's send buffer is
// full; recv_linux.go has the non-blocking one the shared poll loops need).
type rawSender struct{ conn *net.UDPConn }

func newRawSender(sock *Socket) (*rawSender, error) { return &rawSender{conn: sock.conn}, nil }

func (s *rawSender) send(b []byte, dst netip.AddrPort) error {
	_, err := s.conn.WriteToUDPAddrPort(b, dst)
	return err
}

// txBatch batches sends on Linux only (recv_linux.go); here readers pass none and every packet
// is sent at once, so these are never called.
type txBatch struct{}

func (*txBatch) claim(*sender)                      {}
func (*txBatch) next() []byte                       { return nil }
func (*txBatch) add(int, netip.AddrPort, time.Time) {}

// ReceivePath reports how this process receives media: a goroutine per socket here.
func ReceivePath() (string, error) {
	return "goroutines", errors.New("media: no epoll or io_uring on this system")
}
