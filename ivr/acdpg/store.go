// Package acdpg keeps the ACD's shared state on PostgreSQL (ivr.SharedStore): the agents of a
// cluster of gateway nodes, their states and the node their page or SIP phone is attached to,
// queue membership, and the calls waiting in every queue in arrival order (tables acd_agents
// and acd_waiting, migration 013). Callbacks (callbacks.go) keeps the nodes' pending queue
// callbacks (ivr.CallbackStore, table acd_callbacks, migration 026), with or without shared
// queues.
//
// Dispatch pairs the oldest waiting call that has a free agent with the longest-idle available
// agent of its queue, one pair per transaction, locking the call's row and then the agent's with
// FOR UPDATE SKIP LOCKED: a claim is written only on a call and an agent whose rows it holds and
// found free, so no two nodes ever offer the same call or the same agent, and dispatch never
// waits behind a call or an agent another statement is changing (a caller leaving, an answer
// being recorded). Dispatchers themselves take turns (a transaction-level advisory lock), so
// arrival order and longest idle hold exactly across the cluster rather than "nearly". Every change ends with
// NOTIFY switchboard_acd; each Store LISTENs on a connection of its own (pgx's
// WaitForNotification) and signals Wake, and the ACD re-checks on a timer besides, so a
// notification lost with a connection costs at most one recheck interval.
//
// Statements that touch both tables lock the waiting call's row before the agent's, the order
// dispatch uses, so they cannot deadlock one another; a deadlock PostgreSQL reports anyway
// (40P01) or a serialization failure is retried a few times.
//
// Times are the database's (now()): the nodes' clocks do not decide who is longest idle.
package acdpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pglisten"
	"github.com/switchboard-voice/switchboard/ivr"
)

// Channel is the NOTIFY channel of the ACD's changes.
const Channel = "switchboard_acd"

// Options configure New.
type Options struct {
	// Pool reaches the database (migrated to 019 or later). Required. One of its connections
	// is held by the listener for the Store's life.
	Pool *pgxpool.Pool
	// Logger; nil discards.
	Logger *slog.Logger
	// ListenRetry is the pause before the listener reconnects after losing its connection
	// (default 1 s).
	ListenRetry time.Duration
}

// Store is the ACD's shared state on PostgreSQL. Its listener goroutine (from New to Close) owns
// the listening connection; every other method runs on the caller's goroutine with a pooled
// connection. Safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	opts Options
	wake chan struct{}

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var _ ivr.SharedStore = (*Store)(nil)

// maxDispatch bounds the pairs one Dispatch claims, and maxContended the attempts that found
// the chosen call's agents locked by another node's dispatch (that node's commit wakes us).
const (
	maxDispatch  = 256
	maxContended = 8
	maxAttempts  = 4
)

// New returns a Store and starts its listener.
func New(opts Options) (*Store, error) {
	if opts.Pool == nil {
		return nil, errors.New("acdpg: new: Pool is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ListenRetry <= 0 {
		opts.ListenRetry = time.Second
	}
	s := &Store{pool: opts.Pool, log: opts.Logger, opts: opts, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.listen()
	return s, nil
}

// Close stops the listener and waits for it. It does not close the pool. Idempotent.
func (s *Store) Close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// Wake is signalled on every NOTIFY of the channel (and after the listener reconnects, since
// notifications may have been missed meanwhile).
func (s *Store) Wake() <-chan struct{} { return s.wake }

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) listen() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	pglisten.Run(ctx, s.pool, pglisten.Options{
		Channel: Channel, FirstRetry: s.opts.ListenRetry, MaxRetry: s.opts.ListenRetry, Log: s.log,
		Lost:     "acdpg: listener lost its connection; the ACD re-checks on its timer meanwhile",
		OnListen: s.signal, // whatever happened while no one listened
		OnNotify: func(string) { s.signal() },
	})
}

// tx runs fn in a transaction that ends with a NOTIFY, retrying deadlocks and serialization
// failures.
func (s *Store) tx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	var err error
	for range maxAttempts {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, Channel)
			return err
		})
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			continue
		}
		break
	}
	if err != nil {
		return fmt.Errorf("acdpg: %s: %w", op, err)
	}
	return nil
}

const agentCols = `agent_id, email, name, queues, priorities, state, since, missed, coalesce(offering, ''),
	coalesce(call_id, ''), coalesce(page_node, phone_node, ''), seq, coalesce(call_node, '')`

