package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// DialogStore keeps in PostgreSQL (call_dialogs) the dialog state of each answered leg of the
// calls this node runs — the same opaque JSON the node's call journal keeps on its disk — so
// that the survivor that closes the node's calls when it is lost can send their far ends a BYE
// (NodeWatchOptions.OnLostDialogs). Leg never waits for the database: it queues the row, and
// one goroutine (the store's own) writes the queue in batches. A full queue or a failed write
// drops the rows (counted, logged at most once a minute): a leg not stored is only a BYE the
// survivor cannot send; the lost node's own restart still BYEs it from its journal.
type DialogStore struct {
	pool    *pgxpool.Pool
	node    string
	gather  time.Duration
	active  func() bool
	log     *slog.Logger
	queue   chan dialogRow
	dropped prometheus.Counter
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	// Owned by the writer goroutine.
	lastWarn time.Time
}

type dialogRow struct {
	callID string
	dialog json.RawMessage
}

// DialogStoreOptions configure a DialogStore.
type DialogStoreOptions struct {
	// Pool and Node (this node's name, as Options.Node) are required.
	Pool *pgxpool.Pool
	Node string
	// Queue is how many legs wait for the writer at most (default 4096).
	Queue int
	// Gather is how long the writer waits for more legs after the first before it writes
	// (default 50 ms): one statement for the legs of many calls under load.
	Gather time.Duration
	// Active, when set, says whether legs are worth storing now: the wiring gives the node
	// watch's Others() > 0, so a node alone on its database (no survivor to BYE for it)
	// writes nothing. Legs given while it is false are not stored (nor counted dropped).
	Active     func() bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// dialogBatch is the most rows one insert carries.
const dialogBatch = 256

// maxDialogBytes bounds one stored dialog state (a route set of a few proxies is well under).
const maxDialogBytes = 16 << 10

// StartDialogStore starts the store's writer; Close stops it.
func StartDialogStore(opts DialogStoreOptions) (*DialogStore, error) {
	if opts.Pool == nil || opts.Node == "" {
		return nil, errors.New("eventlog: dialog store needs the Pool and the Node")
	}
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.Gather <= 0 {
		opts.Gather = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &DialogStore{pool: opts.Pool, node: opts.Node, gather: opts.Gather, active: opts.Active, log: opts.Logger, queue: make(chan dialogRow, opts.Queue),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_cluster_dialogs_dropped_total",
			Help: "Answered legs' dialog states not stored for the survivor of a node loss (queue full or database away): their far ends get no BYE from the survivor.",
		}),
		stop: make(chan struct{}), done: make(chan struct{})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.dropped); err != nil {
			return nil, fmt.Errorf("eventlog: dialog store metrics: %w", err)
		}
	}
	go s.run()
	return s, nil
}

// Leg queues one leg's dialog state of callID (the call journal's Leg, same arguments). It
// never blocks; the error is always nil (a dropped leg is counted).
func (s *DialogStore) Leg(callID string, dialog json.RawMessage) error {
	if s.active != nil && !s.active() {
		return nil
	}
	// Refused here, not by the database, so that one leg cannot fail a batch of others: a
	// NUL (a far end's tag or URI may carry one, escaped; jsonb refuses it), a state larger
	// than any sane dialog's, or no valid JSON.
	if len(dialog) > maxDialogBytes || len(callID) > 200 || bytes.Contains(dialog, []byte(`\u0000`)) ||
		strings.ContainsRune(callID, 0) || !utf8.ValidString(callID) || !json.Valid(dialog) {
		s.dropped.Inc()
		return nil
	}
	select {
	case s.queue <- dialogRow{callID: callID, dialog: append(json.RawMessage(nil), dialog...)}:
	default:
		s.dropped.Inc()
	}
	return nil
}

// Close writes what is queued (at most 2 s) and stops the writer. It is idempotent.
func (s *DialogStore) Close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

func (s *DialogStore) run() {
	defer close(s.done)
	batch := make([]dialogRow, 0, dialogBatch)
	for {
		select {
		case r := <-s.queue:
			batch = append(batch[:0], r)
			// Gather more for a moment (bounded), unless stopping.
			t := time.NewTimer(s.gather)
		gather:
			for len(batch) < dialogBatch {
				select {
				case r := <-s.queue:
					batch = append(batch, r)
				case <-t.C:
					break gather
				case <-s.stop:
					break gather
				}
			}
			t.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.write(ctx, batch)
			cancel()
		case <-s.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			for ctx.Err() == nil {
				if batch = s.drain(batch[:0]); len(batch) == 0 {
					break
				}
				s.write(ctx, batch)
			}
			cancel()
			return
		}
	}
}

// drain adds to batch what is queued, up to dialogBatch rows, without waiting.
func (s *DialogStore) drain(batch []dialogRow) []dialogRow {
	for len(batch) < dialogBatch {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// write inserts batch in one statement; on an error the rows are dropped.
func (s *DialogStore) write(ctx context.Context, batch []dialogRow) {
	ids := make([]string, len(batch))
	dialogs := make([]string, len(batch))
	for i, r := range batch {
		ids[i], dialogs[i] = r.callID, string(r.dialog)
	}
	// synchronous_commit off: the rows are a best effort (a leg lost with a crash of the
	// database is a BYE not sent), so the commit does not wait for the WAL's flush.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO call_dialogs (call_id, node, dialog)
			SELECT c, $3, d::jsonb FROM unnest($1::text[], $2::text[]) AS u(c, d)`, ids, dialogs, s.node)
		return err
	})
	if err == nil {
		return
	}
	s.dropped.Add(float64(len(batch)))
	if time.Since(s.lastWarn) >= time.Minute {
		s.lastWarn = time.Now()
		s.log.Warn("cluster: could not store answered legs' dialog state; if this node is lost now, the survivor cannot BYE their far ends (this node's restart does)",
			"legs", len(batch), "err", err)
	}
}

// lostDialogs reads, in the sweep's transaction, the stored legs of the calls the sweep closes.
func lostDialogs(ctx context.Context, tx pgx.Tx, callIDs []string) ([]json.RawMessage, error) {
	if len(callIDs) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT dialog FROM call_dialogs WHERE call_id = ANY($1) ORDER BY id`, callIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PruneDialogs deletes the stored legs of ended calls (any node's), saved more than a minute
// ago: nobody will BYE them. Every node's watch runs it twice a minute (Tick); at most 5,000
// rows a run.
func (w *NodeWatch) PruneDialogs(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, max(w.opts.Interval, time.Second))
	defer cancel()
	_, err := w.pool.Exec(pctx, `DELETE FROM call_dialogs WHERE id IN (
		SELECT d.id FROM call_dialogs d WHERE d.saved_at < now() - interval '1 minute'
		  AND EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = d.call_id AND e.type = $1)
		LIMIT 5000)`, callevent.EventEnded)
	if err != nil {
		return fmt.Errorf("eventlog: prune call_dialogs: %w", err)
	}
	return nil
}
