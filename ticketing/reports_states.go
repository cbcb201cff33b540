package ticketing

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AgentStateLogOptions configure NewAgentStateLog.
type AgentStateLogOptions struct {
	Pool *pgxpool.Pool
	// Buffer is how many state changes wait for the database at most (default 10000); beyond
	// it a change is dropped and logged: the ACD never waits on the database.
	Buffer int
	// RetryDelay is the pause before writing again after the database refused (default 2 s).
	RetryDelay time.Duration
	Logger     *slog.Logger
}

// AgentStateLog keeps the history of agents' states in agent_states for the agents report
// (occupancy) and for the wrap-up time of calls (handle time). Record queues a change without
// blocking; one goroutine, started by NewAgentStateLog and ended by Close, writes them in order
// and owns lastCall.
type AgentStateLog struct {
	opts AgentStateLogOptions
	ch   chan AgentStateChange
	done chan struct{}
	stop chan struct{}
	once sync.Once

	lastCall map[int64]string // agent → the call of its last busy state (writer goroutine)
}

// AgentStateChange is one agent entering a state at Since. CallID is the call a busy state is
// on (the wrap_up that follows is recorded against it).
type AgentStateChange struct {
	AgentID int64
	State   string
	Since   time.Time
	CallID  string
}

// NewAgentStateLog starts the writer.
func NewAgentStateLog(opts AgentStateLogOptions) *AgentStateLog {
	if opts.Buffer <= 0 {
		opts.Buffer = 10000
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &AgentStateLog{opts: opts, ch: make(chan AgentStateChange, opts.Buffer), done: make(chan struct{}),
		stop: make(chan struct{}), lastCall: map[int64]string{}}
	go l.run()
	return l
}

// Record queues a state change; it never blocks. A change after Close is dropped.
func (l *AgentStateLog) Record(c AgentStateChange) {
	select {
	case <-l.stop:
		return
	default:
	}
	select {
	case l.ch <- c:
	default:
		l.opts.Logger.Warn("agent state history: buffer full, a state change is lost (the agents report's occupancy will be off)",
			"agent_id", c.AgentID, "state", c.State)
	}
}

// Close writes what is queued (giving up after a bounded wait when the database is away)
// and stops the writer. It is idempotent.
func (l *AgentStateLog) Close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

func (l *AgentStateLog) run() {
	defer close(l.done)
	var batch []AgentStateChange
	for {
		if len(batch) == 0 {
			select {
			case c := <-l.ch:
				batch = append(batch, c)
			case <-l.stop:
				l.drain(&batch)
				l.flush(batch, true)
				return
			}
		}
		l.drain(&batch)
		if l.flush(batch, false) {
			batch = batch[:0]
			continue
		}
		select { // the database refused: keep the batch (and queue more) and try again
		case <-time.After(l.opts.RetryDelay):
		case <-l.stop:
			l.drain(&batch)
			l.flush(batch, true)
			return
		}
	}
}

// drain moves what is queued into batch, up to the buffer's size.
func (l *AgentStateLog) drain(batch *[]AgentStateChange) {
	for len(*batch) < l.opts.Buffer {
		select {
		case c := <-l.ch:
			*batch = append(*batch, c)
		default:
			return
		}
	}
}

// flush writes batch in one transaction; false when the database refused it.
func (l *AgentStateLog) flush(batch []AgentStateChange, last bool) bool {
	if len(batch) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := map[int64]string{}
	for id, c := range l.lastCall {
		calls[id] = c
	}
	b := &pgx.Batch{}
	for _, c := range batch {
		var call *string
		switch c.State {
		case "busy":
			if c.CallID != "" {
				calls[c.AgentID] = c.CallID
			}
		case "wrap_up":
			if id := calls[c.AgentID]; id != "" {
				call = &id
			}
		}
		if c.State != "busy" && c.State != "wrap_up" {
			delete(calls, c.AgentID)
		}
		b.Queue(`INSERT INTO agent_states (agent_id, since, state, call_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, c.AgentID, c.Since.Truncate(time.Microsecond), c.State, call)
	}
	err := l.opts.Pool.SendBatch(ctx, b).Close()
	if err != nil {
		if last {
			l.opts.Logger.Error("agent state history: state changes lost at shutdown", "changes", len(batch), "err", err)
			return true
		}
		l.opts.Logger.Warn("agent state history: write failed, retrying", "changes", len(batch), "err", err)
		return false
	}
	l.lastCall = calls
	return true
}
