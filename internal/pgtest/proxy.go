package pgtest

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Proxy is a TCP forwarder to PostgreSQL on loopback that a test cuts and restores, to take
// the database away from the code under test without touching the shared cluster.
type Proxy struct {
	t      testing.TB
	target string
	mu     sync.Mutex
	addr   string
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	// delay holds back every chunk the client sends (Slow), in nanoseconds.
	delay atomic.Int64
}

// NewProxy starts a proxy to target (host:port) on a free loopback port; it stops when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	p.listen("127.0.0.1:0")
	t.Cleanup(func() { p.Down(); p.wg.Wait() })
	return p
}

// Addr is the proxy's host:port (the same after Down and Up).
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *Proxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("pgtest: proxy listen %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // cut meanwhile
				p.mu.Unlock()
				c.Close()
				s.Close()
				continue
			}
			p.conns[c], p.conns[s] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); p.forward(s, c); s.Close(); c.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); s.Close(); c.Close() }()
		}
	}()
}

// forward copies what the client sends to the server, each chunk held back by the delay
// Slow set when it was read.
func (p *Proxy) forward(dst, src net.Conn) {
	buf := make([]byte, 64*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Slow makes the database slow without taking it away: every message the code under test
// sends is held back d before PostgreSQL sees it, so every round trip takes d longer (a
// commit too). 0 makes it fast again. Connections stay open.
func (p *Proxy) Slow(d time.Duration) { p.delay.Store(int64(d)) }

// Down refuses new connections and breaks the open ones: the database is unreachable.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Up makes the database reachable again, on the same address.
func (p *Proxy) Up() {
	p.mu.Lock()
	up, addr := p.ln != nil, p.addr
	p.mu.Unlock()
	if !up {
		p.listen(addr)
	}
}

// ProxiedPool creates a new migrated database and returns a proxy to it and a pool that goes
// through the proxy (see ProxiedPoolTo), and the database's direct URL for checks that must
// not go through the proxy.
func ProxiedPool(t testing.TB) (*Proxy, *pgxpool.Pool, string) {
	t.Helper()
	direct := URL(t)
	p, pool := ProxiedPoolTo(t, direct)
	return p, pool, direct
}

// ProxiedPoolTo returns a proxy to the database at direct and a pool that goes through it
// (connect timeout 500 ms, so that an outage is noticed at once), closed when t ends.
func ProxiedPoolTo(t testing.TB, direct string) (*Proxy, *pgxpool.Pool) {
	t.Helper()
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(t, u.Host)
	u.Host = p.Addr()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.ConnectTimeout = 500 * time.Millisecond
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return p, pool
}
