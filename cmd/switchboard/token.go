package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/ticketing"
)

const tokenUsage = `token --config FILE --email EMAIL [--description TEXT] [--expires-in DURATION]
token --config FILE --list [--email EMAIL]
token --config FILE --revoke ID

Creates an API token for the agent or admin with that email and prints it once; use it as
"Authorization: Bearer TOKEN". It expires after --expires-in (default http.token_ttl, 90 days).
--list prints every token (or one user's): id, owner, creation, expiry, description — never
the tokens themselves. --revoke deletes a token: its next use is a 401.`

// cmdToken creates, lists and revokes API tokens. Tokens are stored only as hashes.
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", tokenUsage, stdout, stderr)
	path := fs.String("config", "", "configuration file (required)")
	email := fs.String("email", "", "the agent's or admin's email (required to create a token)")
	desc := fs.String("description", "", "what the token is for")
	expires := fs.Duration("expires-in", 0, "lifetime of the new token, e.g. 720h (default http.token_ttl)")
	list := fs.Bool("list", false, "list tokens (of --email only, when given)")
	revoke := fs.String("revoke", "", "revoke the token with this id (from --list)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "switchboard token: "+format+"\n", a...)
		return code
	}
	if *path == "" {
		return fail(2, "--config is required")
	}
	if *list && *revoke != "" {
		return fail(2, "--list and --revoke do not go together")
	}
	if !*list && *revoke == "" && *email == "" {
		return fail(2, "--email is required to create a token (or use --list or --revoke)")
	}
	if *expires < 0 {
		return fail(2, "--expires-in must be positive, got %s", *expires)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, pool, err := openConfigDatabase(ctx, *path)
	if err != nil {
		return fail(1, "%v", err)
	}
	defer pool.Close()
	store := ticketing.NewStore(pool, ticketing.StoreOptions{DefaultRegion: cfg.Ticketing.DefaultRegion, TokenTTL: cfg.HTTP.TokenTTL.D()})
	var uid int64
	if *email != "" {
		u, err := store.StaffByEmail(ctx, *email)
		if err != nil {
			return fail(1, "no agent or admin with email %s", *email)
		}
		uid = u.ID
	}
	switch {
	case *revoke != "":
		id, err := strconv.ParseInt(*revoke, 10, 64)
		if err != nil || id <= 0 {
			return fail(2, "--revoke takes a token id (a positive number from --list), got %q", *revoke)
		}
		if err := store.RevokeAPIToken(ctx, ticketing.SystemActor, id); err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(stdout, "revoked token %d\n", id)
	case *list:
		toks, err := store.APITokens(ctx, uid)
		if err != nil {
			return fail(1, "%v", err)
		}
		emails, err := store.APITokenOwners(ctx)
		if err != nil {
			return fail(1, "database: %v", err)
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSER\tCREATED\tEXPIRES\tDESCRIPTION")
		for _, t := range toks {
			exp := "never"
			if t.ExpiresAt != nil {
				exp = t.ExpiresAt.UTC().Format(time.RFC3339)
				if t.ExpiresAt.Before(time.Now()) {
					exp += " (expired)"
				}
			}
			d := oneLine(t.Description) // one line per token whatever the description holds
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", t.ID, emails[t.UserID], t.CreatedAt.UTC().Format(time.RFC3339), exp, d)
		}
		_ = tw.Flush()
	default:
		_, tok, err := store.NewAPIToken(ctx, uid, *desc, *expires)
		if err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintln(stdout, tok)
	}
	return 0
}

// openConfigDatabase loads the configuration at path and opens a pool on its database (the
// commands that work on the database: token, dead-letters).
func openConfigDatabase(ctx context.Context, path string) (*config.Config, *pgxpool.Pool, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	pool, err := pgxpool.New(ctx, cfg.Database.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	return cfg, pool, nil
}

// oneLine keeps a value on its line of a listing whatever it holds: control characters become
// spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
