package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Several gateway nodes share one database. Each beats in its nodes row (NodeWatch); a node
// whose beat is older than LostAfter is lost, and exactly one surviving node closes the calls
// it ran: every call whose call.started names the node (NodeSink stamps it) and whose events
// hold no call.ended gets one, outcome failed, cause node_lost — preceded, for an inbound call
// no agent or voicemail had taken, by a call.abandoned (where queue or ivr), so that the ticketing
// rules give it the ticket of a caller left waiting (TC-5). The row lock on the lost
// node's row (FOR UPDATE SKIP LOCKED) picks the one survivor; swept_at records that it is
// done, so nobody does it twice. Time is the database's (now()), so the nodes' clocks do not
// matter.

// Defaults of NodeWatchOptions, defined once (the configuration's defaults are these).
const (
	// DefaultHeartbeatInterval is how often a node beats and looks for lost nodes.
	DefaultHeartbeatInterval = 5 * time.Second
	// DefaultNodeLostAfter is how old a node's last beat is when it counts as lost: three
	// missed beats at the default interval.
	DefaultNodeLostAfter = 15 * time.Second
)

// NodeLostSeqGap is how far past the last seq the database holds a node_lost call.ended is
// placed. The lost node may hold events of the call in its local spool (it had lost the
// database before it died, or it is alive but cut off); they are acknowledged, keep their own
// seqs and reach the table when it comes back. The gap leaves them room instead of taking
// their seq (a second event with the same call and seq is dropped on insert). The rules
// engine applies the call.ended past the gap after its gap timeout.
const NodeLostSeqGap = 1 << 20

// nodeLostNamespace makes the ids of node_lost closes deterministic (UUIDv5): a sweep that is
// repeated (its transaction rolled back after the events were stored) stores nothing twice.
var nodeLostNamespace = uuid.MustParse("1c0e6f8a-4b7d-5e21-8f3a-9d2c6b4e7a10")

// NodeLostEndedID is the id of the call.ended that closes callID after its node was lost.
func NodeLostEndedID(callID string) string {
	return uuid.NewSHA1(nodeLostNamespace, []byte(callID+"\x00node_lost")).String()
}

// NodeLostAbandonedID is the id of the call.abandoned that precedes a lost node's call's
// node_lost call.ended when no agent or voicemail had taken the call (Sweep).
func NodeLostAbandonedID(callID string) string {
	return uuid.NewSHA1(nodeLostNamespace, []byte(callID+"\x00node_lost_abandoned")).String()
}

// NodeSink is the sink of the events of the calls this node runs: it stamps each call.started
// with the log's node (Options.Node), so that another node can close the call when this one
// is lost, and emits through the log. Events from outside (POST /call_events) go to the log
// directly and name no node.
func (l *Log) NodeSink() callevent.Sink { return nodeSink{l} }

type nodeSink struct{ l *Log }

func (s nodeSink) Emit(ctx context.Context, e callevent.Event) error {
	if e.Type == callevent.EventStarted && e.Node == "" {
		e.Node = s.l.opts.Node
	}
	return s.l.Emit(ctx, e)
}

// EmitBatch is Emit of several events of one call at once, in order (the log's EmitBatch: one
// wait for its group commit, not one per event). Without it a call's events queued together
// (the SIP emitter hands them over as a batch) went one request and one commit wait each.
// The caller's slice is not changed: a call.started to stamp is copied first.
func (s nodeSink) EmitBatch(ctx context.Context, events []callevent.Event) error {
	for i := range events {
		if events[i].Type == callevent.EventStarted && events[i].Node == "" {
			events = slices.Clone(events)
			for j := i; j < len(events); j++ {
				if events[j].Type == callevent.EventStarted && events[j].Node == "" {
					events[j].Node = s.l.opts.Node
				}
			}
			break
		}
	}
	return s.l.EmitBatch(ctx, events)
}

