// Package pgstats keeps PostgreSQL's planner statistics current for tables that grow fast
// while they are young: it runs ANALYZE on a table of the gateway's schema as soon as the
// table holds twice the rows its last analysis counted (and at least MinRows).
//
// Why we do what autovacuum does. Autovacuum visits a database once per autovacuum_naptime
// (a minute by default) and analyzes a table after 50 rows plus 10 % of it changed. A table
// that goes from empty to thousands of rows within that minute — a fresh installation's
// first busy minute, a load test, a restored empty database — is planned meanwhile from
// statistics that describe it empty or never analyzed, and the plans are cached: pgx prepares
// its statements, PostgreSQL switches a prepared statement to a generic plan after five
// executions, and that plan is kept until the table's statistics change. Measured on a fresh
// database at 300 new calls a second (BENCHMARKS.md, session 14): the rules engine's caller
// lookup ran as a sequential scan of users nested around user_identities (34–146 ms a batch
// instead of well under one), the call rows' read as a sequential scan of calls, and the
// ticket and comment reads the same, until autovacuum came by; steps that passed one run
// failed the next. An ANALYZE refreshes the statistics and invalidates the cached plans that
// read the table.
//
// The growth rule bounds the work: a table is analyzed at MinRows, then each time it has
// doubled, so a table of n rows was analyzed about log2(n / MinRows) times in its life;
// the keeper's ANALYZE reads a sample of 3,000 rows (StatisticsTarget), so each costs
// milliseconds to tens of milliseconds. A table that shrinks and grows back (a queue)
// is analyzed again only past twice its analyzed size. Tables past autovacuum's own reach are
// left to it: once a table is large its growth rarely doubles.
//
// Several nodes may run a Keeper on one database: each reads the same counters, and an
// ANALYZE run twice by two nodes at once is only work done twice (it takes a
// SHARE UPDATE EXCLUSIVE lock, which does not block reads or writes).
//
// Goroutines: Run is the keeper's one goroutine; it holds no lock and calls nothing of the
// caller's.
package pgstats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Keeper. Zero values take the defaults noted.
type Options struct {
	// Interval is how often the tables' counters are read (default 2 s).
	Interval time.Duration
	// MinRows is the size at which a table is first analyzed (default 500).
	MinRows int64
	// StatisticsTarget is the default_statistics_target of the keeper's analyses (default
	// 10: a sample of 3,000 rows). What the young tables' plans lack is their size and
	// their columns' null fractions, which a small sample gives; PostgreSQL's default of 100
	// samples 30,000 rows and cost 130–480 ms a table (calls, call_events, tickets,
	// ticket_comments at 15,000–90,000 rows) on the benchmark's machine, about 5× more,
	// enough to stall the rules engine for a second at 500 calls a second when several
	// tables doubled together. Autovacuum's own analyses, at its visits, use the server's
	// setting.
	StatisticsTarget int
	Logger           *slog.Logger
	// Registerer, when set, receives switchboard_db_analyzes_total{table}.
	Registerer prometheus.Registerer
}

// Keeper analyzes the schema's young tables as they grow (see the package comment).
type Keeper struct {
	pool     *pgxpool.Pool
	opts     Options
	analyzes *prometheus.CounterVec
}

// New returns a Keeper of the tables in pool's current schema.
func New(pool *pgxpool.Pool, opts Options) *Keeper {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.MinRows <= 0 {
		opts.MinRows = 500
	}
	if opts.StatisticsTarget <= 0 {
		opts.StatisticsTarget = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{pool: pool, opts: opts, analyzes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_db_analyzes_total",
		Help: "ANALYZE runs the gateway made on a table of its schema that had doubled since its last analysis (young tables grow faster than autovacuum visits).",
	}, []string{"table"})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(k.analyzes); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				k.analyzes = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return k
}

// grown lists the tables of the current schema that hold at least minRows live rows and at
// least twice what their last analysis counted (reltuples is -1 before the first), among
// those the role may analyze (it owns them, or is a member of their owner or a superuser:
// PostgreSQL skips the others with a warning, not an error). n_live_tup is the statistics
// system's running count: each backend reports its changes when its transaction ends
// (within a second).
const grown = `SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
	WHERE s.schemaname = current_schema() AND s.n_live_tup >= $1
	  AND s.n_live_tup >= 2 * GREATEST(c.reltuples, 0)
	  AND pg_has_role(c.relowner, 'MEMBER')
	ORDER BY s.relname`

// Run checks every Interval until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTicker(k.opts.Interval)
	defer t.Stop()
	for {
		if err := k.Check(ctx); err != nil && ctx.Err() == nil {
			k.opts.Logger.Debug("pgstats: check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check analyzes, once, each table that has grown past the rule, and returns the first error.
func (k *Keeper) Check(ctx context.Context) error {
	rows, err := k.pool.Query(ctx, grown, k.opts.MinRows)
	if err != nil {
		return fmt.Errorf("pgstats: read counters: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgstats: read counters: %w", err)
	}
	for _, table := range tables {
		start := time.Now()
		err := pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL default_statistics_target = "+strconv.Itoa(k.opts.StatisticsTarget)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "ANALYZE "+pgx.Identifier{table}.Sanitize())
			return err
		})
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe) && pe.Code == "42P01": // dropped meanwhile
			continue
		case err != nil:
			return fmt.Errorf("pgstats: analyze %s: %w", table, err)
		}
		k.analyzes.WithLabelValues(table).Inc()
		k.opts.Logger.Info("pgstats: analyzed a table that doubled since its last analysis", "table", table,
			"took", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}