func scanAgent(row pgx.Row) (ivr.AgentStatus, error) {
	var st ivr.AgentStatus
	var state string
	var seq int64
	err := row.Scan(&st.ID, &st.Email, &st.Name, &st.Queues, &st.Priority, &state, &st.Since, &st.MissedOffers, &st.Offering,
		&st.CallID, &st.Node, &seq, &st.CallNode)
	st.State, st.Seq = ivr.AgentState(state), uint64(seq)
	return st, err
}

func (s *Store) agentTx(ctx context.Context, q pgx.Tx, id int64) (ivr.AgentStatus, error) {
	st, err := scanAgent(q.QueryRow(ctx, `SELECT `+agentCols+` FROM acd_agents WHERE agent_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
	}
	return st, err
}

// Join records the node's roster and clears what its previous run left.
func (s *Store) Join(ctx context.Context, node string, agents []ivr.Agent) error {
	return s.tx(ctx, "join "+node, func(tx pgx.Tx) error {
		if err := clearNode(ctx, tx, node); err != nil {
			return err
		}
		return upsertAgents(ctx, tx, agents)
	})
}

// upsertAgents writes the agents' names, emails, queues and priorities.
func upsertAgents(ctx context.Context, tx pgx.Tx, agents []ivr.Agent) error {
	for _, a := range agents {
		queues := a.Queues
		if queues == nil {
			queues = []string{}
		}
		prio := a.Priority
		if prio == nil {
			prio = map[string]int{}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO acd_agents (agent_id, email, name, queues, priorities) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (agent_id) DO UPDATE SET email = excluded.email, name = excluded.name, queues = excluded.queues,
				priorities = excluded.priorities`,
			a.ID, a.Email, a.Name, queues, prio); err != nil {
			return err
		}
	}
	return nil
}

// SetRoster records the roster the admin API changed (ivr.ACD.Apply): the listed agents are
// written (a new one offline); an agent not listed is taken out of every queue at once and its
// row deleted once it is off its call and offered nothing (this or a later SetRoster — every
// node applies the roster again on its periodic reload).
func (s *Store) SetRoster(ctx context.Context, agents []ivr.Agent) error {
	ids := make([]int64, 0, len(agents))
	for _, a := range agents {
		ids = append(ids, a.ID)
	}
	return s.tx(ctx, "set roster", func(tx pgx.Tx) error {
		if err := upsertAgents(ctx, tx, agents); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE acd_agents SET queues = '{}', priorities = '{}'
			WHERE NOT agent_id = ANY($1) AND (queues <> '{}' OR priorities <> '{}')`, ids); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM acd_agents WHERE NOT agent_id = ANY($1) AND state <> 'busy'
			AND offering IS NULL AND call_id IS NULL`, ids)
		return err
	})
}

// NodeLost clears what node held.
func (s *Store) NodeLost(ctx context.Context, node string) error {
	return s.tx(ctx, "node lost "+node, func(tx pgx.Tx) error { return clearNode(ctx, tx, node) })
}

// clearNode: the node's waiting calls leave; agents attached there go offline (a busy one
// after its call) and are detached; claims and calls of the node are released, their agents
// freed (the state they chose meanwhile, else available).
func clearNode(ctx context.Context, tx pgx.Tx, node string) error {
	for _, q := range []string{
		`DELETE FROM acd_waiting WHERE node = $1`,
		`UPDATE acd_agents SET after_state = 'offline'
			WHERE state = 'busy' AND (page_node = $1 OR (page_node IS NULL AND phone_node = $1))`,
		`UPDATE acd_agents SET state = 'offline', since = now(), seq = nextval('acd_seq'), after_state = NULL
			WHERE state NOT IN ('offline', 'busy') AND (page_node = $1 OR (page_node IS NULL AND phone_node = $1))`,
		`UPDATE acd_agents SET page_node = NULL WHERE page_node = $1`,
		`UPDATE acd_agents SET phone_node = NULL WHERE phone_node = $1`,
		`UPDATE acd_agents SET offering = NULL, call_node = NULL
			WHERE call_node = $1 AND state NOT IN ('busy', 'wrap_up')`,
		`UPDATE acd_agents SET state = coalesce(after_state, 'available'), after_state = NULL, offering = NULL,
				call_id = NULL, call_node = NULL, since = now(), seq = nextval('acd_seq'),
				idle_since = CASE WHEN after_state IS NULL OR after_state = 'available' THEN now() ELSE idle_since END,
				missed = CASE WHEN after_state IS NULL OR after_state = 'available' THEN 0 ELSE missed END
			WHERE call_node = $1 AND state IN ('busy', 'wrap_up')`,
	} {
		if _, err := tx.Exec(ctx, q, node); err != nil {
			return err
		}
	}
	return nil
}