// NodeWatchOptions configure a NodeWatch. Zero values take the defaults noted.
type NodeWatchOptions struct {
	// Log receives the call.ended events that close a lost node's calls, and names this node
	// (its Options.Node). Required.
	Log *Log
	// Interval is how often the node beats and looks for lost nodes. Required: a node that
	// does not beat runs no NodeWatch (DefaultHeartbeatInterval is the configuration's default).
	Interval time.Duration
	// LostAfter is how old a node's last beat is when it counts as lost (default
	// DefaultNodeLostAfter). Give it at least two intervals, or a slow beat looks like a loss.
	LostAfter time.Duration
	Logger    *slog.Logger
	// Registerer, when set, receives switchboard_cluster_nodes_live and
	// switchboard_calls_closed_node_lost_total{lost_node}.
	Registerer prometheus.Registerer
	// OnLost, when set, is told each lost node this node swept (exactly one survivor sweeps a
	// loss), after the sweep is recorded, on the watch's goroutine and with no lock held: the
	// wiring clears the node's agents and waiting calls from the shared ACD
	// (ivr.ACD.NodeLost). An error is logged; the node's next start clears them too.
	OnLost func(ctx context.Context, node string) error
	// OnLostDialogs, when set, is given the dialog states a DialogStore saved for the answered
	// legs of the calls this node just closed for a lost node (the opaque JSON the store was
	// given, oldest first), after the sweep is recorded, on the watch's goroutine and with no
	// lock held; it must not block (the wiring has sip BYE the far ends in the background).
	OnLostDialogs func(node string, dialogs []json.RawMessage)
}

// NodeWatch beats for this node and closes the calls of lost nodes. Its goroutine owns the
// ticks; Tick may also be called directly (tests). It is safe for concurrent use.
type NodeWatch struct {
	opts   NodeWatchOptions
	pool   *pgxpool.Pool
	node   string
	log    *slog.Logger
	live   prometheus.Gauge
	closed *prometheus.CounterVec

	started bool         // set once by StartNodeWatch, before run starts
	beaten  atomic.Bool  // a beat of this process succeeded
	others  atomic.Int64 // other live nodes at the last look (Others)
	pruned  atomic.Int64 // unix nanoseconds of the last prune of call_dialogs (Tick)
	stop    chan struct{}
	done    chan struct{} // closed when run returns
	once    sync.Once

	// sweptMu guards swept: the calls this node closed for a lost node, and when (Sweep).
	sweptMu sync.Mutex
	swept   map[string]time.Time
}

// sweptKeep is how long Sweep remembers a call it closed. The call.ended it stored may sit in
// this node's spool while the database is slow — which is also when a node is seen lost, back
// and lost again — and a second sweep, not finding it in the table, closed the call again: its
// events were dropped as duplicates on insert, but the call counted twice in
// switchboard_calls_closed_node_lost_total and its far ends got a second BYE.
const sweptKeep = time.Hour

// alreadySwept reports whether this node closed callID in an earlier sweep.
func (w *NodeWatch) alreadySwept(callID string) bool {
	w.sweptMu.Lock()
	defer w.sweptMu.Unlock()
	_, ok := w.swept[callID]
	return ok
}

// noteSwept remembers the calls a recorded sweep closed, and forgets those older than sweptKeep.
func (w *NodeWatch) noteSwept(callIDs []string) {
	now := time.Now()
	w.sweptMu.Lock()
	defer w.sweptMu.Unlock()
	if w.swept == nil {
		w.swept = map[string]time.Time{}
	}
	for id, at := range w.swept {
		if now.Sub(at) > sweptKeep {
			delete(w.swept, id)
		}
	}
	for _, id := range callIDs {
		w.swept[id] = now
	}
}

// StartNodeWatch beats once before it returns (so that the calls the node takes next come
// after a beat: a survivor never counts them among a lost run's), then beats and watches
// every Interval until Close. The first beat waits at most max(Interval, 1 s); while the
// database is away it fails and the watch goes on.
func StartNodeWatch(opts NodeWatchOptions) (*NodeWatch, error) {
	w, err := NewNodeWatch(opts)
	if err != nil {
		return nil, err
	}
	if err := w.beat(context.Background()); err != nil {
		w.log.Debug("node watch: first beat failed", "err", err)
	}
	w.started = true // before the goroutine: Close reads it
	go w.run()
	return w, nil
}

