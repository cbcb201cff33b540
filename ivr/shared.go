package ivr

import (
	"context"
	"time"
)

// SharedStore is the ACD's state shared by the gateway nodes of a cluster: agents' presence and
// states, the node each agent is attached to (the softphone page's WebSocket, the SIP phone's
// registration), queue membership, and the waiting calls of every node in arrival order. With
// ACDOptions.Shared set, the ACD keeps none of that in its own memory: it asks the store, and
// every node sees the same truth. ivr/acdpg implements it on PostgreSQL. Without it (one node,
// or no database), the ACD keeps everything in memory as it always did.
//
// Dispatch claims (waiting call, agent) pairs so that two nodes never offer the same call or the
// same agent; a claim is carried out by the node that owns the call (its caller's media is
// there), which learns of it through Claims after a wake-up (Wake). Every method takes a context
// and talks to the database: the ACD never calls one with a lock held.
//
// Times (since, idle since, enqueued) are the store's own clock (the database's), so nodes
// whose clocks differ still agree on the longest-idle agent and on the order of calls.
type SharedStore interface {
	// Join records this node's roster (ids, names, emails and queues: the configuration is the
	// truth for membership) and clears what a previous run of this node left behind, as
	// NodeLost does for another node.
	Join(ctx context.Context, node string, agents []Agent) error
	// SetRoster records the roster changed while the nodes run (ACD.Apply): agents' names,
	// emails, queues and priorities, added agents (offline), and agents taken off (gone once
	// they are off their calls; until then offered nothing). States are untouched.
	SetRoster(ctx context.Context, agents []Agent) error
	// Agents returns every agent's status (with the node it is attached to), by id; Agent one.
	Agents(ctx context.Context) ([]AgentStatus, error)
	Agent(ctx context.Context, id int64) (AgentStatus, error)
	// SetState applies an agent's chosen state with the rules of ACD.SetState.
	SetState(ctx context.Context, id int64, st AgentState) (AgentStatus, error)
	// Attach records that the agent's page (or SIP phone) is attached to node (on) or no longer
	// is (off). Detaching the page of a node it is not attached to any more (it reconnected to
	// another node meanwhile) changes nothing and reports false; otherwise the page's detach
	// also sets the agent offline (the rules of SetState).
	Attach(ctx context.Context, id int64, via Via, node string, on bool) (AgentStatus, bool, error)
	// Waiting returns every waiting call of the cluster, oldest first.
	Waiting(ctx context.Context) ([]WaitingCall, error)
	// Enqueue puts a call of node in queue at the end (its order is the store's).
	Enqueue(ctx context.Context, callID, queue, node string) error
	// Requeue puts a queue callback of node back in queue at place (the order Enqueue gave the
	// caller's entry, ahead of the calls that came after it), enqueued at enqueued.
	Requeue(ctx context.Context, callID, queue, node string, place uint64, enqueued time.Time) error
	// Position is the call's 1-based place in its queue (0: not waiting).
	Position(ctx context.Context, callID string) (int, error)
	// Dispatch claims pairs of waiting calls and available agents of their queues, calls in
	// arrival order, each to the longest-idle available agent it was not offered to yet, and
	// wakes the calls' nodes. It returns how many pairs it claimed.
	Dispatch(ctx context.Context) (int, error)
	// Claims returns the claimed pairs of node's waiting calls.
	Claims(ctx context.Context, node string) ([]Claim, error)
	// Reserve claims one available agent for a call of node directly (a blind transfer to the
	// agent); ErrAgentUnavailable when the agent is not available, ErrUnknownAgent.
	Reserve(ctx context.Context, id int64, callID, node string) (Claim, error)
	// Answered records that agent answered callID: the agent is busy on it (a state chosen
	// while ringing applies after the call), the call leaves its queue.
	Answered(ctx context.Context, id int64, callID string) (AgentStatus, error)
	// Missed records that agent did not answer callID: the claim is released, the agent will not
	// be offered the call again this round, and after maxMissed misses in a row (0: never) an
	// available agent goes away. retry reports that only agents who missed the call are free
	// (the ACD retries after the queue's RetryDelay, ClearTried). maxMissed < 0: the offer
	// ended because the caller left, which is not the agent's miss (nothing is counted).
	Missed(ctx context.Context, id int64, callID string, maxMissed int) (st AgentStatus, retry bool, err error)
	// ClearTried lets the agents who missed callID be offered it again.
	ClearTried(ctx context.Context, callID string) error
	// Leave takes a call out of its queue and releases its claim (the caller hung up, or the
	// call overflowed).
	Leave(ctx context.Context, callID string) error
	// CallEnded frees an agent after a call of node: the state chosen meanwhile, else wrap_up
	// when wrapUp (then WrapUpEnded), else available.
	CallEnded(ctx context.Context, id int64, node string, wrapUp bool) (AgentStatus, error)
	// WrapUpEnded makes an agent available after wrap-up, if it is still in the wrap-up that
	// had the state seq seq.
	WrapUpEnded(ctx context.Context, id int64, seq uint64) error
	// NodeLost clears what node held: its agents (page or phone attached there) go offline and
	// are detached, agents on its calls are freed, its waiting calls leave their queues.
	NodeLost(ctx context.Context, node string) error
	// Wake is signalled (capacity 1, never blocking the store) whenever another node — or this
	// one — changed the shared state: the ACD then dispatches, collects its claims and tells
	// OnAgentState the changes. It may be signalled for nothing.
	Wake() <-chan struct{}
}

// Via is how an agent is attached to a node.
type Via string

// Ways an agent is attached.
const (
	ViaPage  Via = "page"  // the softphone page's WebSocket
	ViaPhone Via = "phone" // a SIP phone's registration
)

// WaitingCall is one call waiting in a queue of the cluster.
type WaitingCall struct {
	CallID   string
	Queue    string
	Node     string // the node that owns the call (its caller's media)
	Enqueued time.Time
	// Offering is the agent the call is being offered to (0 none).
	Offering int64
}

// Claim is a waiting call paired with an agent by Dispatch (or Reserve).
type Claim struct {
	CallID  string
	AgentID int64
	// Seq grows with every claim: a node carries out each claim once.
	Seq uint64
	// Node is the node the agent is attached to (its page, else its SIP phone); empty when it
	// is attached nowhere.
	Node string
}

// DefaultRecheck is how often a node of a cluster dispatches and reads the shared state when
// nothing woke it (ACDOptions.Recheck): a safety net under the stores' wake-ups (a wake-up lost
// with a connection).
const DefaultRecheck = 2 * time.Second

// sharedTimeout bounds one call to the shared store.
const sharedTimeout = 5 * time.Second