// Agents returns every agent's status, by id.
func (s *Store) Agents(ctx context.Context) ([]ivr.AgentStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+agentCols+` FROM acd_agents ORDER BY agent_id`)
	if err != nil {
		return nil, fmt.Errorf("acdpg: agents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ivr.AgentStatus, error) { return scanAgent(r) })
	if err != nil {
		return nil, fmt.Errorf("acdpg: agents: %w", err)
	}
	return out, nil
}

// Agent returns one agent's status.
func (s *Store) Agent(ctx context.Context, id int64) (ivr.AgentStatus, error) {
	st, err := scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentCols+` FROM acd_agents WHERE agent_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
	}
	if err != nil {
		return st, fmt.Errorf("acdpg: agent %d: %w", id, err)
	}
	return st, nil
}

// SetState applies an agent's chosen state (ivr.ACD.SetState's rules).
func (s *Store) SetState(ctx context.Context, id int64, st ivr.AgentState) (ivr.AgentStatus, error) {
	var out ivr.AgentStatus
	err := s.tx(ctx, "set state", func(tx pgx.Tx) error {
		var err error
		out, err = choose(ctx, tx, id, st)
		return err
	})
	if err == nil && out.State == ivr.StateAvailable {
		s.untry(ctx, id)
	}
	return out, err
}

// choose applies a chosen state under the agent's row lock: kept for after the call while
// busy, nothing when unchanged, else the state now (available: idle from now, misses reset;
// a wrap-up this ends is no longer any node's to time).
func choose(ctx context.Context, tx pgx.Tx, id int64, st ivr.AgentState) (ivr.AgentStatus, error) {
	var cur string
	err := tx.QueryRow(ctx, `SELECT state FROM acd_agents WHERE agent_id = $1 FOR UPDATE`, id).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return ivr.AgentStatus{}, fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
	}
	if err != nil {
		return ivr.AgentStatus{}, err
	}
	switch {
	case cur == string(ivr.StateBusy):
		_, err = tx.Exec(ctx, `UPDATE acd_agents SET after_state = $2 WHERE agent_id = $1`, id, string(st))
	case cur == string(st):
	default:
		_, err = tx.Exec(ctx, `UPDATE acd_agents SET state = $2, since = now(), seq = nextval('acd_seq'),
			idle_since = CASE WHEN $2 = 'available' THEN now() ELSE idle_since END,
			missed = CASE WHEN $2 = 'available' THEN 0 ELSE missed END,
			call_node = CASE WHEN state = 'wrap_up' AND offering IS NULL THEN NULL ELSE call_node END
			WHERE agent_id = $1`, id, string(st))
	}
	if err != nil {
		return ivr.AgentStatus{}, err
	}
	return agentOf(ctx, tx, id)
}

func agentOf(ctx context.Context, tx pgx.Tx, id int64) (ivr.AgentStatus, error) {
	st, err := scanAgent(tx.QueryRow(ctx, `SELECT `+agentCols+` FROM acd_agents WHERE agent_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
	}
	return st, err
}

// untry lets an agent who became available be offered again the calls it missed before. A
// hint, outside the state's transaction (so that no statement locks an agent, then calls).
func (s *Store) untry(ctx context.Context, id int64) {
	if _, err := s.pool.Exec(ctx, `UPDATE acd_waiting SET tried = array_remove(tried, $1) WHERE $1 = ANY(tried)`, id); err != nil {
		s.log.Debug("acdpg: forget the calls an agent missed", "agent_id", id, "err", err)
	}
}