// NewNodeWatch makes a NodeWatch without starting its goroutine: Tick drives it.
func NewNodeWatch(opts NodeWatchOptions) (*NodeWatch, error) {
	if opts.Log == nil || opts.Interval <= 0 {
		return nil, errors.New("eventlog: node watch needs the Log and an Interval")
	}
	if opts.LostAfter <= 0 {
		opts.LostAfter = DefaultNodeLostAfter
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &NodeWatch{
		opts: opts, pool: opts.Log.opts.Pool, node: opts.Log.opts.Node, log: opts.Logger,
		live: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_cluster_nodes_live",
			Help: "Gateway nodes whose heartbeat in the database is younger than the lost-node timeout, this one included (as seen at this node's last beat).",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_calls_closed_node_lost_total",
			Help: "Calls of a lost node (lost_node) this node closed with call.ended, outcome failed, cause node_lost.",
		}, []string{"lost_node"}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{w.live, w.closed} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("eventlog: node watch metrics: %w", err)
			}
		}
	}
	return w, nil
}

// Close stops the watch and waits for a tick in progress. A started watch then records that
// the node left on purpose (swept_at 'infinity', cleared by its next beat), so the others do
// not count it lost — its calls ended with the shutdown — and its next start does not say it
// was. It is idempotent; it does not close the Log.
func (w *NodeWatch) Close() {
	first := false
	w.once.Do(func() { close(w.stop); first = true })
	if !w.started {
		return
	}
	<-w.done
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := w.pool.Exec(ctx, `UPDATE nodes SET swept_at = 'infinity' WHERE name = $1`, w.node); err != nil {
			w.log.Warn("node watch: could not record a clean stop; the other nodes will count this one lost (it has no open calls)", "err", err)
		}
	}
}

func (w *NodeWatch) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		if err := w.Tick(ctx); err != nil && ctx.Err() == nil {
			// The database is away: the node cannot beat (the others will count it lost
			// once LostAfter passes) nor look after the others. Logged at debug: /readyz
			// and the degraded-mode log line say the database is away.
			w.log.Debug("node watch: tick failed", "err", err)
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// Tick beats once for this node, updates the live-nodes gauge, and closes the calls of every
// node lost meanwhile that no other node has taken care of. The error is the database's.
func (w *NodeWatch) Tick(ctx context.Context) error {
	if err := w.beat(ctx); err != nil {
		return err
	}
	err := w.look(ctx)
	// The stored legs of ended calls, at most twice a minute (one DELETE; any node may).
	if now := time.Now().UnixNano(); ctx.Err() == nil {
		if last := w.pruned.Load(); now-last >= int64(dialogPruneEvery) && w.pruned.CompareAndSwap(last, now) {
			err = errors.Join(err, w.PruneDialogs(ctx))
		}
	}
	return err
}

// dialogPruneEvery is how often a node's watch deletes the stored legs of ended calls.
const dialogPruneEvery = 30 * time.Second

// Others is how many other nodes were alive at the watch's last look: 0 for a node alone on
// its database (nobody would close its calls if it were lost).
func (w *NodeWatch) Others() int { return int(w.others.Load()) }

// beat records that this node is alive, and says so when another node counted it lost.
//
// The beat is not cut short by Close (its context drops the watch's cancellation, keeping its
// own timeout): a beat cancelled in flight may still reach the database after Close recorded
// the clean stop, and its UPDATE would clear that mark, so the stopped node would be counted
// lost a moment later and its calls closed (seen in TestCleanStopIsNotALostNode, about one run
// in thirty). Finished, it commits before Close writes.
func (w *NodeWatch) beat(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(w.opts.Interval, time.Second))
	defer cancel()
	var declaredLost bool
	err := w.pool.QueryRow(bctx, `
		WITH old AS (SELECT heartbeat_at, swept_at FROM nodes WHERE name = $1 FOR UPDATE)
		UPDATE nodes n SET heartbeat_at = now(), swept_at = nullif(n.swept_at, 'infinity') FROM old WHERE n.name = $1
		RETURNING old.swept_at IS NOT NULL AND old.swept_at <> 'infinity' AND old.swept_at >= old.heartbeat_at`, w.node).Scan(&declaredLost)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Not recorded yet (RecordNode runs once the database answers): nothing to beat.
		return nil
	case err != nil:
		return fmt.Errorf("eventlog: heartbeat of %s: %w", w.node, err)
	}
	first := !w.beaten.Swap(true)
	switch {
	case declaredLost && first:
		w.log.Warn("this node was counted lost before this start (it did not beat for node_lost_after): another node closed any calls it had left open (cause node_lost)", "node", w.node)
	case declaredLost:
		w.log.Error("this node was counted lost while it could not beat (cut off from the database or stalled) and another node closed its calls (cause node_lost); their events still in this node's spool are replayed",
			"node", w.node)
	}
	return nil
}

