package pglisten_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pglisten"
	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// TestListenerHearsNotifyAndComesBackAfterItsConnectionIsKilled proves the listener hands each
// payload to OnNotify, reports the loss of its connection (OnLost), reconnects by itself and
// says so (OnListen again, so the owner re-checks what it missed), and hears NOTIFY again.
func TestListenerHearsNotifyAndComesBackAfterItsConnectionIsKilled(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx, cancel := context.WithCancel(context.Background())
	listens := make(chan struct{}, 16)
	losses := make(chan struct{}, 16)
	payloads := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pglisten.Run(ctx, pool, pglisten.Options{
			Channel: "pglisten_test", FirstRetry: 20 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Lost: "lost",
			OnListen: func() { listens <- struct{}{} },
			OnNotify: func(p string) { payloads <- p },
			OnLost:   func() { losses <- struct{}{} },
		})
	}()
	defer func() { cancel(); <-done }()

	await := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s within 30 s", what)
		}
	}
	notify := func(want string) {
		t.Helper()
		// Sent until heard: the NOTIFY may go out before the LISTEN is on after a reconnect.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := pool.Exec(ctx, `SELECT pg_notify('pglisten_test', $1)`, want); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-payloads:
				if got != want {
					t.Fatalf("payload %q, want %q", got, want)
				}
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		t.Fatalf("payload %q never heard", want)
	}

	await("first LISTEN", listens)
	notify("one")
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	await("loss", losses)
	await("LISTEN after the reconnect", listens)
	notify("two")
}