// Attach records where the agent's page or phone is attached.
func (s *Store) Attach(ctx context.Context, id int64, via ivr.Via, node string, on bool) (ivr.AgentStatus, bool, error) {
	col := "page_node"
	if via == ivr.ViaPhone {
		col = "phone_node"
	} else if via != ivr.ViaPage {
		return ivr.AgentStatus{}, false, fmt.Errorf("acdpg: attach: unknown way %q", via)
	}
	var out ivr.AgentStatus
	changed := false
	err := s.tx(ctx, "attach", func(tx pgx.Tx) error {
		var cur *string
		err := tx.QueryRow(ctx, `SELECT `+col+` FROM acd_agents WHERE agent_id = $1 FOR UPDATE`, id).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
		}
		if err != nil {
			return err
		}
		switch {
		case on:
			changed = true
			_, err = tx.Exec(ctx, `UPDATE acd_agents SET `+col+` = $2 WHERE agent_id = $1`, id, node)
		case cur == nil || *cur != node:
			// Attached elsewhere since (the page reconnected to another node): that stands.
		default:
			changed = true
			if _, err = tx.Exec(ctx, `UPDATE acd_agents SET `+col+` = NULL WHERE agent_id = $1`, id); err == nil && via == ivr.ViaPage {
				_, err = choose(ctx, tx, id, ivr.StateOffline)
			}
		}
		if err != nil {
			return err
		}
		out, err = agentOf(ctx, tx, id)
		return err
	})
	return out, changed, err
}

// Waiting returns every waiting call, oldest first.
func (s *Store) Waiting(ctx context.Context) ([]ivr.WaitingCall, error) {
	rows, err := s.pool.Query(ctx, `SELECT call_id, queue, node, enqueued_at, coalesce(offering, 0) FROM acd_waiting ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("acdpg: waiting: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ivr.WaitingCall, error) {
		var w ivr.WaitingCall
		err := r.Scan(&w.CallID, &w.Queue, &w.Node, &w.Enqueued, &w.Offering)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("acdpg: waiting: %w", err)
	}
	return out, nil
}

// Enqueue puts a call at the end of its queue (again, if it was there: a transfer back).
func (s *Store) Enqueue(ctx context.Context, callID, queue, node string) error {
	return s.tx(ctx, "enqueue", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO acd_waiting (call_id, queue, node) VALUES ($1, $2, $3)
			ON CONFLICT (call_id) DO UPDATE SET queue = excluded.queue, node = excluded.node, seq = nextval('acd_seq'),
				enqueued_at = now(), offering = NULL, claim_seq = NULL, tried = '{}'`, callID, queue, node)
		return err
	})
}

