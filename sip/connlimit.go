package sip

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimits bound the SIP TCP and TLS connections others open to us, so that a flood of idle
// connections can take neither the process's file descriptors (which RTP ports need too) nor
// its memory. Each field's zero turns that bound off; DefaultConnLimits holds the defaults.
type ConnLimits struct {
	// Max is the most open inbound connections in total (TCP and TLS each).
	// DefaultMaxConns (1024); 0 means no limit.
	Max int
	// PerSource is the most from one IP address. DefaultConnsPerSource (32: a carrier's or a
	// PBX's SBC opens a few, a desk phone one); 0 means no limit.
	PerSource int
	// HandshakeTimeout is how long a new connection may take to send its first bytes (for TLS:
	// the whole handshake, whose reads share the one deadline). DefaultHandshakeTimeout
	// (10 s); 0 means none.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection on which nothing was read for this long.
	// DefaultIdleTimeout (5 min; phones that keep a TCP connection for incoming calls refresh
	// it by registering, and by RFC 5626 CRLF keep-alives, which count as reads, more often
	// than that); 0 means none.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a peer that stopped reading. DefaultWriteTimeout
	// (10 s); 0 means none.
	WriteTimeout time.Duration
}

// Defaults of ConnLimits.
const (
	DefaultMaxConns         = 1024
	DefaultConnsPerSource   = 32
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultWriteTimeout     = 10 * time.Second
)

// DefaultConnLimits returns the default connection limits.
func DefaultConnLimits() ConnLimits {
	return ConnLimits{Max: DefaultMaxConns, PerSource: DefaultConnsPerSource, HandshakeTimeout: DefaultHandshakeTimeout,
		IdleTimeout: DefaultIdleTimeout, WriteTimeout: DefaultWriteTimeout}
}

// secConnLimit counts connections closed at accept because their source or the total was at
// its cap.
const secConnLimit = "connection_limited"

// connListener wraps a TCP listener: it closes at once a connection over the caps, puts read
// and write deadlines on the others, and survives accept errors such as EMFILE (sipgo stops
// serving on the first error Accept returns). Its counters are guarded by mu; Accept runs on
// sipgo's accept goroutine, Close of a conn on whichever goroutine closes it.
type connListener struct {
	net.Listener
	lim      ConnLimits
	tls      bool // the first bytes are a TLS handshake: it must finish by HandshakeTimeout
	now      func() time.Time
	rejected func(src netip.Addr)
	front    func(src netip.Addr) bool // a trusted front (Options.TrustedFronts)

	mu     sync.Mutex
	total  int
	per    map[netip.Addr]int
	closed chan struct{}
	once   sync.Once
}

func (s *Server) limitListener(l net.Listener, network string) net.Listener {
	return &connListener{Listener: l, lim: s.opts.Conn, tls: network == "tls", now: s.now, per: map[netip.Addr]int{}, closed: make(chan struct{}),
		front: s.trustedFront,
		rejected: func(src netip.Addr) {
			s.m.securityEvent.WithLabelValues(secConnLimit).Inc()
			now := s.now().UnixNano()
			last := s.lastFloodLog.Load()
			if now-last >= int64(time.Second) && s.lastFloodLog.CompareAndSwap(last, now) {
				s.log.Warn("sip: security event", "security_event", secConnLimit, "source", src.String(),
					"transport", network, "detail", "connection over the per-source or total cap closed")
			}
		}}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *connListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			// EMFILE, ENFILE, ECONNABORTED…: wait and go on, as net/http does, rather than
			// stop taking SIP over TCP for good.
			select {
			case <-l.closed:
				return nil, net.ErrClosed
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		src := netip.Addr{}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			src = ta.AddrPort().Addr().Unmap()
		}
		l.mu.Lock()
		// A trusted front carries many clients over its connections: only the total caps it.
		over := (l.lim.Max > 0 && l.total >= l.lim.Max) || (l.lim.PerSource > 0 && l.per[src] >= l.lim.PerSource && !l.front(src))
		if !over {
			l.total++
			l.per[src]++
		}
		l.mu.Unlock()
		if over {
			_ = c.Close()
			l.rejected(src)
			continue
		}
		lc := &limitedConn{Conn: c, l: l, src: src}
		if l.lim.HandshakeTimeout > 0 {
			lc.firstBy = l.now().Add(l.lim.HandshakeTimeout)
		}
		return lc, nil
	}
}

func (l *connListener) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.per[src]--; l.per[src] <= 0 {
		delete(l.per, src)
	}
}

// limitedConn is one accepted connection. Until ready (the first bytes read over TCP, the
// handshake done over TLS) its reads share the absolute deadline firstBy; then each read may
// wait IdleTimeout.
type limitedConn struct {
	net.Conn
	l       *connListener
	src     netip.Addr
	firstBy time.Time // deadline for the first bytes or the handshake (zero: none)
	ready   atomic.Bool
	once    sync.Once
}

func (c *limitedConn) Read(b []byte) (int, error) {
	switch {
	case !c.ready.Load() && !c.firstBy.IsZero():
		_ = c.Conn.SetReadDeadline(c.firstBy)
	case c.l.lim.IdleTimeout > 0:
		_ = c.Conn.SetReadDeadline(c.l.now().Add(c.l.lim.IdleTimeout))
	}
	n, err := c.Conn.Read(b)
	if n > 0 && !c.l.tls {
		c.ready.Store(true)
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// An idle or never-speaking peer: end it like an orderly close, which the reader
		// (sipgo) answers by closing the connection and logs at debug (a read error it logs
		// at error level).
		return n, io.EOF
	}
	return n, err
}

func (c *limitedConn) Write(b []byte) (int, error) {
	if c.l.lim.WriteTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(c.l.now().Add(c.l.lim.WriteTimeout))
	}
	return c.Conn.Write(b)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}

// tlsListener is tls.NewListener whose connections finish their handshake (in the reader's
// goroutine, on the first Read) within the limitedConn's first deadline, and only then switch
// it to the idle timeout.
type tlsListener struct {
	net.Listener
}

func newTLSListener(inner net.Listener, cfg *tls.Config) net.Listener {
	return tlsListener{tls.NewListener(inner, cfg)}
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: c.(*tls.Conn)}, nil
}

type tlsConn struct {
	*tls.Conn
	done atomic.Bool
}

func (c *tlsConn) Read(b []byte) (int, error) {
	if !c.done.Load() {
		if err := c.Handshake(); err != nil {
			return 0, io.EOF // a failed or too slow handshake: sipgo closes it, logs EOF at debug
		}
		c.done.Store(true)
		if lc, ok := c.NetConn().(*limitedConn); ok {
			lc.ready.Store(true)
		}
	}
	return c.Conn.Read(b)
}
