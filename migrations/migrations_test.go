package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/migrations"
)

// A fresh database migrates to the latest version; migrating again changes nothing.
func TestMigrateFreshThenAgainIsNoop(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	from, to, err := migrations.MigrateURL(ctx, url)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if from != 0 || to != latest {
		t.Fatalf("first migrate went %d→%d, want 0→%d", from, to, latest)
	}
	from, to, err = migrations.MigrateURL(ctx, url)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if from != latest || to != latest {
		t.Fatalf("second migrate went %d→%d, want a no-op at %d", from, to, latest)
	}
}
