package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// The headers of every request (Zendesk's names; "Anatomy of a webhook request").
const (
	HeaderWebhookID    = "X-Zendesk-Webhook-Id"
	HeaderInvocationID = "X-Zendesk-Webhook-Invocation-Id"
	HeaderSignature    = "X-Zendesk-Webhook-Signature"
	HeaderTimestamp    = "X-Zendesk-Webhook-Signature-Timestamp"
	// HeaderEventID is Switchboard's addition: the event's id, the same on every attempt and
	// after a restart, by which a receiver deduplicates (delivery is at least once).
	HeaderEventID = "X-Switchboard-Event-Id"
)

// EventVersion is the zendesk_event_version of the bodies sent.
const EventVersion = "2022-11-06"

// Sign is the signature of one request: base64 of HMAC-SHA256 keyed with the signing secret
// over the timestamp header's value followed by the raw body, as Zendesk signs
// (X-Zendesk-Webhook-Signature).
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is the signature of timestamp and body under secret, in
// constant time: what a receiver does with each request.
func Verify(secret, timestamp string, body []byte, signature string) bool {
	want := Sign(secret, timestamp, body)
	return hmac.Equal([]byte(want), []byte(signature))
}

// auditNamespace makes the deterministic event ids of audit entries (UUIDv5 of the entry id).
var auditNamespace = uuid.MustParse("6f1f8f4e-4f7c-5a37-9c52-8e8d2b0a7c11")

func auditEventID(id int64) string {
	return uuid.NewSHA1(auditNamespace, []byte("audit:"+strconv.FormatInt(id, 10))).String()
}

// ticketEventID is the deterministic event id of a ticket_events row.
func ticketEventID(id int64) string {
	return uuid.NewSHA1(auditNamespace, []byte("ticket:"+strconv.FormatInt(id, 10))).String()
}

// envelope is the body sent for one event, in Zendesk's event schema: type, account_id, id,
// time, zendesk_event_version, subject, detail, event.
func envelope(typ, id string, at time.Time, subject string, detail, event []byte) []byte {
	b, _ := json.Marshal(struct {
		Type         string          `json:"type"`
		AccountID    int64           `json:"account_id"`
		ID           string          `json:"id"`
		Time         string          `json:"time"`
		EventVersion string          `json:"zendesk_event_version"`
		Subject      string          `json:"subject"`
		Detail       json.RawMessage `json:"detail"`
		Event        json.RawMessage `json:"event"`
	}{typ, 0, id, at.UTC().Format(time.RFC3339Nano), EventVersion, subject, detail, event})
	return b
}

