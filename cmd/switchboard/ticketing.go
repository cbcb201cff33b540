package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgstats"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// startTicketing wires the ticketing core: the configured accounts (created when
// missing), the durable event log, the rules engine, and the API under /api/v2. With dbUp false
// (degraded mode) the accounts' ids come from the on-disk cache and the engine waits for the
// database (awaitDatabase).
func (gw *gateway) startTicketing(ctx context.Context, mux *http.ServeMux, dbUp bool) error {
	cfg := gw.cfg
	lines := map[string]ticketing.LineSettings{}
	for _, l := range cfg.Lines {
		lines[l.Number] = l.Settings
	}
	var err error
	gw.engine, err = gw.store.NewEngine(ticketing.EngineOptions{
		LineSettings: lines,
		Logger:       gw.log.With("component", "ticketing"),
		Registerer:   gw.reg,
	})
	if err != nil {
		return err
	}
	gw.backlog, err = gw.store.NewBacklog(ticketing.BacklogOptions{
		Logger:     gw.log.With("component", "ticketing"),
		Registerer: gw.reg,
	})
	if err != nil {
		return err
	}
	gw.stats = pgstats.New(gw.pool, pgstats.Options{
		Logger:     gw.log.With("component", "pgstats"),
		Registerer: gw.reg,
	})
	if err := gw.newWebhooks(); err != nil {
		return err
	}
	gw.events, err = eventlog.Open(ctx, eventlog.Options{
		Pool:      gw.pool,
		SpoolPath: cfg.Database.Spool,
		Node:      cfg.Node,
		// The engine and the webhooks look at once (neither call blocks).
		OnStored: func() {
			gw.engine.Wake()
			gw.hooks.Wake()
		},
		Logger:     gw.log.With("component", "eventlog"),
		Registerer: gw.reg,
	})
	if err != nil {
		return err
	}
	// Heartbeats and lost nodes: beats fail (logged at debug) while the database is away.
	if wo := nodeWatchOptions(cfg); wo.Interval > 0 {
		wo.Log, wo.Logger, wo.Registerer = gw.events, gw.log.With("component", "nodewatch"), gw.reg
		wo.OnLost = func(ctx context.Context, node string) error {
			var err error
			if acd := gw.sharedACD.Load(); acd != nil && cfg.Database.SharedQueues {
				err = acd.NodeLost(ctx, node)
			} // else the ACD is not up yet: the lost node's next start clears its agents
			// Its pending queue callbacks run here from now on (at their places); before this
			// node dials callbacks they wait for the lost node's next start.
			if acd := gw.callbackACD.Load(); acd != nil {
				err = errors.Join(err, acd.TakeOverCallbacks(ctx, node))
			}
			return err
		}
		// A lost node's far ends: the survivor BYEs them from the dialogs the node stored.
		wo.OnLostDialogs = func(node string, dialogs []json.RawMessage) {
			if s := gw.byeSIP.Load(); s == nil || !s.ByeLostLegs(dialogs) {
				gw.log.Warn("node lost: SIP is not listening here: its calls' far ends get no BYE from this node", "lost_node", node, "legs", len(dialogs))
			}
		}
		if gw.nodes, err = eventlog.StartNodeWatch(wo); err != nil {
			return err
		}
		// Stored only while another node is alive to use them.
		if gw.dialogs, err = eventlog.StartDialogStore(eventlog.DialogStoreOptions{Pool: gw.pool, Node: cfg.Node,
			Active: func() bool { return gw.nodes.Others() > 0 }, Logger: gw.log.With("component", "nodewatch"),
			Registerer: gw.reg}); err != nil {
			return err
		}
	}
	// The accounts after the first beat: hashing their passwords takes seconds on a busy
	// machine, and a node recorded but not beating for node_lost_after is counted lost.
	if dbUp {
		if err := gw.seedAccounts(ctx); err != nil {
			return err
		}
	} else {
		gw.accountIDs = gw.cachedAccountIDs()
	}
	if dbUp {
		// Without the database the spool waits for it; the engine starts when it returns.
		gw.awaitSpool(ctx)
		gw.startEngine()
	}

	gw.guard = ticketing.NewAuthGuard(ticketing.AuthGuardOptions{
		Failures: cfg.HTTP.AuthBackoff.Failures, Initial: cfg.HTTP.AuthBackoff.Initial.D(), Max: cfg.HTTP.AuthBackoff.Max.D(),
		TrustedProxies: cfg.HTTP.TrustedProxyNetworks(), SecurityEvent: gw.security.count,
		Logger: gw.log.With("component", "http"),
	})
	gw.api = ticketing.NewAPI(gw.store, ticketing.APIOptions{
		Guard:          gw.guard,
		Logger:         gw.log.With("component", "api"),
		PublicURL:      cfg.HTTP.BaseURL(),
		MaxUploadBytes: cfg.HTTP.MaxUploadBytes,
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
	reports := gw.reportOptions()
	gw.api.RegisterReports(mux, "/api/v2", reports)
	// The last hour's report figures as gauges, for the Grafana dashboard.
	if gw.reportGauges, err = gw.store.StartReportGauges(ticketing.ReportGaugesOptions{Reports: reports,
		Registerer: gw.reg, Logger: gw.log.With("component", "reports")}); err != nil {
		return err
	}
	// The audit trail's retention: every node prunes (disjoint batches), from the shared
	// database.
	po := auditPrunerOptions(cfg)
	po.Registerer, po.Logger = gw.reg, gw.log.With("component", "ticketing")
	if gw.auditPruner, err = gw.store.StartAuditPruner(po); err != nil {
		return err
	}
	gw.mountWebhooks(mux)
	return nil
}

// openStore builds the ticketing store on the pool, before the database is first tried: every
// question the gateway itself asks of the database (readiness included) goes through it. It
// does not connect.
func (gw *gateway) openStore() {
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
}

// startEngine runs the rules engine, the measure of how far it is behind and the keeper of
// the planner's statistics of young tables (which the engine's reads depend on), until
// closeTicketing. Called once: at start when the database answers, else by awaitDatabase when
// it returns (the engine only polls the database).
func (gw *gateway) startEngine() {
	ectx, cancel := context.WithCancel(context.WithoutCancel(gw.bgCtx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		measured, kept := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(measured)
			gw.backlog.Run(ectx)
		}()
		go func() {
			defer close(kept)
			gw.stats.Run(ectx)
		}()
		gw.engine.Run(ectx)
		<-measured
		<-kept
	}()
	gw.engineMu.Lock()
	gw.stopEngine, gw.engineDone = cancel, done
	gw.engineMu.Unlock()
}

// seedAccounts creates the configured accounts that are missing and learns their user ids
// (the agents' ids are the ACD's and the events' agent_id). The ids are cached on disk for a
// start while the database is away. At start it sets gw.accountIDs; later (the database came
// back) it only refreshes the cache and says which agents' ids were not known at the start
// (the roster's reload puts them in their queues, and their phones register through it).
func (gw *gateway) seedAccounts(ctx context.Context) error {
	ids := map[string]int64{}
	for _, a := range gw.cfg.Accounts() {
		secret := a.PasswordHash
		if secret == "" {
			secret = a.Password
		}
		u, err := gw.store.EnsureUser(ctx, a.Email, a.Name, a.Role, secret)
		if err != nil {
			return fmt.Errorf("ticketing: account %s: %w", a.Email, err)
		}
		ids[a.Email] = u.ID
	}
	if err := writeAccountCache(gw.accountCachePath(), ids); err != nil {
		gw.log.Warn("account id cache not written: a start while the database is away will lack agents", "err", err)
	}
	if gw.accountIDs == nil {
		gw.accountIDs = ids
		return nil
	}
	for _, a := range gw.cfg.Agents {
		if got, had := ids[a.Email], gw.accountIDs[a.Email]; got != had {
			gw.log.Info("agent's id learned now that the database answers (the gateway started without it): the roster puts the agent in its queues",
				"agent", a.Email, "id", got)
		}
	}
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
	gw.stopWebhooks()
	if gw.reportGauges != nil {
		gw.reportGauges.Close()
	}
	if gw.auditPruner != nil {
		gw.auditPruner.Close()
	}
	if gw.nodes != nil {
		gw.nodes.Close() // it emits through the event log: stopped first
	}
	if gw.dialogs != nil {
		gw.dialogs.Close() // the calls have ended: what is queued is written (bounded)
	}
	if gw.events != nil {
		if err := gw.events.Close(); err != nil {
			gw.log.Error("eventlog close", "err", err)
		}
	}
	gw.engineMu.Lock()
	stop, done := gw.stopEngine, gw.engineDone
	gw.engineMu.Unlock()
	if stop != nil {
		stop()
		<-done
		// Write batching holds writes back for its window: everything goes out now (AP).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := gw.engine.Flush(ctx); err != nil {
			gw.log.Error("ticketing engine: final flush", "err", err)
		}
	}
}
