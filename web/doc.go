// Package web serves the agent softphone page (embedded static files) and its signalling.
//
// Not built yet: see issue 7 (agent softphone).
package web