// Options configure a Dispatcher. Zero values take the defaults noted.
type Options struct {
	// Pool is the database holding the webhooks and the events. Required.
	Pool *pgxpool.Pool
	// Node names this node as the holder of the leases (default the host name). Each node of
	// a cluster needs its own.
	Node string
	// PollInterval is how often the sources are read when nothing woke the dispatcher
	// (default 500 ms).
	PollInterval time.Duration
	// Timeout bounds one attempt, from connecting to reading the answer (default 10 s).
	Timeout time.Duration
	// MaxResponseBytes is how much of an answer is read (default 64 KiB); the rest is dropped.
	MaxResponseBytes int64
	// InitialBackoff is the wait after the first failed attempt, doubled after each further
	// one (default 1 s) up to MaxBackoff (default 5 min). A Retry-After from the receiver is
	// honoured up to MaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxAttempts is how many times one event is tried before it is given up (the invocation
	// is "failed", the next event goes; default 25, about 1.5 hours with the default backoff).
	MaxAttempts int
	// LeaseTTL is how long a node's hold on a webhook lasts without renewal: the time another
	// node waits to take over the webhooks of a node that died (default 30 s).
	LeaseTTL time.Duration
	// GapMaxWait bounds how long a gap in a source's positions holds delivery when the
	// database cannot say the transactions behind it ended (default 1 min).
	GapMaxWait time.Duration
	// InvocationRetention is how long invocations and attempts are kept (default 7 days,
	// Zendesk's).
	InvocationRetention time.Duration
	// Client sends the requests (default: an http.Client with Timeout that follows no
	// redirect: a 3xx is a failed attempt).
	Client *http.Client
	Logger *slog.Logger
	// Registerer, when set, receives the metrics (docs/metrics.md).
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Node == "" {
		o.Node, _ = os.Hostname()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 64 << 10
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 25
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.GapMaxWait <= 0 {
		o.GapMaxWait = time.Minute
	}
	if o.InvocationRetention <= 0 {
		o.InvocationRetention = 7 * 24 * time.Hour
	}
	if o.Client == nil {
		o.Client = &http.Client{
			Timeout:       o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Dispatcher delivers every active webhook's events: one worker goroutine per webhook this
// node holds the lease of. Start it with Run; Wake makes it look at once (the event log
// stored events, a webhook was created).
type Dispatcher struct {
	opts  Options
	store *store
	owner string
	log   *slog.Logger

	mu      sync.Mutex
	workers map[string]chan struct{} // webhook id → closed when its worker ended
	wakeCh  chan struct{}            // closed and replaced by Wake: a broadcast

	deliveries *prometheus.CounterVec
	backlog    prometheus.Gauge
}

// NewDispatcher builds a Dispatcher; it delivers nothing until Run.
func NewDispatcher(opts Options) (*Dispatcher, error) {
	if opts.Pool == nil {
		return nil, errors.New("webhooks: Options.Pool is required")
	}
	opts.defaults()
	d := &Dispatcher{
		opts: opts, store: &store{pool: opts.Pool}, log: opts.Logger,
		// The node name plus a random part: two processes given the same node name (a
		// misconfiguration) still never deliver one webhook at once.
		owner:   opts.Node + "/" + uuid.NewString()[:8],
		workers: map[string]chan struct{}{},
		wakeCh:  make(chan struct{}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_deliveries_total",
			Help: "Webhook attempts by result: success (the receiver answered 2xx), failed (will be retried), dropped (the event was given up after the maximum attempts).",
		}, []string{"result"}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_webhook_backlog_events",
			Help: "Events stored after the cursors of the webhooks this node delivers.",
		}),
	}
	for _, r := range []string{"success", "failed", "dropped"} {
		d.deliveries.WithLabelValues(r)
	}
	if reg := opts.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{d.deliveries, d.backlog} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("webhooks: metrics: %w", err)
			}
		}
	}
	return d, nil
}

// Wake makes every worker read its sources now instead of at its next poll. It never blocks.
func (d *Dispatcher) Wake() {
	d.mu.Lock()
	close(d.wakeCh)
	d.wakeCh = make(chan struct{})
	d.mu.Unlock()
}

func (d *Dispatcher) woken() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wakeCh
}

// Run delivers until ctx ends, then waits for its workers (each finishes its attempt in
// flight, bounded by Timeout, and records it) and returns.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(d.opts.PollInterval)
	defer tick.Stop()
	var lastBacklog, lastPrune time.Time
	for {
		ids, err := d.store.activeIDs(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Debug("webhooks: list active webhooks", "err", err)
		}
		for _, id := range ids {
			d.mu.Lock()
			done, running := d.workers[id]
			if running {
				select {
				case <-done:
					running = false
				default:
				}
			}
			if !running {
				done = make(chan struct{})
				d.workers[id] = done
			}
			d.mu.Unlock()
			if !running {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer close(done)
					d.work(ctx, id)
				}()
			}
		}
		now := d.opts.Now()
		if now.Sub(lastBacklog) >= 5*time.Second {
			lastBacklog = now
			if n, err := d.store.backlog(ctx, d.owner); err == nil {
				d.backlog.Set(float64(n))
			}
		}
		if now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			if err := d.store.prune(ctx, d.opts.InvocationRetention); err != nil && ctx.Err() == nil {
				d.log.Warn("webhooks: pruning old invocations", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.woken():
		}
	}
}

