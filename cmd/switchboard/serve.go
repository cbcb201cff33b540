package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/internal/calljournal"
	"github.com/switchboard-voice/switchboard/internal/pgstats"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/migrations"
	"github.com/switchboard-voice/switchboard/roster"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
	"github.com/switchboard-voice/switchboard/web"
	"github.com/switchboard-voice/switchboard/webhooks"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "serve --config FILE [--no-migrate]\n\nRuns the gateway in the foreground. SIGTERM or SIGINT: stop taking new calls,\nlet live calls finish up to shutdown_grace, flush everything, exit 0.", stdout, stderr)
	path := fs.String("config", "", "configuration file (required)")
	noMigrate := fs.Bool("no-migrate", false, "do not apply pending migrations at start (overrides database.migrate_on_start)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "switchboard serve: --config is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard serve: %s: %v\n", *path, err)
		return 1
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format, stderr)
	if *noMigrate {
		f := false
		cfg.Database.MigrateOnStart = &f
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	gw, err := startGateway(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	<-ctx.Done()
	stop() // a second signal now kills the process the default way
	log.Info("shutting down", "grace", cfg.ShutdownGrace.D().String())
	if err := gw.shutdown(cfg.ShutdownGrace.D()); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// newLogger logs at level in format: json, text, or auto (JSON when w is not a terminal).
func newLogger(level, format string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	text := format == "text"
	if format == "" || format == "auto" {
		f, ok := w.(*os.File)
		text = ok && isTerminal(f)
	}
	if text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// gateway is the running process: the database pool, the HTTP server and the parts mounted on it.
type gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	pool     *pgxpool.Pool
	registry *prometheus.Registry
	// reg registers on registry with the node label (config node) on every series, so each
	// node's series stay apart wherever they are gathered (docs/metrics.md).
	reg      prometheus.Registerer
	http     *http.Server
	httpDone chan error

	store *ticketing.Store
	api   *ticketing.API
	// roster is the live roster once telephony started it (the reports read queues'
	// service levels from it on their own goroutine).
	roster     atomic.Pointer[roster.Manager]
	accountIDs map[string]int64
	events     *eventlog.Log
	nodes      *eventlog.NodeWatch // nil when database.heartbeat_interval is 0
	// dialogs stores answered legs' dialog states for the survivor of this node's loss (nil
	// without a node watch); byeSIP is the SIP server once it listens, which BYEs a lost
	// node's far ends (NodeWatch's OnLostDialogs, on the watch's goroutine).
	dialogs *eventlog.DialogStore
	byeSIP  atomic.Pointer[sip.Server]
	// sharedACD is the ACD once it exists, with database.shared_queues: a lost node's agents
	// are cleared through it (NodeWatch's OnLost, on the watch's goroutine).
	sharedACD atomic.Pointer[ivr.ACD]
	// callbackACD is the ACD once it dials queue callbacks: a lost node's pending callbacks
	// are taken over through it (NodeWatch's OnLost).
	callbackACD atomic.Pointer[ivr.ACD]
	engine      *ticketing.Engine
	backlog     *ticketing.Backlog // measured beside the engine (startEngine)
	stats       *pgstats.Keeper    // runs beside the engine (startEngine)
	// reportGauges exports the last hour's report figures (switchboard_report_*).
	reportGauges *ticketing.ReportGauges
	// auditPruner deletes audit entries past ticketing.audit_retention.
	auditPruner *ticketing.AuditPruner
	engineMu    sync.Mutex // guards stopEngine and engineDone (set by awaitDatabase)
	stopEngine  context.CancelFunc
	engineDone  chan struct{}
	// hooks delivers the webhooks (cmd/switchboard/webhooks.go); stopHooks ends it.
	hooks     *webhooks.Dispatcher
	stopHooks func()

	tel   *telephony
	admin *http.Server
	// security is switchboard_security_events_total, shared by SIP and HTTP.
	security securityEvents
	// guard limits password guessing on /login and HTTP Basic.
	guard *ticketing.AuthGuard
	// bgCtx lives as long as the gateway: background work (SIP, retention) ends with it.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// draining is set once shutdown starts: /readyz answers 503 so balancers move away.
	draining atomic.Bool

	// now is the clock.
	now func() time.Time
	// db tracks the database's reachability; dbReady is set once it was set up (at start, or
	// by awaitDatabase in degraded mode).
	db      dbHealth
	dbReady atomic.Bool
	// wg: background work of the gateway itself (awaitDatabase, orphan BYEs).
	wg sync.WaitGroup

	// journal is the node's journal of open calls (crash.go); crashed the calls an earlier
	// process left open, and crashClosed the seq of the call.ended each got at this start.
	journal     *calljournal.Journal
	crashed     []calljournal.OpenCall
	crashClosed map[string]int64
	crashM      crashMetrics
}

func startGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) (*gateway, error) {
	gw := &gateway{cfg: cfg, log: log, registry: prometheus.NewRegistry(), now: time.Now}
	gw.reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": cfg.Node}, gw.registry)
	gw.bgCtx, gw.bgCancel = context.WithCancel(context.WithoutCancel(ctx))
	gw.registerMetrics()
	if err := gw.openPool(ctx); err != nil {
		gw.bgCancel()
		return nil, err
	}
	gw.openStore()
	// The database is set up now when it answers, in the background once it does otherwise:
	// calls are taken either way (degraded mode, /readyz says why).
	dbErr := gw.connectDatabase(ctx)
	var migErr *migrationError
	if errors.As(dbErr, &migErr) {
		gw.pool.Close()
		gw.bgCancel()
		return nil, dbErr // reachable but the schema cannot be brought up: a real problem
	}
	if err := gw.openJournal(); err != nil {
		gw.pool.Close()
		gw.bgCancel()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", gw.healthz)
	mux.HandleFunc("GET /readyz", gw.readyz)
	if cfg.HTTP.MetricsOnListener() { // off on a public listener unless http.metrics (admin.listen serves it too)
		mux.Handle("GET /metrics", promhttp.HandlerFor(gw.registry, promhttp.HandlerOpts{Registry: gw.registry}))
	}
	fail := func(err error) (*gateway, error) {
		gw.tel.stop(context.Background())
		gw.bgCancel()
		gw.closeTicketing()
		_ = gw.journal.Close()
		gw.pool.Close()
		return nil, err
	}
	if err := gw.startTicketing(ctx, mux, dbErr == nil); err != nil {
		return fail(err)
	}
	// Before any new call: the calls a crash left open are closed (their events spool while
	// the database is away).
	gw.closeCrashedCalls(ctx)
	if err := gw.startTelephony(ctx, mux, dbErr == nil); err != nil {
		return fail(err)
	}
	if err := gw.security.ensure(gw.reg); err != nil {
		log.Error("security events metric", "err", err)
	}
	// Anything else under the API is a JSON 404, like the API's own.
	mux.HandleFunc("/api/v2/", func(w http.ResponseWriter, r *http.Request) {
		ticketing.WriteError(w, &ticketing.Error{Kind: ticketing.ErrNotFound, Description: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fail(fmt.Errorf("http: listen %s: %w", cfg.HTTP.Listen, err))
	}
	ln = netutil.LimitListener(ln, maxHTTPConns) // beyond it, connections wait in the kernel's backlog
	// Host allow-list (DNS rebinding) and security headers on every response.
	// Every request's context names its client, which the audit entries its changes write
	// record (ip_address): the API's own handlers and those recordings and web serve.
	// Every /api/v2 path also answers with Zendesk's ".json" suffix.
	api := ticketing.ZendeskPaths("/api/v2", mux)
	withClient := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r.WithContext(ticketing.WithClientAddr(r.Context(), gw.guard.Source(r))))
	})
	edge := web.Edge(withClient, web.EdgeOptions{AllowedHosts: cfg.HTTP.AllowedHostList(), AnyHost: []string{"/healthz", "/readyz"}})
	gw.http = newHTTPServer(edge, defaultHTTPTimeouts(), slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	gw.httpDone = make(chan error, 1)
	go func() { gw.httpDone <- gw.http.Serve(ln) }()
	if err := gw.startAdmin(); err != nil {
		log.Error("admin listener", "err", err)
	}
	gw.byeOrphans()
	if dbErr == nil {
		gw.dbReady.Store(true)
	} else {
		log.Warn("database unreachable: running degraded — calls are taken, events spool locally, the API and logins wait for the database; retrying in the background",
			"err", dbErr)
		gw.wg.Add(1)
		go func() {
			defer gw.wg.Done()
			gw.awaitDatabase()
		}()
	}
	log.Info("switchboard started", "version", version, "node", cfg.Node, "http", ln.Addr().String(), "database", dbErr == nil)
	return gw, nil
}

// openPool builds the connection pool. It does not connect: pgxpool dials on first use.
func (gw *gateway) openPool(ctx context.Context) error {
	pcfg, err := pgxpool.ParseConfig(gw.cfg.Database.URL)
	if err != nil {
		return fmt.Errorf("database.url: %w", err)
	}
	if pcfg.MaxConns < 16 {
		pcfg.MaxConns = 16 // the engine's workers, the event log, the API
	}
	// A dial to a database that is down must fail fast rather than hold a caller.
	if pcfg.ConnConfig.ConnectTimeout == 0 || pcfg.ConnConfig.ConnectTimeout > 5*time.Second {
		pcfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	gw.pool = pool
	return nil
}

// migrationError is a database that answers but whose schema cannot be brought up to date.
type migrationError struct{ err error }

func (e *migrationError) Error() string { return e.err.Error() }
func (e *migrationError) Unwrap() error { return e.err }

// databaseStartWait is how long serve waits for the database at start before it goes on
// degraded (the database may be starting alongside it).
const databaseStartWait = 5 * time.Second

// connectDatabase waits up to databaseStartWait for the database, then applies migrations
// unless told not to and records the node. An error other than *migrationError means the
// database is unreachable: the gateway starts degraded and awaitDatabase takes over.
func (gw *gateway) connectDatabase(ctx context.Context) error {
	deadline := gw.now().Add(databaseStartWait)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := gw.store.Ping(pctx)
		cancel()
		if err == nil {
			break
		}
		gw.db.failed(err, gw.now())
		if gw.now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("database: not reachable: %w", err)
		}
		gw.log.Warn("database not reachable yet, retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return gw.prepareDatabase(ctx)
}

// prepareDatabase migrates (unless told not to) and records the node; the database answers.
func (gw *gateway) prepareDatabase(ctx context.Context) error {
	if *gw.cfg.Database.MigrateOnStart {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		conn, err := gw.pool.Acquire(mctx)
		if err != nil {
			gw.db.failed(err, gw.now())
			return fmt.Errorf("database: %w", err)
		}
		from, to, err := migrations.Migrate(mctx, conn.Conn())
		conn.Release()
		if err != nil {
			return &migrationError{err}
		}
		if from != to {
			gw.log.Info("database migrated", "from", from, "to", to)
		}
	}
	if err := eventlog.RecordNode(ctx, gw.pool, gw.cfg.Node, version); err != nil {
		gw.db.failed(err, gw.now())
		return fmt.Errorf("database: %w", err)
	}
	// Where the other nodes send this node's internal INVITEs ("" when the internal leg is
	// off: a node restarted without it is no longer offered other nodes' calls).
	if err := eventlog.RecordNodeInternalSIP(ctx, gw.pool, gw.cfg.Node, gw.cfg.Cluster.InternalAddress); err != nil {
		gw.db.failed(err, gw.now())
		return fmt.Errorf("database: %w", err)
	}
	gw.db.ok()
	return nil
}

// awaitDatabase runs in degraded mode: it retries the database every second until it answers,
// then does what start-up skipped — migrations, the node row, the accounts, the rules engine,
// the recordings repair — and the gateway becomes ready. A failing migration is retried every
// 30 s (and logged): it needs an operator.
func (gw *gateway) awaitDatabase() {
	ctx := gw.bgCtx
	delay := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := gw.store.Ping(pctx)
		cancel()
		if err != nil {
			gw.db.failed(err, gw.now())
			delay = time.Second
			continue
		}
		if err := gw.prepareDatabase(ctx); err != nil {
			var migErr *migrationError
			if errors.As(err, &migErr) {
				gw.log.Error("database answers but migrations fail; still degraded, retrying in 30 s", "err", err)
				delay = 30 * time.Second
			}
			continue
		}
		if err := gw.seedAccounts(ctx); err != nil {
			gw.log.Error("database answers but the configured accounts could not be written; retrying in 30 s", "err", err)
			gw.db.failed(err, gw.now())
			delay = 30 * time.Second
			continue
		}
		gw.awaitSpool(ctx) // the repair reads call_events: let what spooled meanwhile arrive first
		gw.startEngine()
		if gw.tel != nil {
			gw.tel.databaseReturned(ctx)
		}
		gw.dbReady.Store(true)
		gw.log.Info("database reachable: leaving degraded mode", "spooled_events", gw.events.Spooled())
		return
	}
}

func (gw *gateway) registerMetrics() {
	// The Go and process collectors keep their standard names and labels (no node label):
	// their dashboards and alerts come from elsewhere and select by instance.
	gw.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_build_info",
		Help: "Build information; always 1.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	gw.reg.MustRegister(build)
	gw.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_database_up",
		Help: "1 when PostgreSQL answers (as last seen by /readyz or the start-up) and the gateway is set up on it; 0 in degraded mode: events spool, the API waits.",
	}, func() float64 {
		if since, _ := gw.db.down(); since.IsZero() && gw.dbReady.Load() {
			return 1
		}
		return 0
	}))
}

