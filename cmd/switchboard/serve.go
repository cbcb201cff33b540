package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/migrations"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
	"github.com/switchboard-voice/switchboard/web"
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
	http     *http.Server
	httpDone chan error

	store      *ticketing.Store
	api        *ticketing.API
	accountIDs map[string]int64
	events     *eventlog.Log
	engine     *ticketing.Engine
	stopEngine context.CancelFunc
	engineDone chan struct{}

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
}

func startGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) (*gateway, error) {
	gw := &gateway{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	gw.bgCtx, gw.bgCancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := gw.openDatabase(ctx); err != nil {
		return nil, err
	}
	gw.registerMetrics()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", gw.healthz)
	mux.HandleFunc("GET /readyz", gw.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gw.registry, promhttp.HandlerOpts{Registry: gw.registry}))
	if err := gw.startTicketing(ctx, mux); err != nil {
		gw.closeTicketing()
		gw.pool.Close()
		return nil, err
	}
	if err := gw.startTelephony(ctx, mux); err != nil {
		gw.tel.stop(context.Background())
		gw.bgCancel()
		gw.closeTicketing()
		gw.pool.Close()
		return nil, err
	}
	if err := gw.security.ensure(gw.registry); err != nil {
		log.Error("security events metric", "err", err)
	}
	// Anything else under the API is a JSON 404, like the API's own.
	mux.HandleFunc("/api/v2/", func(w http.ResponseWriter, r *http.Request) {
		ticketing.WriteError(w, &ticketing.Error{Kind: ticketing.ErrNotFound, Description: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		gw.tel.stop(context.Background())
		gw.bgCancel()
		gw.closeTicketing()
		gw.pool.Close()
		return nil, fmt.Errorf("http: listen %s: %w", cfg.HTTP.Listen, err)
	}
	gw.http = &http.Server{
		// Host allow-list (DNS rebinding) and security headers on every response.
		Handler:           web.Edge(mux, web.EdgeOptions{AllowedHosts: cfg.HTTP.AllowedHostList(), AnyHost: []string{"/healthz", "/readyz"}}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	gw.httpDone = make(chan error, 1)
	go func() { gw.httpDone <- gw.http.Serve(ln) }()
	if err := gw.startAdmin(); err != nil {
		log.Error("admin listener", "err", err)
	}
	log.Info("switchboard started", "version", version, "node", cfg.Node, "http", ln.Addr().String())
	return gw, nil
}

// openDatabase connects to PostgreSQL, retrying for a while (the database may be starting
// alongside us), and applies migrations unless told not to.
func (gw *gateway) openDatabase(ctx context.Context) error {
	pcfg, err := pgxpool.ParseConfig(gw.cfg.Database.URL)
	if err != nil {
		return fmt.Errorf("database.url: %w", err)
	}
	if pcfg.MaxConns < 16 {
		pcfg.MaxConns = 16 // the engine's workers, the event log, the API
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = pool.Ping(pctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return fmt.Errorf("database: not reachable: %w", err)
		}
		gw.log.Warn("database not reachable yet, retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	gw.pool = pool
	if *gw.cfg.Database.MigrateOnStart {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		conn, err := pool.Acquire(mctx)
		if err != nil {
			pool.Close()
			return fmt.Errorf("database: %w", err)
		}
		from, to, err := migrations.Migrate(mctx, conn.Conn())
		conn.Release()
		if err != nil {
			pool.Close()
			return err
		}
		if from != to {
			gw.log.Info("database migrated", "from", from, "to", to)
		}
	}
	_, err = pool.Exec(ctx, `INSERT INTO nodes (name, version) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, started_at = now()`, gw.cfg.Node, version)
	if err != nil {
		pool.Close()
		return fmt.Errorf("database: record node: %w", err)
	}
	return nil
}

func (gw *gateway) registerMetrics() {
	gw.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_build_info",
		Help: "Build information; always 1.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	gw.registry.MustRegister(build)
}

// healthz answers 200 while the process is up.
func (gw *gateway) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
}

// readyz answers 200 when the database answers and every listener is up, 503 otherwise or
// while draining, with the failing check named in the body.
func (gw *gateway) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if gw.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"draining"}`+"\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := gw.pool.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"unavailable","check":"database"}`+"\n")
		return
	}
	if !gw.tel.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"unavailable","check":"sip"}`+"\n")
		return
	}
	_, _ = io.WriteString(w, `{"status":"ready"}`+"\n")
}

// shutdown stops taking work, lets what is in flight finish within grace, then releases everything.
func (gw *gateway) shutdown(grace time.Duration) error {
	gw.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// Stop taking calls, let the live ones finish within the grace period.
	gw.tel.stop(ctx)
	gw.bgCancel()
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
	gw.pool.Close()
	return errors.Join(errs...)
}
