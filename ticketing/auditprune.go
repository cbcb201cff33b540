package ticketing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults and bounds of the audit trail's retention (AuditPrunerOptions).
const (
	// DefaultAuditPruneInterval is how often the pruner looks for entries past the retention.
	DefaultAuditPruneInterval = time.Hour
	// DefaultAuditPruneBatch is how many entries one DELETE removes at most: each batch is a
	// short transaction of its own, so pruning a year's backlog never holds a long lock nor
	// writes one huge WAL record.
	DefaultAuditPruneBatch = 1000
	// MinAuditRetention is the shortest retention the configuration takes (check-config): an
	// entry must outlive the reading of the trail and the webhooks' delivery of it.
	MinAuditRetention = 24 * time.Hour
)

// auditPruneTimeout bounds one batch's statement: a database that does not answer fails the
// pass (logged), which the next interval tries again.
const auditPruneTimeout = time.Minute

// AuditPrunerOptions configure StartAuditPruner.
type AuditPrunerOptions struct {
	// Retention is how long audit entries are kept (created_at older than now − Retention are
	// deleted). 0 keeps them forever: nothing is deleted and no goroutine runs (the metric
	// still exists, at 0).
	Retention time.Duration
	// Interval between passes (default DefaultAuditPruneInterval). The first pass runs at start.
	Interval time.Duration
	// Batch is the most entries one DELETE removes (default DefaultAuditPruneBatch).
	Batch int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer receives switchboard_audit_entries_pruned_total (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// AuditPruner deletes the audit trail's entries older than the retention, in bounded batches,
// in the background. Several nodes on one database may each run one: a batch claims its rows
// with FOR UPDATE SKIP LOCKED, so two nodes' passes delete disjoint rows, never wait on each
// other, and count each deleted entry once. One goroutine (run) makes the passes; Prune may
// also be called directly (tests, an operator's tool).
type AuditPruner struct {
	store  *Store
	opts   AuditPrunerOptions
	pruned prometheus.Counter
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// StartAuditPruner registers the metric and, with a Retention, starts pruning.
func (s *Store) StartAuditPruner(opts AuditPrunerOptions) (*AuditPruner, error) {
	if opts.Retention < 0 {
		return nil, fmt.Errorf("ticketing: audit retention %s is negative", opts.Retention)
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultAuditPruneInterval
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultAuditPruneBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &AuditPruner{store: s, opts: opts, done: make(chan struct{}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_audit_entries_pruned_total",
			Help: "Audit trail entries deleted because they were older than ticketing.audit_retention (by this node)."})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(p.pruned); err != nil {
			return nil, fmt.Errorf("ticketing: audit pruner metrics: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if opts.Retention == 0 {
		close(p.done) // kept forever: nothing to run
		return p, nil
	}
	go p.run(ctx)
	return p, nil
}

// Close stops the pruner, waiting for a batch under way; it is idempotent.
func (p *AuditPruner) Close() {
	p.once.Do(p.cancel)
	<-p.done
}

func (p *AuditPruner) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		if _, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
			p.opts.Logger.Warn("audit trail: pruning old entries failed; trying again at the next interval",
				"interval", p.opts.Interval.String(), "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Prune deletes every entry older than now − Retention, Batch at a time, and returns how
// many it deleted. The cutoff is fixed at the start of the pass, so the pass ends: each full
// batch removes rows of a set nothing adds to. A batch that deletes fewer than Batch ends it
// (what another node has claimed, that node deletes). With Retention 0 it deletes nothing.
func (p *AuditPruner) Prune(ctx context.Context) (int64, error) {
	if p.opts.Retention <= 0 {
		return 0, nil
	}
	cutoff := p.opts.Now().Add(-p.opts.Retention)
	var total int64
	for ctx.Err() == nil {
		n, err := p.pruneBatch(ctx, cutoff)
		total += n
		p.pruned.Add(float64(n))
		if err != nil {
			return total, err
		}
		if n < int64(p.opts.Batch) {
			break
		}
	}
	if total > 0 {
		p.opts.Logger.Info("audit trail: entries older than the retention deleted", "entries", total,
			"older_than", cutoff.UTC().Format(time.RFC3339), "retention", p.opts.Retention.String())
	}
	return total, ctx.Err()
}

// pruneBatch deletes at most Batch of the oldest entries created before cutoff, in one
// statement (its own transaction). audits_created_idx (created_at, id) serves the scan.
func (p *AuditPruner) pruneBatch(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, auditPruneTimeout)
	defer cancel()
	tag, err := p.store.pool.Exec(ctx, `DELETE FROM audits WHERE id IN (
		SELECT id FROM audits WHERE created_at < $1 ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		cutoff, p.opts.Batch)
	if err != nil {
		return 0, fmt.Errorf("ticketing: prune audit entries: %w", err)
	}
	return tag.RowsAffected(), nil
}
