package main

import (
	"context"
	"net/http"

	"github.com/switchboard-voice/switchboard/webhooks"
)

// newWebhooks builds the webhook dispatcher (before the event log, whose stored events wake
// it) and mounts Zendesk's webhooks API under /api/v2 (after the ticketing API, whose
// authentication it uses). Defaults are the package's (webhooks.Options).
func (gw *gateway) newWebhooks() error {
	d, err := webhooks.NewDispatcher(webhooks.Options{
		Pool:       gw.pool,
		Node:       gw.cfg.Node,
		Logger:     gw.log.With("component", "webhooks"),
		Registerer: gw.reg,
	})
	if err != nil {
		return err
	}
	gw.hooks = d
	return nil
}

// mountWebhooks serves the webhooks API and starts the dispatcher until stopWebhooks. The
// dispatcher only reads the database: while it is away (degraded mode) it retries at its
// poll interval.
func (gw *gateway) mountWebhooks(mux *http.ServeMux) {
	webhooks.NewAPI(webhooks.APIOptions{
		Pool:      gw.pool,
		Auth:      gw.api,
		Changed:   gw.hooks.Wake,
		PublicURL: gw.cfg.HTTP.BaseURL(),
		Logger:    gw.log.With("component", "webhooks"),
	}).Register(mux, "/api/v2")
	ctx, cancel := context.WithCancel(context.WithoutCancel(gw.bgCtx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		gw.hooks.Run(ctx)
	}()
	gw.stopHooks = func() {
		cancel()
		<-done // bounded: an attempt in flight finishes within its timeout
	}
}

// stopWebhooks stops the dispatcher. Safe to call on a partly started gateway.
func (gw *gateway) stopWebhooks() {
	if gw.stopHooks != nil {
		gw.stopHooks()
		gw.stopHooks = nil
	}
}
