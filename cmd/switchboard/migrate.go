package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/migrations"
)

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("migrate", "migrate --config FILE\n\nApplies pending database migrations (a no-op when there are none) and exits.", stdout, stderr)
	path := fs.String("config", "", "configuration file (required)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "switchboard migrate: --config is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard migrate: %s: %v\n", *path, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	from, to, err := migrations.MigrateURL(ctx, cfg.Database.URL)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard migrate: %v\n", err)
		return 1
	}
	if from == to {
		fmt.Fprintf(stdout, "database schema is up to date at version %d\n", to)
	} else {
		fmt.Fprintf(stdout, "database schema migrated from version %d to %d\n", from, to)
	}
	return 0
}