// gapState is what a worker knows of a gap in one source's positions (a position not yet
// visible after the cursor): a transaction may still be writing it, or it was rolled back
// (or an insert was dropped as a duplicate: sequences are not transactional). The gap is
// passed once every transaction that was running when it was seen has ended (their xids are
// all below the snapshot xmax read after the rows, so the oldest running xid passing it says
// so), or after GapMaxWait.
//
// A transaction takes its position (nextval) an instant before it gets its xid (at its first
// row written, in the same statement): gapMinAge covers that instant, so a gap is never
// passed in the microseconds where its writer is not yet among the running transactions.
type gapState struct {
	at    int64 // the first position missing; 0: no gap
	xmax  uint64
	since time.Time
}

// work delivers webhook id while this node holds its lease; it returns when the webhook is
// deleted or made inactive, or ctx ends.
func (d *Dispatcher) work(ctx context.Context, id string) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		d.store.release(rctx, id, d.owner)
	}()
	var gaps [numSources]gapState
	for ctx.Err() == nil {
		wake := d.woken()
		l, err := d.store.claim(ctx, id, d.owner, d.opts.LeaseTTL)
		if errors.Is(err, errGone) {
			return
		}
		if l != nil {
			l.renewed = d.opts.Now()
		}
		progressed := false
		if err == nil && l != nil {
			progressed, err = d.step(ctx, l, &gaps)
			if errors.Is(err, errGone) {
				return
			}
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, errLeaseLost) {
			d.log.Warn("webhooks: delivery paused", "webhook_id", id, "err", err)
		}
		if progressed && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-time.After(d.opts.PollInterval):
		}
	}
}

const (
	batchSize = 100
	gapMinAge = time.Second
)

// step reads every source after its cursor and sends the ready events in order (merged by
// the time each was stored); it reports whether it moved a cursor.
func (d *Dispatcher) step(ctx context.Context, l *lease, gaps *[numSources]gapState) (bool, error) {
	var heads [numSources][]source
	var open [numSources]bool
	progressed := false
	for i := range numSources {
		var events []source
		var err error
		switch i {
		case sourceCall:
			events, err = d.store.callEvents(ctx, l.cursors[i], batchSize)
		case sourceAudit:
			events, err = d.store.auditEvents(ctx, l.cursors[i], batchSize)
		case sourceTicket:
			events, err = d.store.ticketEvents(ctx, l.cursors[i], batchSize)
		}
		if err != nil {
			return false, err
		}
		full := len(events) == batchSize
		var moved bool
		heads[i], open[i], moved, err = d.ready(ctx, l.hook.ID, sourceTables[i], events, &l.cursors[i], &gaps[i])
		if err != nil {
			return false, err
		}
		// open: more events may come before the last one read (a full batch, a gap).
		open[i] = open[i] || full
		progressed = progressed || moved
	}
	skipped := progressed
	flush := func() error {
		if !skipped {
			return nil
		}
		skipped = false
		return d.store.advance(ctx, l.hook.ID, d.owner, l.cursors)
	}
	for {
		// The earliest stored of the heads; a source with nothing read that may still hold an
		// earlier event (open) stops the merge (the next step reads again).
		pick, blocked := -1, false
		for i := range numSources {
			if len(heads[i]) == 0 {
				blocked = blocked || open[i]
				continue
			}
			if pick < 0 || heads[i][0].stored.Before(heads[pick][0].stored) {
				pick = i
			}
		}
		if pick < 0 || blocked {
			return progressed, flush()
		}
		src := heads[pick][0]
		heads[pick] = heads[pick][1:]
		if !subscribed(l.hook.Subscriptions, src.typ) {
			l.cursors[pick] = src.pos
			skipped, progressed = true, true
			continue
		}
		if err := flush(); err != nil {
			return progressed, err
		}
		if err := d.renew(ctx, l); err != nil {
			return progressed, err
		}
		if err := d.deliver(ctx, l, src); err != nil {
			return progressed, err
		}
		l.cursors[pick] = src.pos
		progressed = true
	}
}

