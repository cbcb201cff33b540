package ticketing_test

import (
	"context"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// A password that bcrypt accepted is remembered, but a changed password is never answered from
// that memory: the old one is refused at once, the new one accepted.
func TestCheckPasswordCacheFollowsPasswordChanges(t *testing.T) {
	store := ticketing.NewStore(pgtest.Pool(t), ticketing.StoreOptions{BcryptCost: 4})
	ctx := context.Background()
	u, err := store.EnsureUser(ctx, "cache@example.com", "Cache", "agent", "first-password")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second check comes from the cache
		if _, err := store.CheckPassword(ctx, "cache@example.com", "first-password"); err != nil {
			t.Fatalf("right password refused: %v", err)
		}
	}
	pw := "second-password"
	if _, err := store.UpdateUser(ctx, ticketing.Actor(u.ID), u.ID, ticketing.UserPatch{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CheckPassword(ctx, "cache@example.com", "first-password"); err == nil {
		t.Error("the old password still works after a change")
	}
	if _, err := store.CheckPassword(ctx, "cache@example.com", pw); err != nil {
		t.Errorf("the new password is refused: %v", err)
	}
	if _, err := store.CheckPassword(ctx, "cache@example.com", "wrong"); err == nil {
		t.Error("a wrong password was accepted")
	}
}
