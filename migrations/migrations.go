// Package migrations holds Switchboard's PostgreSQL schema as numbered SQL files embedded in
// the binary, and applies them with tern.
//
// Files are named NNN_what.sql and numbered without gaps (tern refuses a gap). Each file is one
// forward migration; the part after a line "---- create above / drop below ----" undoes it.
// Applying twice is a no-op: tern records the version it reached in schema_version and an
// advisory lock keeps two processes from migrating at once.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is where tern records the schema version.
const VersionTable = "schema_version"

// Migrate brings the database reached through conn to the newest schema version and returns
// the version it was at before and the version it is at now.
func Migrate(ctx context.Context, conn *pgx.Conn) (from, to int32, err error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: new migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, 0, fmt.Errorf("migrations: load: %w", err)
	}
	from, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: current version: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return from, 0, fmt.Errorf("migrations: migrate: %w", err)
	}
	to, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return from, 0, fmt.Errorf("migrations: current version: %w", err)
	}
	return from, to, nil
}

// Latest is the version that Migrate brings a database to.
func Latest() (int32, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, fmt.Errorf("migrations: find: %w", err)
	}
	return int32(len(names)), nil
}

// MigrateURL connects to url and migrates it.
func MigrateURL(ctx context.Context, url string) (from, to int32, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Close(context.Background())
	return Migrate(ctx, conn)
}