// look updates the live-nodes gauge and sweeps every node lost meanwhile.
func (w *NodeWatch) look(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, max(w.opts.Interval, time.Second))
	rows, err := w.pool.Query(lctx, `SELECT name, heartbeat_at >= now() - $1 * interval '1 millisecond',
			heartbeat_at < now() - $1 * interval '1 millisecond' AND (swept_at IS NULL OR swept_at < heartbeat_at)
		FROM nodes ORDER BY name`, w.opts.LostAfter.Milliseconds())
	var lost []string
	live := 0
	if err == nil {
		for rows.Next() {
			var name string
			var isLive, toSweep bool
			if err = rows.Scan(&name, &isLive, &toSweep); err != nil {
				break
			}
			if name != w.node {
				w.closed.WithLabelValues(name) // at 0 from the first sight, like every labelled series
			}
			if isLive {
				live++
			}
			if toSweep && name != w.node {
				lost = append(lost, name)
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	cancel()
	if err != nil {
		return fmt.Errorf("eventlog: list nodes: %w", err)
	}
	w.live.Set(float64(live))
	w.others.Store(int64(max(live-1, 0))) // live counts this node: it has just beaten
	var errs []error
	for _, name := range lost {
		if _, err := w.Sweep(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sweep closes the open calls of node if it is lost and no other node did so since its last
// beat, and returns how many it closed. The lost node's row stays locked from the check to the
// record that the sweep is done, so two survivors never both close the calls (the second skips
// the locked row, then sees swept_at). The call.ended events are stored through the log before
// the sweep is recorded; a sweep cut short is repeated by whoever comes next, and its events
// (same ids, same seqs) are dropped on insert.
func (w *NodeWatch) Sweep(ctx context.Context, node string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, max(w.opts.LostAfter, 30*time.Second))
	defer cancel()
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("eventlog: sweep %s: %w", node, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var lastBeat time.Time
	err = tx.QueryRow(ctx, `SELECT heartbeat_at FROM nodes
		WHERE name = $1 AND heartbeat_at < now() - $2 * interval '1 millisecond'
		  AND (swept_at IS NULL OR swept_at < heartbeat_at)
		FOR UPDATE SKIP LOCKED`, node, w.opts.LostAfter.Milliseconds()).Scan(&lastBeat)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil // alive again, taken care of, or being taken care of by another node
	}
	if err != nil {
		return 0, fmt.Errorf("eventlog: sweep %s: lock: %w", node, err)
	}
	// The calls the node started while it was still counted alive (its clock may run ahead
	// of the database's by up to LostAfter): a call started after a restart is the restarted
	// node's own business.
	rows, err := tx.Query(ctx, `
		SELECT s.call_id, m.seq, m.at, s.body->>'direction' = 'inbound' AND NOT m.took, m.queued FROM call_events s
		CROSS JOIN LATERAL (SELECT max(seq) AS seq, max(at) AS at,
				coalesce(bool_or(e.type IN ($6, $7, $8)), false) AS took, coalesce(bool_or(e.type = $9), false) AS queued
			FROM call_events e WHERE e.call_id = s.call_id) m
		WHERE s.type = $1 AND s.body->>'node' = $2 AND s.at <= $3::timestamptz + $4 * interval '1 millisecond'
		  AND NOT EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = s.call_id AND e.type = $5)
		ORDER BY s.call_id`,
		callevent.EventStarted, node, lastBeat, w.opts.LostAfter.Milliseconds(), callevent.EventEnded,
		callevent.EventAnswered, callevent.EventVoicemail, callevent.EventAbandoned, callevent.EventQueued)
	if err != nil {
		return 0, fmt.Errorf("eventlog: sweep %s: open calls: %w", node, err)
	}
	var events []callevent.Event
	var callIDs []string
	calls := 0
	for rows.Next() {
		var callID string
		var seq int64
		var at time.Time
		var untaken, queued bool
		if err := rows.Scan(&callID, &seq, &at, &untaken, &queued); err != nil {
			rows.Close()
			return 0, fmt.Errorf("eventlog: sweep %s: open calls: %w", node, err)
		}
		if w.alreadySwept(callID) {
			continue // closed by this node before; its call.ended is on its way (sweptKeep)
		}
		calls++
		callIDs = append(callIDs, callID)
		// Ended when the node was last seen alive, never before the call's last event.
		ended := lastBeat
		if at.After(ended) {
			ended = at
		}
		if untaken {
			// An inbound call lost before an agent or the voicemail took it: to the ticketing
			// rules its caller was left waiting with nobody, as a caller who gives up is
			// (TC-5: a ticket tagged abandoned, when the line's abandoned_calls_create_tickets
			// is on), so that someone calls back. One seq before the call.ended, still past
			// the gap the lost node's spooled events may need.
			where := callevent.WhereIVR
			if queued {
				where = callevent.WhereQueue
			}
			events = append(events, callevent.Event{ID: NodeLostAbandonedID(callID), CallID: callID, Seq: seq + NodeLostSeqGap - 1,
				Type: callevent.EventAbandoned, At: ended.UTC(), Where: where})
		}
		events = append(events, callevent.Event{ID: NodeLostEndedID(callID), CallID: callID, Seq: seq + NodeLostSeqGap,
			Type: callevent.EventEnded, At: ended.UTC(), Outcome: callevent.OutcomeFailed, Cause: callevent.CauseNodeLost,
			HangupBy: callevent.HangupByGateway})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("eventlog: sweep %s: open calls: %w", node, err)
	}
	if len(events) > 0 {
		w.log.Warn("node lost: closing the calls it ran", "lost_node", node, "last_beat", lastBeat.UTC(), "calls", calls)
	} else {
		w.log.Info("node stopped beating; it had no open calls", "lost_node", node, "last_beat", lastBeat.UTC())
	}
	if len(events) > 0 {
		if err := w.opts.Log.EmitBatch(ctx, events); err != nil {
			return 0, fmt.Errorf("eventlog: sweep %s: close calls: %w", node, err)
		}
	}
	// The far ends' dialogs, for the BYEs (read in the transaction: only the survivor that
	// records the sweep sends them). Without them the sweep still counts.
	var dialogs []json.RawMessage
	if w.opts.OnLostDialogs != nil && len(callIDs) > 0 {
		// In a savepoint: a failed read must not abort the sweep's transaction.
		sp, err := tx.Begin(ctx)
		if err == nil {
			if dialogs, err = lostDialogs(ctx, sp, callIDs); err != nil {
				_ = sp.Rollback(ctx)
			} else {
				err = sp.Commit(ctx)
			}
		}
		if err != nil {
			w.log.Warn("node lost: could not read its calls' dialogs: their far ends get no BYE from this node", "lost_node", node, "err", err)
			dialogs = nil
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE nodes SET swept_at = now() WHERE name = $1`, node); err != nil {
		return 0, fmt.Errorf("eventlog: sweep %s: record: %w", node, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("eventlog: sweep %s: commit: %w", node, err)
	}
	w.noteSwept(callIDs)
	w.closed.WithLabelValues(node).Add(float64(calls))
	for _, e := range events {
		if e.Type != callevent.EventEnded {
			continue
		}
		w.log.Warn("call closed: its node was lost", "call_id", e.CallID, "lost_node", node, "outcome", e.Outcome,
			"cause", e.Cause, "ended_at", e.At, "seq", e.Seq)
	}
	if len(dialogs) > 0 {
		w.log.Warn("node lost: sending BYE to its calls' far ends", "lost_node", node, "legs", len(dialogs))
		w.opts.OnLostDialogs(node, dialogs)
	}
	if w.opts.OnLost != nil {
		if err := w.opts.OnLost(ctx, node); err != nil {
			w.log.Error("node lost: clearing its agents and waiting calls failed; its next start clears them", "lost_node", node, "err", err)
		} else {
			w.log.Warn("node lost: its agents are offline until their pages reconnect to another node", "lost_node", node)
		}
	}
	return calls, nil
}
