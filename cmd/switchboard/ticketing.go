package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// startTicketing wires the ticketing core: the store, the configured accounts (created when
// missing), the durable event log, the rules engine, and the API under /api/v2.
func (gw *gateway) startTicketing(ctx context.Context, mux *http.ServeMux) error {
	cfg := gw.cfg
	settings := cfg.Ticketing.Settings
	gw.store = ticketing.NewStore(gw.pool, ticketing.StoreOptions{
		DefaultRegion:     cfg.Ticketing.DefaultRegion,
		Defaults:          &settings,
		TokenTTL:          cfg.HTTP.TokenTTL.D(),
		BcryptConcurrency: cfg.HTTP.BcryptConcurrency,
		// A password change, role change or deletion logs the user out of the agent page.
		CredentialsChanged: func(id int64) {
			if gw.tel != nil && gw.tel.web != nil {
				gw.tel.web.EndSessions(id)
			}
		},
	})
	gw.accountIDs = map[string]int64{}
	for _, a := range cfg.Accounts() {
		secret := a.PasswordHash
		if secret == "" {
			secret = a.Password
		}
		u, err := gw.store.EnsureUser(ctx, a.Email, a.Name, a.Role, secret)
		if err != nil {
			return fmt.Errorf("ticketing: account %s: %w", a.Email, err)
		}
		gw.accountIDs[a.Email] = u.ID
	}

	lines := map[string]ticketing.LineSettings{}
	for _, l := range cfg.Lines {
		lines[l.Number] = l.Settings
	}
	var err error
	gw.engine, err = gw.store.NewEngine(ticketing.EngineOptions{
		LineSettings: lines,
		Logger:       gw.log.With("component", "ticketing"),
		Registerer:   gw.registry,
	})
	if err != nil {
		return err
	}
	gw.events, err = eventlog.Open(ctx, eventlog.Options{
		Pool:       gw.pool,
		SpoolPath:  cfg.Database.Spool,
		Node:       cfg.Node,
		OnStored:   gw.engine.Wake,
		Logger:     gw.log.With("component", "eventlog"),
		Registerer: gw.registry,
	})
	if err != nil {
		return err
	}
	gw.awaitSpool(ctx)
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	gw.stopEngine = cancel
	gw.engineDone = make(chan struct{})
	go func() {
		defer close(gw.engineDone)
		gw.engine.Run(ectx)
	}()

	gw.guard = ticketing.NewAuthGuard(ticketing.AuthGuardOptions{
		Failures: cfg.HTTP.AuthBackoff.Failures, Initial: cfg.HTTP.AuthBackoff.Initial.D(), Max: cfg.HTTP.AuthBackoff.Max.D(),
		TrustedProxies: cfg.HTTP.TrustedProxyNetworks(), SecurityEvent: gw.security.count,
		Logger: gw.log.With("component", "http"),
	})
	gw.api = ticketing.NewAPI(gw.store, ticketing.APIOptions{
		Guard:     gw.guard,
		Logger:    gw.log.With("component", "api"),
		PublicURL: cfg.HTTP.BaseURL(),
		// The agent page calls the API with its session cookie.
		Session: func(r *http.Request) (int64, bool) {
			if gw.tel == nil || gw.tel.web == nil {
				return 0, false
			}
			a, ok := gw.tel.web.Authenticate(r)
			return a.ID, ok
		},
	})
	gw.api.Register(mux, "/api/v2")
	gw.api.RegisterCalls(mux, "/api/v2", gw.events, gw.engine.Wake)
	return nil
}

// awaitSpool lets the events a previous run left in the spool reach call_events before
// anything at start reads that table (the repair of recordings after a crash, which numbers
// the call.ended it emits after the call's last stored event). It waits while the replay makes
// progress and gives up after two seconds without any (PostgreSQL away: the spool is replayed
// once it answers, the gateway starts meanwhile).
func (gw *gateway) awaitSpool(ctx context.Context) {
	if gw.events.Spooled() == 0 {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, stalled := gw.events.Spooled(), 0
	for stalled < 2 {
		select {
		case <-gw.events.Drained():
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n := gw.events.Spooled(); n < last {
			last, stalled = n, 0
		} else {
			stalled++
		}
	}
	gw.log.Warn("starting with call events still in the spool; they reach the database once it answers",
		"events", gw.events.Spooled())
}

// closeTicketing makes every accepted event durable, lets the engine finish its pass, and
// stops it. Safe to call on a partly started gateway.
func (gw *gateway) closeTicketing() {
	if gw.events != nil {
		if err := gw.events.Close(); err != nil {
			gw.log.Error("eventlog close", "err", err)
		}
	}
	if gw.stopEngine != nil {
		gw.stopEngine()
		<-gw.engineDone
		// Write batching holds writes back for its window: everything goes out now (AP).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := gw.engine.Flush(ctx); err != nil {
			gw.log.Error("ticketing engine: final flush", "err", err)
		}
	}
}
