// Package ticketing is the ticketing core: users and their phone identities, tickets and
// comments, the call → ticket rules of docs/rules.md, the PostgreSQL store and the HTTP API.
//
// It imports nothing else of Switchboard: it consumes call lifecycle events, from the gateway
// in process or from any phone system over HTTP.
//
// The core, on migration 002:
//   - Store (store.go) is the only way in and out of the tables; every change is one
//     transaction, and the rules that racing requests could break are database constraints
//     and triggers whose violations come back as *Error (errors.go: ErrInvalid 422,
//     ErrNotFound 404, ErrConflict 409), never as a 500.
//   - users.go, identities.go: users, API tokens, phone identities (PM-4 … PM-8, PM-10);
//     phone.go reads numbers through package ticketing/phone (E.164 with libphonenumber in
//     the default region, geocoding for CD-5), the normaliser sip shares.
//   - resolve.go: ResolveCaller, the caller resolution every call goes through (PM-1 … PM-12).
//   - usermerge.go (UM-1 … UM-5), tickets.go and comments.go (ticket system rules, voice
//     comments, merge chains), ticketmerge.go (TM-1 … TM-3), settingsstore.go (the global
//     voice settings), with an audit row for every automatic change.
//   - audit.go, api_audit.go: the audit trail (migration 008): every audited action — recording
//     deletions, PM-9, requester changes, merges, settings changes, voicemail read, closed or
//     called back (TU-9) — writes one audits row in the transaction of its change, and
//     GET /audit_logs lists them (agents their own).
//   - outbound.go: PlanOutboundCall, the outbound rules (OB-1 … OB-6, team ticket entry TB-1 …
//     TB-4) that choose the number, contact and ticket of an agent's dial before anything is
//     dialled; the web package serves POST /api/v2/calls with it.
//   - zendesk.go, ticketfields.go, search.go, incremental.go, jobs.go, api_bulk.go,
//     api_search.go: Zendesk compatibility (issue 20, migration 015) — ZendeskPaths (the
//     ".json" suffix, wrapped around the whole mux by cmd/switchboard), Zendesk's shapes
//     (custom_fields as [{id, value}] of the fixed call fields, via {from, to, rel}, comments'
//     data), search with Zendesk's query syntax, cursor and time-based incremental exports,
//     show_many / create_many / create_or_update with job statuses kept a day.
//   - api*.go, decode.go: the REST API (NewAPI, Register, Authenticate),
//     described by openapi.yaml and served at {prefix}/openapi.json; docs/api.md explains it.
//     Errors are written by internal/apierror (WriteError maps *Error to it), the one writer
//     of the whole /api/v2.
package ticketing
