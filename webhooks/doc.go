// Package webhooks sends Switchboard's events to outside systems the way Zendesk's webhooks do:
// an admin registers a URL through Zendesk's webhooks API (POST /api/v2/webhooks, API), and
// each call event and each audited ticket or user change is POSTed to it as JSON, signed with
// the webhook's secret (X-Zendesk-Webhook-Signature: base64 HMAC-SHA256 of the timestamp
// followed by the body), in order, one at a time, retried with exponential backoff until the
// receiver answers 2xx (Dispatcher).
//
// Where the events come from: the event log (call_events, by pos, the order they were stored),
// the ticket events (ticket_events, by id: migration 018's triggers write one row per ticket
// created, field changed or comment added, in the change's transaction, while any webhook is
// active) and the audit trail (audits, by id). Each is read after the webhook's cursor for it;
// nothing here writes to them or runs inside the rules engine, so a slow or dead receiver
// never delays a call, the storing of its events or their application. The sources are merged
// by the time each event was stored; each source keeps its own order exactly.
//
// Durability and delivery guarantees: at least once, in order per webhook. A 2xx advances the
// webhook's cursor in PostgreSQL in the statement that records the success; a restart (or
// another node) resumes from the cursor. An attempt whose 2xx was lost (the process died
// between the answer and the commit) is sent again with the same invocation id and event id,
// by which a receiver deduplicates. A gap in the source's sequence (a transaction still
// writing a lower position, or a rolled-back one) holds delivery until every transaction that
// was running when the gap was seen has ended (PostgreSQL's snapshot xmin), so an event
// committed late is not skipped.
//
// Goroutines and ownership: Dispatcher.Run owns the set of workers; each worker goroutine owns
// one webhook's delivery (its cursor, backoff and gap state) while this node holds the
// webhook's lease (webhooks.leased_by, renewed while it works): one node delivers a webhook
// at a time whatever the number of nodes sharing the database. Nothing is called with a lock
// held; the only lock (Dispatcher.mu) guards the map of workers.
//
// Secrets (the signing secret, authentication credentials) are never logged and never
// returned except by GET /webhooks/{id}/signing_secret.
package webhooks