// ready returns the events of one source that follow the cursor without a gap, and whether a
// gap holds back the rest. A gap whose transactions all ended, and that is still empty when
// read again, is passed: *cursor moves over it (moved).
func (d *Dispatcher) ready(ctx context.Context, hookID, table string, events []source, cursor *int64, g *gapState) (out []source, open, moved bool, err error) {
	next := *cursor + 1
	for i, e := range events {
		if e.pos == next {
			next++
			continue
		}
		// Positions next … e.pos-1 are missing.
		if g.at != next {
			// Read after the rows: every transaction that could still write the gap has an
			// xid below it (or gets one within microseconds: GapMaxWait covers that).
			xmax, err := d.store.snapshotXmax(ctx)
			if err != nil {
				return events[:i], true, moved, err
			}
			*g = gapState{at: next, xmax: xmax, since: d.opts.Now()}
			return events[:i], true, moved, nil
		}
		if i > 0 {
			return events[:i], true, moved, nil // deliver those first; the gap is judged next step
		}
		xmin, err := d.store.snapshotXmin(ctx)
		if err != nil {
			return events[:i], true, moved, err
		}
		age := d.opts.Now().Sub(g.since)
		if age < gapMinAge || (xmin < g.xmax && age < d.opts.GapMaxWait) {
			return events[:i], true, moved, nil // a transaction that may hold the gap still runs
		}
		if xmin < g.xmax {
			d.log.Warn("webhooks: passing a gap a transaction still holds after the maximum wait",
				"webhook_id", hookID, "table", table, "from", next, "to", e.pos-1)
		}
		// Read again: the gap's rows may have committed after this batch was read.
		filled, err := d.store.anyIn(ctx, table, next, e.pos)
		if err != nil {
			return events[:i], true, moved, err
		}
		*g = gapState{}
		if filled {
			return events[:i], true, moved, nil // read them in order on the next step
		}
		// Nothing will ever fill next … e.pos-1: the cursor goes to just before e.
		*cursor, moved = e.pos-1, true
		next = e.pos + 1
	}
	return events, false, moved, nil
}

// deliver sends one event until the receiver answers 2xx or the event is given up. Between
// attempts it waits with exponential backoff, renewing the lease.
func (d *Dispatcher) deliver(ctx context.Context, l *lease, src source) error {
	invID, attempts, err := d.store.beginInvocation(ctx, l.hook.ID, src)
	if err != nil {
		return err
	}
	for {
		res := d.send(ctx, l.hook, invID, src)
		if ctx.Err() != nil && !res.success {
			return ctx.Err() // stopping: this attempt is not counted, the next start sends again
		}
		attempts++
		res.giveUp = !res.success && attempts >= d.opts.MaxAttempts
		// An answer received is recorded even while stopping, so that a clean stop never
		// sends an acknowledged event again.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := d.store.recordAttempt(rctx, l.hook.ID, d.owner, invID, src, res)
		cancel()
		if err != nil {
			return err
		}
		switch {
		case res.success:
			d.deliveries.WithLabelValues("success").Inc()
			return nil
		case res.giveUp:
			d.deliveries.WithLabelValues("dropped").Inc()
			d.log.Warn("webhooks: event given up after the maximum attempts", "webhook_id", l.hook.ID,
				"invocation_id", invID, "event_type", src.typ, "attempts", attempts, "status_code", res.statusCode, "err", res.err)
			return nil
		}
		d.deliveries.WithLabelValues("failed").Inc()
		wait := d.opts.InitialBackoff << min(attempts-1, 30)
		if wait <= 0 || wait > d.opts.MaxBackoff {
			wait = d.opts.MaxBackoff
		}
		if res.retryAfter > wait {
			wait = min(res.retryAfter, d.opts.MaxBackoff)
		}
		d.log.Info("webhooks: attempt failed, retrying", "webhook_id", l.hook.ID, "invocation_id", invID,
			"attempt", attempts, "status_code", res.statusCode, "err", res.err, "retry_in", wait.String())
		if err := d.backoff(ctx, l, wait); err != nil {
			return err
		}
	}
}

