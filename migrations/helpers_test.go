package migrations_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/switchboard-voice/switchboard/migrations"
)

// migratedTo connects to the database at url (a fresh one: pgtest.EmptyURL), migrates it up to
// version with this directory's migrations and returns the connection (closed when the test
// ends) and its migrator, for a test that then writes rows as of that version and migrates on.
func migratedTo(t *testing.T, ctx context.Context, url string, version int32) (*pgx.Conn, *migrate.Migrator) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	m, err := migrate.NewMigrator(ctx, conn, migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return conn, m
}
