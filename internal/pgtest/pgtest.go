// Package pgtest gives a test its own freshly migrated PostgreSQL database.
//
// `make test` starts a throwaway cluster and sets SWITCHBOARD_TEST_DATABASE_URL to a database on
// it (and SWITCHBOARD_REQUIRE_PG=1). Each call to New creates a new database from a template
// migrated once per test binary, so tests are isolated and can run in parallel, and drops it
// when the test ends. Without the variable the test is skipped, unless SWITCHBOARD_REQUIRE_PG is
// set, when it fails: CI must never pass by skipping the database.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/migrations"
)

// EnvURL names the variable holding the URL of a database on the test cluster.
const EnvURL = "SWITCHBOARD_TEST_DATABASE_URL"

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// BaseURL returns the cluster URL from the environment, skipping or failing t when unset.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv("SWITCHBOARD_REQUIRE_PG") != "" {
			t.Fatalf("%s is not set but SWITCHBOARD_REQUIRE_PG is: run the tests with `make test`", EnvURL)
		}
		t.Skipf("%s not set: run with `make test` for the PostgreSQL-backed tests", EnvURL)
	}
	return u
}

// WithDatabase returns base with its database name replaced by db.
func WithDatabase(base, db string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("pgtest: bad url %q: %v", base, err))
	}
	u.Path = "/" + db
	return u.String()
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func admin(ctx context.Context, base string, sql string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func buildTemplate(base string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := randomName("sbtmpl_")
	if err := admin(ctx, base, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	if _, _, err := migrations.MigrateURL(ctx, WithDatabase(base, name)); err != nil {
		return "", err
	}
	return name, nil
}

// URL creates a new migrated database and returns its URL; it is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	templateOnce.Do(func() { templateName, templateErr = buildTemplate(base) })
	if templateErr != nil {
		t.Fatalf("pgtest: template database: %v", templateErr)
	}
	name := randomName("sbtest_")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// CREATE DATABASE ... TEMPLATE fails while another session uses the template; tests of
	// one binary create in turn, so retry briefly.
	var err error
	for i := 0; i < 50; i++ {
		err = admin(ctx, base, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName))
		if err == nil || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin(ctx, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return WithDatabase(base, name)
}

// EmptyURL creates a new database without any migration and returns its URL; it is dropped
// when t ends. For tests of migrations themselves.
func EmptyURL(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	name := randomName("sbempty_")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := admin(ctx, base, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = admin(ctx, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return WithDatabase(base, name)
}

// Pool creates a new migrated database and returns a pool on it, closed when t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := URL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