// Position is the call's 1-based place in its queue, 0 when it is not waiting.
func (s *Store) Position(ctx context.Context, callID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(w.*) FROM acd_waiting me
		JOIN acd_waiting w ON w.queue = me.queue AND w.seq <= me.seq WHERE me.call_id = $1`, callID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("acdpg: position: %w", err)
	}
	return n, nil
}

// dispatchLock is the transaction-level advisory lock key that serializes dispatchers (an
// arbitrary constant: "SBACD" in ASCII).
const dispatchLock int64 = 0x5342414344

// errContended: the chosen call's free agents were all locked by another dispatch.
var errContended = errors.New("acdpg: agents locked by another dispatch")

// Dispatch claims (call, agent) pairs, one per transaction, until no waiting call has a free
// agent it was not offered yet.
func (s *Store) Dispatch(ctx context.Context) (int, error) {
	n, contended := 0, 0
	for n < maxDispatch && contended < maxContended {
		claimed := false
		err := s.tx(ctx, "dispatch", func(tx pgx.Tx) error {
			// One dispatcher at a time across the cluster (held to the commit): without it, two
			// nodes would skip each other's locked rows and pair the second call or the second
			// idlest agent while the first is being paired — never twice, but out of order.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, dispatchLock); err != nil {
				return err
			}
			var callID, queue, node string
			var tried []int64
			// The oldest unclaimed call that has a free agent it did not miss (checked without
			// locks; the agent's lock below decides).
			err := tx.QueryRow(ctx, `SELECT w.call_id, w.queue, w.node, w.tried FROM acd_waiting w
				WHERE w.offering IS NULL AND EXISTS (SELECT 1 FROM acd_agents a
					WHERE a.state = 'available' AND a.offering IS NULL AND w.queue = ANY(a.queues)
					  AND NOT a.agent_id = ANY(w.tried))
				ORDER BY w.seq LIMIT 1 FOR UPDATE OF w SKIP LOCKED`).Scan(&callID, &queue, &node, &tried)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			// Its free agent of the best priority in the queue (1 first; none set is 1), the longest
			// idle of them; the row lock re-checks the agent is still free.
			var agent int64
			err = tx.QueryRow(ctx, `SELECT agent_id FROM acd_agents
				WHERE state = 'available' AND offering IS NULL AND $1 = ANY(queues) AND NOT agent_id = ANY($2)
				ORDER BY coalesce(nullif((priorities->>$1)::int, 0), 1), idle_since, agent_id
				LIMIT 1 FOR UPDATE SKIP LOCKED`, queue, tried).Scan(&agent)
			if errors.Is(err, pgx.ErrNoRows) {
				return errContended
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE acd_waiting SET offering = $2, claim_seq = nextval('acd_seq') WHERE call_id = $1`,
				callID, agent); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE acd_agents SET offering = $2, call_node = $3 WHERE agent_id = $1`,
				agent, callID, node); err != nil {
				return err
			}
			claimed = true
			return nil
		})
		switch {
		case errors.Is(err, errContended):
			contended++
			continue
		case err != nil:
			return n, err
		case !claimed:
			return n, nil
		}
		n++
	}
	return n, nil
}

// Claims returns the claimed pairs of node's waiting calls.
func (s *Store) Claims(ctx context.Context, node string) ([]ivr.Claim, error) {
	rows, err := s.pool.Query(ctx, `SELECT w.call_id, w.offering, coalesce(w.claim_seq, 0), coalesce(a.page_node, a.phone_node, '')
		FROM acd_waiting w JOIN acd_agents a ON a.agent_id = w.offering
		WHERE w.node = $1 AND w.offering IS NOT NULL ORDER BY w.seq`, node)
	if err != nil {
		return nil, fmt.Errorf("acdpg: claims: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ivr.Claim, error) {
		var c ivr.Claim
		var seq int64
		err := r.Scan(&c.CallID, &c.AgentID, &seq, &c.Node)
		c.Seq = uint64(seq)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("acdpg: claims: %w", err)
	}
	return out, nil
}

// Reserve claims one available agent for a call directly (a transfer to the agent).
func (s *Store) Reserve(ctx context.Context, id int64, callID, node string) (ivr.Claim, error) {
	c := ivr.Claim{CallID: callID, AgentID: id}
	err := s.tx(ctx, "reserve", func(tx pgx.Tx) error {
		var state string
		var busy bool
		err := tx.QueryRow(ctx, `SELECT state, offering IS NOT NULL, coalesce(page_node, phone_node, '')
			FROM acd_agents WHERE agent_id = $1 FOR UPDATE`, id).Scan(&state, &busy, &c.Node)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
		}
		if err != nil {
			return err
		}
		if state != string(ivr.StateAvailable) || busy {
			return fmt.Errorf("%w: agent %d is %s", ivr.ErrAgentUnavailable, id, state)
		}
		_, err = tx.Exec(ctx, `UPDATE acd_agents SET offering = $2, call_node = $3 WHERE agent_id = $1`, id, callID, node)
		return err
	})
	return c, err
}

// Answered: the agent is busy on the call, which leaves its queue.
func (s *Store) Answered(ctx context.Context, id int64, callID string) (ivr.AgentStatus, error) {
	var out ivr.AgentStatus
	err := s.tx(ctx, "answered", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM acd_waiting WHERE call_id = $1`, callID); err != nil {
			return err
		}
		// A state chosen while ringing (away, offline) applies after the call.
		tag, err := tx.Exec(ctx, `UPDATE acd_agents SET
				after_state = CASE WHEN state IN ('away', 'offline') THEN state ELSE after_state END,
				state = 'busy', since = now(), seq = nextval('acd_seq'), offering = NULL, call_id = $2, missed = 0
			WHERE agent_id = $1`, id, callID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
		}
		out, err = agentOf(ctx, tx, id)
		return err
	})
	return out, err
}

