// Package pglisten keeps one PostgreSQL connection of its own with LISTEN on a channel and
// hands every notification to a callback, reconnecting with a bounded backoff while the
// database is away. The ACD's store, the roster and the ticketing engine each run one: they
// are woken by NOTIFY and re-check on a timer of their own, so a lost listener slows them
// down but loses nothing.
//
// Goroutines: Run owns its connection (hijacked from the pool: a connection with LISTEN on is
// never returned to it) and calls the callbacks on the caller's goroutine, one at a time,
// holding no lock of its own.
package pglisten

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options says what to listen to and what to call.
type Options struct {
	// Channel is the NOTIFY channel. It is sent as an identifier: a plain lower-case name.
	Channel string
	// FirstRetry is the wait after a lost connection; each failed attempt doubles it up to
	// MaxRetry (equal values: a fixed wait). A connection that did LISTEN resets it.
	FirstRetry, MaxRetry time.Duration
	// Log takes one warning per outage (Lost says what the owner does meanwhile), then
	// debug lines while the database stays away.
	Log  *slog.Logger
	Lost string
	// OnListen is called each time LISTEN is on: notifications sent while no one listened
	// were missed, so the owner re-checks.
	OnListen func()
	// OnNotify is called with each notification's payload.
	OnNotify func(payload string)
	// OnLost is called each time the connection is lost or could not be made (may be nil).
	OnLost func()
}

// Run listens until ctx ends.
func Run(ctx context.Context, pool *pgxpool.Pool, o Options) {
	failing := false
	retry := o.FirstRetry
	for ctx.Err() == nil {
		listened, err := once(ctx, pool, o)
		if o.OnLost != nil {
			o.OnLost()
		}
		if ctx.Err() != nil {
			return
		}
		if listened {
			retry = o.FirstRetry
		}
		// Said once per outage, not at every retry while the database is away.
		if listened || !failing {
			o.Log.Warn(o.Lost, "channel", o.Channel, "err", err)
		} else {
			o.Log.Debug("still not listening", "channel", o.Channel, "err", err)
		}
		failing = true
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		retry = min(2*retry, max(o.MaxRetry, o.FirstRetry))
	}
}

// once listens until the connection fails; listened reports that LISTEN succeeded.
func once(ctx context.Context, pool *pgxpool.Pool, o Options) (listened bool, err error) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	pc, err := pool.Acquire(actx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("listen %s: acquire: %w", o.Channel, err)
	}
	conn := pc.Hijack() // the listener's own: never returned to the pool with LISTEN on
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{o.Channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen %s: %w", o.Channel, err)
	}
	o.OnListen()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("listen %s: wait for notification: %w", o.Channel, err)
		}
		o.OnNotify(n.Payload)
	}
}
