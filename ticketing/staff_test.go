package ticketing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// StaffByEmail finds an agent or admin whatever the case of the email, and refuses with
// ErrNotFound an end user, a deleted agent and an unknown email: `switchboard token` makes
// tokens only for people who can log in.
func TestStaffByEmailFindsOnlyLiveAgentsAndAdmins(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, err := e.store.StaffByEmail(ctx, "AGENT1@example.com")
	if err != nil || u.ID != e.agent.ID {
		t.Fatalf("StaffByEmail(agent1, other case) = %v, %v; want user %d", u.ID, err, e.agent.ID)
	}
	if _, err := e.store.EnsureUser(ctx, "caller@example.com", "Caller", ticketing.RoleEndUser, ""); err != nil {
		t.Fatal(err)
	}
	gone, err := e.store.EnsureUser(ctx, "gone@example.com", "Gone", ticketing.RoleAgent, "pw-gone-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteUser(ctx, ticketing.SystemActor, gone.ID); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"caller@example.com", "gone@example.com", "nobody@example.com"} {
		_, err := e.store.StaffByEmail(ctx, email)
		var te *ticketing.Error
		if !errors.As(err, &te) || te.Kind != ticketing.ErrNotFound {
			t.Errorf("StaffByEmail(%s) = %v, want ErrNotFound", email, err)
		}
	}
}

// APITokenOwners names every token's owner by user id, and forgets a user once their last
// token is revoked.
func TestAPITokenOwnersNamesEveryTokensOwner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owners, err := e.store.APITokenOwners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 2 || owners[e.admin.ID] != "admin@example.com" || owners[e.agent.ID] != "agent1@example.com" {
		t.Fatalf("APITokenOwners = %v, want the admin and agent1", owners)
	}
	if err := e.store.RevokeAPIToken(ctx, ticketing.SystemActor, e.tokenID(e.agent.ID)); err != nil {
		t.Fatal(err)
	}
	if owners, err = e.store.APITokenOwners(ctx); err != nil || len(owners) != 1 || owners[e.admin.ID] == "" {
		t.Errorf("after revoking agent1's token: APITokenOwners = %v, %v; want the admin alone", owners, err)
	}
	if err := e.store.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