// healthz answers 200 while the process is up.
func (gw *gateway) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
}

// readyz answers 200 when the database answers and every listener is up, 503 otherwise or
// while draining, with the failing check named in the body and, for the database, why and
// since when (degraded mode: calls are still taken, events spool).
func (gw *gateway) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if gw.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"draining"}`+"\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := gw.store.Ping(ctx)
	if err != nil {
		gw.db.failed(err, gw.now())
	} else if gw.dbReady.Load() {
		gw.db.ok()
	}
	if err != nil || !gw.dbReady.Load() {
		since, reason := gw.db.down()
		if err == nil {
			reason = "database answers again; setting up (migrations, accounts) in progress"
		}
		body := map[string]any{"status": "unavailable", "check": "database", "degraded": true,
			"reason": "database unreachable: " + reason, "spooled_events": gw.events.Spooled()}
		if !since.IsZero() {
			body["reason"] = fmt.Sprintf("database unreachable since %s: %s", since.UTC().Format(time.RFC3339), reason)
			body["since"] = since.UTC().Format(time.RFC3339)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	if !gw.tel.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"unavailable","check":"sip"}`+"\n")
		return
	}
	_, _ = io.WriteString(w, `{"status":"ready"}`+"\n")
}

// dbHealth tracks since when the database has been unreachable, for /readyz and the metric.
type dbHealth struct {
	mu     sync.Mutex
	since  time.Time // zero while it answers
	reason string
}

