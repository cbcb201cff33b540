// Package ticketing is the ticketing core: users and their phone identities, tickets and
// comments, the call → ticket rules of RULES.md, the PostgreSQL store and the HTTP API.
//
// It imports nothing else of Switchboard: it consumes call lifecycle events, from the gateway
// in process or from any phone system over HTTP.
package ticketing
