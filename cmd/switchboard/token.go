package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// cmdToken creates an API token for an agent or admin: the token is printed once and stored
// only as a hash; use it as "Authorization: Bearer TOKEN".
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", "token --config FILE --email EMAIL [--description TEXT]\n\nCreates an API token for the agent or admin with that email and prints it once.\nUse it as \"Authorization: Bearer TOKEN\".", stdout, stderr)
	path := fs.String("config", "", "configuration file (required)")
	email := fs.String("email", "", "the agent's or admin's email (required)")
	desc := fs.String("description", "", "what the token is for")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" || *email == "" {
		fmt.Fprintln(stderr, "switchboard token: --config and --email are required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard token: %s: %v\n", *path, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, cfg.Database.URL)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard token: database: %v\n", err)
		return 1
	}
	defer pool.Close()
	store := ticketing.NewStore(pool, ticketing.StoreOptions{DefaultRegion: cfg.Ticketing.DefaultRegion})
	var id int64
	if err := pool.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL AND role IN ('agent', 'admin')`, *email).Scan(&id); err != nil {
		fmt.Fprintf(stderr, "switchboard token: no agent or admin with email %s\n", *email)
		return 1
	}
	tok, err := store.CreateAPIToken(ctx, id, *desc)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