// backoff waits d, renewing the lease every third of its TTL; the webhook as renewed (a new
// endpoint or secret) is used for the next attempt.
func (d *Dispatcher) backoff(ctx context.Context, l *lease, wait time.Duration) error {
	deadline := d.opts.Now().Add(wait)
	for {
		left := deadline.Sub(d.opts.Now())
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, d.opts.LeaseTTL/3)):
		}
		if err := d.renewNow(ctx, l); err != nil {
			return err
		}
	}
}

// renew renews the lease when a third of its TTL has passed since it was last renewed: a
// step that sends many events to a slow receiver keeps its hold, so no other node starts on
// the same webhook meanwhile.
func (d *Dispatcher) renew(ctx context.Context, l *lease) error {
	if d.opts.Now().Sub(l.renewed) < d.opts.LeaseTTL/3 {
		return nil
	}
	return d.renewNow(ctx, l)
}

// renewNow renews the lease; the webhook as read back (a new endpoint or secret) is used from
// the next attempt.
func (d *Dispatcher) renewNow(ctx context.Context, l *lease) error {
	nl, err := d.store.claim(ctx, l.hook.ID, d.owner, d.opts.LeaseTTL)
	if err != nil {
		return err
	}
	if nl == nil {
		return errLeaseLost
	}
	l.hook, l.renewed = nl.hook, d.opts.Now()
	return nil
}

// send makes one attempt.
func (d *Dispatcher) send(ctx context.Context, w *Webhook, invID int64, src source) attemptResult {
	start := d.opts.Now()
	// Not cancelled by a stop: an attempt in flight finishes (bounded by Timeout), so that a
	// clean stop does not lose a receiver's answer and send the event again.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, w.HTTPMethod, w.Endpoint, bytes.NewReader(src.envelope))
	if err != nil {
		return attemptResult{err: "cannot build the request: " + errText(err)}
	}
	ts := d.opts.Now().UTC().Format("2006-01-02T15:04:05Z")
	for k, v := range w.CustomHeaders {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Switchboard Webhook")
	req.Header.Set(HeaderWebhookID, w.ID)
	req.Header.Set(HeaderInvocationID, strconv.FormatInt(invID, 10))
	req.Header.Set(HeaderEventID, src.eventID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, src.envelope))
	if a := w.auth; a != nil {
		switch a.Type {
		case "basic_auth":
			req.SetBasicAuth(a.Data["username"], a.Data["password"])
		case "bearer_token":
			req.Header.Set("Authorization", "Bearer "+a.Data["token"])
		case "api_key":
			req.Header.Set(a.Data["name"], a.Data["value"])
		}
	}
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return attemptResult{err: errText(err), duration: d.opts.Now().Sub(start)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, d.opts.MaxResponseBytes))
	_ = resp.Body.Close()
	r := attemptResult{statusCode: resp.StatusCode, duration: d.opts.Now().Sub(start),
		success: resp.StatusCode >= 200 && resp.StatusCode < 300}
	if !r.success {
		r.err = "receiver answered " + strconv.Itoa(resp.StatusCode)
		// RFC 9110 §10.2.3: Retry-After in seconds (a date is not honoured).
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
			r.retryAfter = time.Duration(s) * time.Second
		}
	}
	return r
}

// errText is err without the URL (*url.Error quotes it, and a URL's query may hold a token),
// cut to a length the attempts table keeps.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return clean(err.Error(), 300)
}
