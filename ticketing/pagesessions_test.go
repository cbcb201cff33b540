package ticketing_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Issue 19: the agent page's logins are in PostgreSQL, so every node of a cluster (here two
// stores on one database, the second listening as another node would) accepts a login made on
// another. A node's start re-seeding the same password ends nothing; a password change, a role
// change and a logout each end the user's logins at once — for every node: the row is gone and
// the listening node is told the user's id (NOTIFY switchboard_page_sessions), on which it
// closes the agent's softphone. An expired login is refused; only the SHA-256 of a cookie is
// stored.
func TestPageSessions_SharedByNodes_CredentialChangeOrLogoutEndsThemEverywhere(t *testing.T) {
	pool := pgtest.Pool(t)
	nodeA := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	nodeB := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	agent, err := nodeA.EnsureUser(ctx, "agent1@example.com", "Agent One", ticketing.RoleAgent, "agentpass")
	if err != nil {
		t.Fatal(err)
	}
	key := func(cookie string) []byte { s := sha256.Sum256([]byte(cookie)); return s[:] }

	// Node B listens; it is listening once a notice sent by the test comes back.
	ended := make(chan int64, 16)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		nodeB.WatchPageSessions(wctx, func(id int64) { ended <- id }, 100*time.Millisecond, nil)
	}()
	t.Cleanup(func() { stop(); <-done })
	const probe = 987654321
	for listening := false; !listening; {
		if _, err := pool.Exec(ctx, `SELECT pg_notify($1, $2)`, ticketing.PageSessionsChannel, "987654321"); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-ended:
			listening = id == probe
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("node B's listener never heard the probe")
		}
	}
	awaitEnded := func(what string) {
		t.Helper()
		select {
		case id := <-ended:
			if id != agent.ID {
				t.Fatalf("%s: node B was told user %d, want %d", what, id, agent.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: node B was not told within 10 s", what)
		}
	}
	gone := func(k []byte, what string) {
		t.Helper()
		if _, _, err := nodeB.PageSession(ctx, k); !errors.Is(err, ticketing.ErrNotFound) {
			t.Fatalf("%s: node B's lookup = %v, want ErrNotFound", what, err)
		}
	}

	// A login on node A is node B's too.
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	if err := nodeA.CreatePageSession(ctx, key("cookie-1"), agent.ID, exp); err != nil {
		t.Fatal(err)
	}
	u, got, err := nodeB.PageSession(ctx, key("cookie-1"))
	if err != nil || u.ID != agent.ID || !got.Equal(exp) {
		t.Fatalf("node B's lookup of node A's login = %v %v %v, want user %d until %v", u.ID, got, err, agent.ID, exp)
	}
	var stored []byte
	if err := pool.QueryRow(ctx, `SELECT token_hash FROM page_sessions`).Scan(&stored); err != nil || string(stored) == "cookie-1" {
		t.Fatalf("stored %q (%v), want the cookie's SHA-256", stored, err)
	}

	// A restart re-seeding the same password ends nothing.
	if _, err := nodeA.EnsureUser(ctx, "agent1@example.com", "Agent One", ticketing.RoleAgent, "agentpass"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nodeB.PageSession(ctx, key("cookie-1")); err != nil {
		t.Fatalf("the login ended when the same password was seeded again: %v", err)
	}

	// A password change on node A: the login is gone for node B, which is told.
	pw := "a-new-password"
	if _, err := nodeA.UpdateUser(ctx, ticketing.SystemActor, agent.ID, ticketing.UserPatch{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	awaitEnded("password change")
	gone(key("cookie-1"), "after the password change")

	// A role change (agent → admin) likewise.
	if err := nodeA.CreatePageSession(ctx, key("cookie-2"), agent.ID, exp); err != nil {
		t.Fatal(err)
	}
	role := ticketing.RoleAdmin
	if _, err := nodeA.UpdateUser(ctx, ticketing.SystemActor, agent.ID, ticketing.UserPatch{Role: &role}); err != nil {
		t.Fatal(err)
	}
	awaitEnded("role change")
	gone(key("cookie-2"), "after the role change")

	// A logout on node A: gone, and node B told.
	if err := nodeA.CreatePageSession(ctx, key("cookie-3"), agent.ID, exp); err != nil {
		t.Fatal(err)
	}
	if err := nodeA.EndPageSession(ctx, key("cookie-3")); err != nil {
		t.Fatal(err)
	}
	awaitEnded("logout")
	gone(key("cookie-3"), "after the logout")

	// An expired login is refused, and the next login clears it away.
	if err := nodeA.CreatePageSession(ctx, key("cookie-4"), agent.ID, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	gone(key("cookie-4"), "expired")
	if err := nodeA.CreatePageSession(ctx, key("cookie-5"), agent.ID, exp); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM page_sessions`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d sessions stored after a login (%v), want 1: the expired one cleared", n, err)
	}
}
