package ticketing

import (
	"crypto/sha256"
	"sync"
	"time"
)

// passwordCache remembers, for a few minutes, that a password matched a bcrypt hash. Keys are
// SHA-256 of the hash and the password, so neither is kept in memory; the zero value is ready.
type passwordCache struct {
	mu sync.Mutex
	m  map[[32]byte]time.Time
}

const (
	passwordCacheTTL  = 5 * time.Minute
	passwordCacheSize = 4096
)

func passwordKey(hash, password string) [32]byte {
	return sha256.Sum256([]byte(hash + "\x00" + password))
}

func (c *passwordCache) ok(hash, password string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, found := c.m[passwordKey(hash, password)]
	return found && time.Now().Before(exp)
}

func (c *passwordCache) add(hash, password string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= passwordCacheSize {
		c.m = map[[32]byte]time.Time{} // bounded: start over rather than grow
	}
	c.m[passwordKey(hash, password)] = time.Now().Add(passwordCacheTTL)
}