func (h *dbHealth) failed(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() {
		h.since = now
	}
	h.reason = err.Error()
}

func (h *dbHealth) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since, h.reason = time.Time{}, ""
}

func (h *dbHealth) down() (time.Time, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.since, h.reason
}

// shutdown stops taking work, lets what is in flight finish within grace, then releases everything.
func (gw *gateway) shutdown(grace time.Duration) error {
	gw.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// Stop taking calls, let the live ones finish within the grace period.
	gw.tel.stop(ctx)
	gw.bgCancel()
	gw.wg.Wait()
	var errs []error
	if err := gw.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
		_ = gw.http.Close()
	}
	if err := <-gw.httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	if gw.admin != nil {
		_ = gw.admin.Close()
	}
	gw.closeTicketing()
	if err := gw.journal.Close(); err != nil {
		errs = append(errs, fmt.Errorf("call journal: %w", err))
	}
	gw.pool.Close()
	return errors.Join(errs...)
}

// httpTimeouts bound the HTTP server's connections against slowloris and idle floods.
type httpTimeouts struct{ readHeader, read, write, idle time.Duration }

// defaultHTTPTimeouts: headers within 10 s, a whole request within a minute, a response (a
// recording download) within 10 min, 2 min idle between keep-alive requests. A WebSocket (/ws)
// is hijacked, which clears these deadlines (net/http).
func defaultHTTPTimeouts() httpTimeouts {
	return httpTimeouts{readHeader: 10 * time.Second, read: time.Minute, write: 10 * time.Minute, idle: 2 * time.Minute}
}

func newHTTPServer(h http.Handler, to httpTimeouts, errLog *stdlog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: to.readHeader, ReadTimeout: to.read, WriteTimeout: to.write,
		IdleTimeout: to.idle, ErrorLog: errLog}
}
