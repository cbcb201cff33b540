package eventlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The nodes' internal SIP addresses (the cluster's internal leg, sip/internal_leg.go): each
// node records where it takes the other nodes' internal INVITEs in its nodes row at start
// (RecordNodeInternalSIP), and a node offering a call to an agent attached to another node
// looks that node's address up (NodeAddresses).

// ErrNoInternalSIP is returned by NodeAddresses.InternalSIP for a node that recorded no
// internal address (unknown, or its internal leg is off).
var ErrNoInternalSIP = errors.New("eventlog: node has no internal SIP address")

// RecordNodeInternalSIP records addr ("IP:port") as where node name takes internal INVITEs;
// "" records that it takes none. The node's row exists already (RecordNode).
func RecordNodeInternalSIP(ctx context.Context, pool *pgxpool.Pool, name, addr string) error {
	var v any
	if addr != "" {
		v = addr
	}
	if _, err := pool.Exec(ctx, `UPDATE nodes SET internal_sip = $2 WHERE name = $1`, name, v); err != nil {
		return fmt.Errorf("eventlog: record internal SIP address of node %s: %w", name, err)
	}
	return nil
}

// DefaultNodeAddressTTL is how long NodeAddresses trusts an address it read.
const DefaultNodeAddressTTL = 30 * time.Second

// NodeAddresses looks up the nodes' internal SIP addresses, keeping each for TTL: a node's
// address changes only when it restarts with another configuration, and an offer should not
// wait on the database each time. While the database does not answer, the last address read
// is used however old (a node that moved is then missed until the database is back).
// Safe for concurrent use.
type NodeAddresses struct {
	pool *pgxpool.Pool
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	known map[string]nodeAddr
}

type nodeAddr struct {
	addr string
	read time.Time
}

// NewNodeAddresses returns a NodeAddresses over pool; ttl 0 takes DefaultNodeAddressTTL, now
// nil takes time.Now.
func NewNodeAddresses(pool *pgxpool.Pool, ttl time.Duration, now func() time.Time) *NodeAddresses {
	if ttl <= 0 {
		ttl = DefaultNodeAddressTTL
	}
	if now == nil {
		now = time.Now
	}
	return &NodeAddresses{pool: pool, ttl: ttl, now: now, known: map[string]nodeAddr{}}
}

// InternalSIP returns where node name takes internal INVITEs, or ErrNoInternalSIP.
func (n *NodeAddresses) InternalSIP(ctx context.Context, name string) (string, error) {
	now := n.now()
	n.mu.Lock()
	k, ok := n.known[name]
	n.mu.Unlock()
	if ok && now.Sub(k.read) < n.ttl {
		return k.addr, nil
	}
	var addr *string
	err := n.pool.QueryRow(ctx, `SELECT internal_sip FROM nodes WHERE name = $1`, name).Scan(&addr)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && (addr == nil || *addr == "")):
		n.mu.Lock()
		delete(n.known, name)
		n.mu.Unlock()
		return "", fmt.Errorf("node %s: %w", name, ErrNoInternalSIP)
	case err != nil:
		if ok {
			return k.addr, nil // the database is away: the last address read
		}
		return "", fmt.Errorf("eventlog: internal SIP address of node %s: %w", name, err)
	}
	n.mu.Lock()
	n.known[name] = nodeAddr{addr: *addr, read: now}
	n.mu.Unlock()
	return *addr, nil
}
