// Package roster keeps the ACD's roster in PostgreSQL, the source of truth since the first
// start (migration 019): the queues and their settings, the agents (users with a login who
// take calls) with their SIP phone credentials, and each agent's queues with a priority per
// queue, and the lines (migration 021: a dialled number and its target, handed to the SIP
// server's line table through Options.Lines at every reload). It serves the admin API that
// changes them (/api/v2/agents, /api/v2/queues, /api/v2/queues/{name}/memberships,
// /api/v2/lines; admins only, audited) and applies every change at once,
// on every node, to the running ACD (ivr.ACD.Apply) — no restart.
//
// How a change reaches every node: the API's transaction ends with NOTIFY switchboard_roster;
// each node's Manager LISTENs on a connection of its own and reloads the whole roster (a few
// rows) when told, and every Recheck besides (a notification lost with a connection costs at
// most that). The node that made the change reloads before it answers, so the change is in
// effect on it when the client reads the answer.
//
// Seeding: the configuration's queues and agents are written once, on the first start that
// finds the roster_seed table empty (one node, under an advisory lock). Later edits of the file
// are not applied; a node whose file differs from the recorded seed logs a warning at start.
//
// Who owns what: the Manager's loop goroutine (Start to Close) alone loads the roster and calls
// the ACD, one reload at a time, so reloads apply in the order they read the database; its
// listener goroutine owns the LISTEN connection and only signals the loop. Manager.mu guards
// the last snapshot (read by SIPAccount and Known) and is never held while anything else is
// called.
package roster