// Missed releases the claim, remembers the agent missed the call, and sends an agent who
// missed maxMissed offers in a row away.
func (s *Store) Missed(ctx context.Context, id int64, callID string, maxMissed int) (ivr.AgentStatus, bool, error) {
	var out ivr.AgentStatus
	retry := false
	err := s.tx(ctx, "missed", func(tx pgx.Tx) error {
		var queue *string
		var tried []int64
		err := tx.QueryRow(ctx, `UPDATE acd_waiting SET offering = NULL, claim_seq = NULL,
				tried = CASE WHEN $3 THEN array_append(tried, $2) ELSE tried END
			WHERE call_id = $1 AND offering = $2 RETURNING queue, tried`, callID, id, maxMissed >= 0).Scan(&queue, &tried)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		count := 0
		if maxMissed >= 0 {
			count = 1
		}
		var state string
		var missed int
		err = tx.QueryRow(ctx, `UPDATE acd_agents SET offering = NULL,
				call_node = CASE WHEN state IN ('busy', 'wrap_up') THEN call_node ELSE NULL END, missed = missed + $3
			WHERE agent_id = $1 AND offering = $2 RETURNING state, missed`, id, callID, count).Scan(&state, &missed)
		switch {
		case errors.Is(err, pgx.ErrNoRows): // released meanwhile (the node of its page was lost)
		case err != nil:
			return err
		case maxMissed > 0 && missed >= maxMissed && state == string(ivr.StateAvailable):
			if _, err := tx.Exec(ctx, `UPDATE acd_agents SET state = 'away', since = now(), seq = nextval('acd_seq')
				WHERE agent_id = $1`, id); err != nil {
				return err
			}
		}
		if queue != nil {
			// Retry after a pause when the only free agents of the queue are ones who missed it.
			err = tx.QueryRow(ctx, `SELECT
				EXISTS (SELECT 1 FROM acd_agents WHERE state = 'available' AND offering IS NULL AND $1 = ANY(queues) AND agent_id = ANY($2))
				AND NOT EXISTS (SELECT 1 FROM acd_agents WHERE state = 'available' AND offering IS NULL AND $1 = ANY(queues) AND NOT agent_id = ANY($2))`,
				*queue, tried).Scan(&retry)
			if err != nil {
				return err
			}
		}
		out, err = agentOf(ctx, tx, id)
		return err
	})
	return out, retry, err
}

// ClearTried lets the agents who missed the call be offered it again.
func (s *Store) ClearTried(ctx context.Context, callID string) error {
	return s.tx(ctx, "clear tried", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE acd_waiting SET tried = '{}' WHERE call_id = $1`, callID)
		return err
	})
}

// Leave takes the call out of its queue and releases its claim.
func (s *Store) Leave(ctx context.Context, callID string) error {
	return s.tx(ctx, "leave", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM acd_waiting WHERE call_id = $1`, callID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE acd_agents SET offering = NULL,
				call_node = CASE WHEN state IN ('busy', 'wrap_up') THEN call_node ELSE NULL END
			WHERE offering = $1`, callID)
		return err
	})
}

// CallEnded frees an agent after a call of node.
func (s *Store) CallEnded(ctx context.Context, id int64, node string, wrapUp bool) (ivr.AgentStatus, error) {
	var out ivr.AgentStatus
	err := s.tx(ctx, "call ended", func(tx pgx.Tx) error {
		var state string
		var after *string
		err := tx.QueryRow(ctx, `SELECT state, after_state FROM acd_agents WHERE agent_id = $1 FOR UPDATE`, id).Scan(&state, &after)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ivr.ErrUnknownAgent, id)
		}
		if err != nil {
			return err
		}
		if state == string(ivr.StateBusy) {
			next, callNode := string(ivr.StateAvailable), (*string)(nil)
			switch {
			case after != nil:
				next = *after
			case wrapUp:
				next, callNode = string(ivr.StateWrapUp), &node
			}
			if _, err := tx.Exec(ctx, `UPDATE acd_agents SET state = $2, after_state = NULL, call_id = NULL, call_node = $3,
					since = now(), seq = nextval('acd_seq'),
					idle_since = CASE WHEN $2 = 'available' THEN now() ELSE idle_since END,
					missed = CASE WHEN $2 = 'available' THEN 0 ELSE missed END
				WHERE agent_id = $1`, id, next, callNode); err != nil {
				return err
			}
		}
		out, err = agentOf(ctx, tx, id)
		return err
	})
	if err == nil && out.State == ivr.StateAvailable {
		s.untry(ctx, id)
	}
	return out, err
}

// WrapUpEnded makes the agent available if it is still in the wrap-up of state seq seq.
func (s *Store) WrapUpEnded(ctx context.Context, id int64, seq uint64) error {
	ended := false
	err := s.tx(ctx, "wrap-up ended", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE acd_agents SET state = 'available', since = now(), idle_since = now(), missed = 0,
				seq = nextval('acd_seq'), call_node = NULL
			WHERE agent_id = $1 AND state = 'wrap_up' AND seq = $2`, id, int64(seq))
		ended = err == nil && tag.RowsAffected() > 0
		return err
	})
	if ended {
		s.untry(ctx, id)
	}
	return err
}
