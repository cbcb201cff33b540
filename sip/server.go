package sip

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// Sentinel errors of the Server.
var (
	// ErrClosed is returned by Start after Close, and by Dial on a closed server.
	ErrClosed = errors.New("sip: server closed")
	// ErrDraining is returned by Dial once StopAccepting was called.
	ErrDraining = errors.New("sip: server draining")
)

// allowMethods is our Allow header (RFC 3261 §20.5): what a 405 lists and our INVITEs offer.
// REFER is listed because an agent's phone may transfer with it (RFC 3515); on any other leg
// it is refused with 403 (policy), not 405.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, REGISTER"

// Server is the B2BUA: it listens for SIP on UDP and TCP (and TLS), admits calls from trunks,
// routes them by line to a Target, and places outbound legs. One Server per process; it owns its
// sipgo user agent, listeners and calls. Methods are safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	m    *metrics
	now  func() time.Time
	// lastFloodLog is when a rate_limited security event was last logged (unix ns): a flood
	// is counted in full but logged at most once a second.
	lastFloodLog atomic.Int64
	// lastRTPLog does the same for RTP source rejections.
	lastRTPLog atomic.Int64

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	// lines is the line table: an immutable map swapped whole by SetLines, read without a
	// lock on the INVITE path (a call keeps the Line it matched).
	lines   atomic.Pointer[map[string]Line]
	reg     *registrar
	limiter *limiter
	// trunkCPS holds the calls-per-second bucket of each trunk that has one (built in New,
	// never changed; rate.Limiter is safe for concurrent use).
	trunkCPS map[string]*rate.Limiter
	scanners []string
	secret   [32]byte
	// trunkNonces are the nonce counts seen on trunk INVITEs (trunkauth.go; its own lock).
	trunkNonces nonceUses
	// localDialer reaches this node's agents for other nodes' internal INVITEs (set by
	// ClusterDialer); replay remembers the internal INVITEs accepted (internal_leg.go).
	localDialer atomic.Pointer[ivr.AgentDialer]
	replay      replayCache

	ports     *media.PortAllocator
	accepting atomic.Bool
	ready     atomic.Bool
	closed    atomic.Bool

	mu sync.Mutex
	// dialogs holds every live leg by its dialog ID as seen from our side (RFC 3261 §12: the
	// Call-ID and our tag; the remote tag is checked by leg.matches). callIDs counts the live
	// legs of each Call-ID, so that a new INVITE reusing one is refused (admitInvite).
	dialogs map[dialogKey]*leg
	callIDs map[string]int
	calls   map[*Call]struct{}
	// trunkCalls counts the live inbound calls of each trunk (Trunk.MaxCalls).
	trunkCalls map[string]int
	// ending counts the calls of calls that are ending (markEnding) — their caller hung up or
	// was hung up on, the rest of the call is being torn down — and trunkEnding those of each
	// trunk; slotFreed, when not nil, is closed (and dropped) the next time a call leaves calls.
	// An INVITE over max_calls waits a moment for an ending call's slot (admit).
	ending      int
	trunkEnding map[string]int
	slotFreed   chan struct{}
	listeners   []io.Closer
	addrs       map[string]netip.AddrPort // "udp", "tcp", "tls" → bound address
	// callsWG counts the calls admitted and not yet settled: a call leaves it once its events
	// were taken by the Sink, which may be after its slot in calls was freed (settle).
	callsWG sync.WaitGroup
	// settleSlots bounds the ended calls whose events are delivered in the background
	// (Options.SettleBacklog); nil when every call keeps its slot until its events are taken.
	settleSlots chan struct{}
	serveWG     sync.WaitGroup
	// byeWG counts ByeLostLegs' background BYEs; Add under mu while not closed (Close waits).
	byeWG   sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelCauseFunc
	started bool
}

// New validates opts, applies defaults and builds a Server. Nothing listens until Start.
func New(opts Options) (*Server, error) {
	if opts.UDPAddr == "" && opts.TCPAddr == "" && opts.TLSAddr == "" {
		opts.UDPAddr, opts.TCPAddr = "127.0.0.1:5060", "127.0.0.1:5060"
	}
	// Zero turns off what can be off (options.go): only what cannot takes a default here.
	if opts.MaxCalls <= 0 {
		opts.MaxCalls = int(^uint(0) >> 1) // no limit
	}
	if opts.SessionExpires < 0 {
		opts.SessionExpires = 0 // off
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.MinSE <= 0 {
		opts.MinSE = DefaultMinSE
	}
	if opts.RingTimeout <= 0 {
		opts.RingTimeout = DefaultRingTimeout
	}
	if opts.T1 <= 0 {
		opts.T1 = DefaultT1
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 64 * opts.T1
	}
	if opts.AnswerAckTimeout <= 0 {
		opts.AnswerAckTimeout = DefaultAnswerAckTimeout
	}
	opts.AnswerAckTimeout = min(opts.AnswerAckTimeout, opts.AckTimeout)
	if opts.EmitTimeout <= 0 {
		opts.EmitTimeout = DefaultEmitTimeout
	}
	if opts.SettleBacklog == 0 {
		opts.SettleBacklog = DefaultSettleBacklog
	}
	if opts.RateLimit.Burst <= 0 {
		opts.RateLimit.Burst = DefaultBurst
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.TLSAddr != "" && opts.TLSConfig == nil {
		return nil, errors.New("sip: TLSAddr set without TLSConfig")
	}
	opts.FeatureCodes = opts.FeatureCodes.withDefaults()
	if err := opts.FeatureCodes.validate(); err != nil {
		return nil, err
	}
	if !opts.ExternalAddr.IsValid() {
		first := opts.UDPAddr
		if first == "" {
			first = opts.TCPAddr
		}
		if first == "" {
			first = opts.TLSAddr
		}
		host, _, err := net.SplitHostPort(first)
		if err != nil {
			return nil, fmt.Errorf("sip: listen address %q: %w", first, err)
		}
		a, err := netip.ParseAddr(host)
		if err != nil || a.IsUnspecified() {
			a = netip.MustParseAddr("127.0.0.1")
		}
		opts.ExternalAddr = a
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Now,
		scanners:   opts.ScannerUserAgents,
		dialogs:    map[dialogKey]*leg{},
		callIDs:    map[string]int{},
		calls:      map[*Call]struct{}{},
		trunkCalls: map[string]int{},
		trunkCPS:   map[string]*rate.Limiter{},
		addrs:      map[string]netip.AddrPort{},
	}
	if opts.SettleBacklog > 0 {
		s.settleSlots = make(chan struct{}, opts.SettleBacklog)
	}
	if _, err := rand.Read(s.secret[:]); err != nil {
		return nil, fmt.Errorf("sip: nonce secret: %w", err)
	}
	if opts.RateLimit.PerSecond > 0 {
		s.limiter = newLimiter(opts.RateLimit.PerSecond, opts.RateLimit.Burst, opts.Now)
	}
	if err := s.SetLines(opts.Lines); err != nil {
		return nil, err
	}
	for i, t := range opts.Trunks {
		if t.Name == "" {
			return nil, fmt.Errorf("sip: trunk %d: no name", i)
		}
		if t.CallsPerSecond > 0 {
			s.trunkCPS[t.Name] = rate.NewLimiter(rate.Limit(t.CallsPerSecond), max(1, int(math.Ceil(t.CallsPerSecond))))
		}
		if t.OutboundURI != "" {
			var u sip.Uri
			if err := sip.ParseUri(t.OutboundURI, &u); err != nil {
				return nil, fmt.Errorf("sip: trunk %s: outbound uri: %w", t.Name, err)
			}
		}
	}
	trunkNames := make([]string, 0, len(opts.Trunks))
	for _, t := range opts.Trunks {
		trunkNames = append(trunkNames, t.Name)
	}
	m, err := newMetrics(opts.Registerer, trunkNames, s.udpDrops)
	if err != nil {
		return nil, fmt.Errorf("sip: metrics: %w", err)
	}
	s.m = m
	if s.reg, err = newRegistrar(s, opts.Registrar, opts.Registerer); err != nil {
		return nil, err
	}
	s.ports = opts.Ports
	if s.ports == nil {
		p, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), 20000, 20999)
		if err != nil {
			return nil, fmt.Errorf("sip: rtp ports: %w", err)
		}
		s.ports = p
	}
	return s, nil
}

// Start binds the listeners and serves SIP until ctx ends or Close is called. It returns once
// every listener is bound (Ready reports true from then on).
func (s *Server) Start(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("sip: already started")
	}
	s.started = true
	s.mu.Unlock()

	ua, err := sipgo.NewUA(sipgo.WithUserAgent(s.opts.UserAgent),
		sipgo.WithUserAgentHostname(s.opts.ExternalAddr.String()),
		sipgo.WithUserAgenTLSConfig(s.opts.TLSConfig))
	if err != nil {
		return fmt.Errorf("sip: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		ua.Close()
		return fmt.Errorf("sip: server: %w", err)
	}
	s.ua, s.srv = ua, srv
	// Handlers are registered before any listener serves (sipgo reads them unlocked).
	srv.OnNoRoute(s.handle)
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.CANCEL, sip.BYE, sip.OPTIONS, sip.UPDATE, sip.INFO,
		sip.REGISTER, sip.PRACK, sip.SUBSCRIBE, sip.NOTIFY, sip.PUBLISH, sip.REFER, sip.MESSAGE} {
		srv.OnRequest(m, s.handle)
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())

	listen := func(network, addr string) error {
		if addr == "" {
			return nil
		}
		lc := net.ListenConfig{}
		switch network {
		case "udp":
			pc, err := lc.ListenPacket(ctx, "udp", addr)
			if err != nil {
				return fmt.Errorf("sip: listen udp %s: %w", addr, err)
			}
			if got, err := sizeUDPReceiveBuffer(pc, udpReceiveBuffer); err != nil || got < udpReceiveBuffer {
				s.log.Warn("sip: the UDP socket's receive queue is smaller than asked: a pause in reading drops SIP messages sooner; raise net.core.rmem_max (sysctl) or give the process CAP_NET_ADMIN",
					"address", addr, "asked_bytes", udpReceiveBuffer, "granted_bytes", got, "err", err)
			}
			s.mu.Lock()
			s.listeners = append(s.listeners, pc)
			s.addrs["udp"] = pc.LocalAddr().(*net.UDPAddr).AddrPort()
			s.mu.Unlock()
			s.serveWG.Add(1)
			go func() { defer s.serveWG.Done(); _ = srv.ServeUDP(pc) }()
		case "tcp", "tls":
			l, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("sip: listen %s %s: %w", network, addr, err)
			}
			// Caps and deadlines go under TLS so the handshake is bounded too (connlimit.go).
			l = s.limitListener(l, network)
			if network == "tls" {
				l = newTLSListener(l, s.opts.TLSConfig)
			}
			s.mu.Lock()
			s.addrs[network] = l.Addr().(*net.TCPAddr).AddrPort()
			s.listeners = append(s.listeners, l)
			s.mu.Unlock()
			s.serveWG.Add(1)
			go func() {
				defer s.serveWG.Done()
				if network == "tls" {
					_ = srv.ServeTLS(l)
				} else {
					_ = srv.ServeTCP(l)
				}
			}()
		}
		return nil
	}
	for _, l := range []struct{ n, a string }{{"udp", s.opts.UDPAddr}, {"tcp", s.opts.TCPAddr}, {"tls", s.opts.TLSAddr}} {
		if err := listen(l.n, l.a); err != nil {
			s.Close()
			return err
		}
	}
	// The client sends from our listening ports so responses and in-dialog requests come back
	// to the same place (Via and Contact name them).
	cport := int(s.Addr("udp").Port())
	if cport == 0 {
		cport = int(s.Addr("tcp").Port())
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(s.opts.ExternalAddr.String()), sipgo.WithClientPort(cport))
	if err != nil {
		s.Close()
		return fmt.Errorf("sip: client: %w", err)
	}
	s.client = client

	s.accepting.Store(true)
	s.ready.Store(true)
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	return nil
}

// ListenAndServe starts the server and blocks until ctx ends, then stops accepting calls, hangs
// up the live ones and closes everything.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-s.ctx.Done()
	return s.Close()
}

// Addr returns the bound address of a transport ("udp", "tcp", "tls"), valid after Start.
func (s *Server) Addr(network string) netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[network]
}

// Ready reports whether SIP is listening and taking calls (for /readyz).
func (s *Server) Ready() bool { return s.ready.Load() && s.accepting.Load() && !s.closed.Load() }

// ActiveCalls returns the number of calls in progress.
func (s *Server) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// StopAccepting starts a graceful drain: new INVITEs get 503 with Retry-After, live calls go on.
//
// It takes s.mu so that every admission (which checks accepting and adds to callsWG under s.mu)
// either happened before it — and Drain waits for that call — or sees it and refuses: a
// WaitGroup's Add from zero must not race its Wait.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	s.accepting.Store(false)
	s.mu.Unlock()
}

// Drain stops accepting calls and waits until every live call has ended and its events were
// taken by the Sink, or ctx is done; it returns ctx's error in the latter case (the caller
// then calls Close, which hangs up the rest).
func (s *Server) Drain(ctx context.Context) error {
	s.StopAccepting()
	done := make(chan struct{})
	go func() { s.callsWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close hangs up every live call (BYE on answered legs, final responses on ringing ones), waits
// for their goroutines, and closes the listeners and the user agent. It is idempotent.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.accepting.Store(false)
	s.ready.Store(false)
	if s.cancel == nil {
		return nil
	}
	s.cancel(causeShutdown)
	s.reg.close()
	s.mu.Lock()
	calls := make([]*Call, 0, len(s.calls))
	for c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	// After the lock: every ByeLostLegs either added itself before it or sees closed. Their
	// BYEs end with s.ctx, cancelled above.
	s.byeWG.Wait()
	for _, c := range calls {
		c.hangup(causeShutdown)
	}
	waited := make(chan struct{})
	go func() { s.callsWG.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		s.log.Warn("sip: calls still running at close")
	}
	var errs []error
	s.mu.Lock()
	listeners := s.listeners
	s.mu.Unlock()
	for _, l := range listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.client != nil {
		_ = s.client.Close()
	}
	if s.ua != nil {
		_ = s.ua.Close()
	}
	s.serveWG.Wait()
	return errors.Join(errs...)
}

// security counts a security event and writes the structured log line that fail2ban or an
// alert can act on: the event type, the source address, the method, the User-Agent and the
// From user. A flood of rate_limited events is logged at most once a second (counted in full).
func (s *Server) security(typ string, req *sip.Request, detail string) {
	s.m.securityEvent.WithLabelValues(typ).Inc()
	if typ == secRateLimit {
		now := s.now().UnixNano()
		last := s.lastFloodLog.Load()
		if now-last < int64(time.Second) || !s.lastFloodLog.CompareAndSwap(last, now) {
			return
		}
	}
	ua, from := "", ""
	if h := req.GetHeader("User-Agent"); h != nil {
		ua = logValue(h.Value())
	}
	if f := req.From(); f != nil {
		from = uriUser(f.Address.User)
	}
	attrs := []any{"security_event", typ, "source", s.source(req).String(), "method", methodLabel(string(req.Method)),
		"user_agent", ua, "from_user", from, "detail", detail}
	if front := s.viaFront(req); front.IsValid() {
		// Through a trusted front: source is the client it names, front the hop it came over.
		attrs = append(attrs, "front", front.String())
	}
	s.log.Warn("sip: security event", attrs...)
}

// sourceAddr returns the IP of the request's real sender (Server.source: the client a trusted
// front names, else the packet's source).
func (s *Server) sourceAddr(req *sip.Request) netip.Addr {
	return s.source(req).Addr()
}

func (s *Server) rateExempt(a netip.Addr) bool {
	if s.inInternalNetworks(a) {
		return true // the other nodes: their requests are authenticated by the cluster secret
	}
	for _, p := range s.opts.RateLimit.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// authOnlyTrunk picks the auth-only trunk (credentials, no Allow) an INVITE from a source of no
// trunk claims by its digest username; without credentials naming one, the first auth-only trunk,
// whose challenge the caller then gets. ok is false when no trunk is auth-only (403 then).
func (s *Server) authOnlyTrunk(req *sip.Request) (Trunk, bool) {
	var first *Trunk
	user := ""
	if h := req.GetHeader("Authorization"); h != nil {
		user = parseDigest(h.Value())["username"]
	}
	for i := range s.opts.Trunks {
		t := &s.opts.Trunks[i]
		if len(t.Allow) > 0 || t.Username == "" {
			continue
		}
		if user != "" && t.Username == user {
			return *t, true
		}
		if first == nil {
			first = t
		}
	}
	if first == nil {
		return Trunk{}, false
	}
	return *first, true
}

// trunkFor returns the trunk whose Allow list contains addr.
func (s *Server) trunkFor(addr netip.Addr) (Trunk, bool) {
	for _, t := range s.opts.Trunks {
		for _, p := range t.Allow {
			if p.Contains(addr) {
				return t, true
			}
		}
	}
	return Trunk{}, false
}

// respond sends res on tx and counts it.
func (s *Server) respond(tx sip.ServerTransaction, res *sip.Response) error {
	if res.GetHeader("Server") == nil {
		res.AppendHeader(sip.NewHeader("Server", s.opts.UserAgent))
	}
	if err := tx.Respond(res); err != nil {
		return err
	}
	s.m.responses.WithLabelValues(codeLabel(res.StatusCode)).Inc()
	return nil
}

func (s *Server) reply(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := s.respond(tx, res); err != nil {
		s.log.Debug("sip: respond failed", "code", code, "error", err)
	}
}

// handle is the entry point of every request sipgo parsed: protection first, then in-dialog
// requests go to their leg, and out-of-dialog ones to their method's handler.
//
// A carrier's call runs to its end on this goroutine (sipgo's, one per request), parked for the
// whole call in its target: so what is on the stack while it talks is kept small. The
// dispatch (dispatch, admitInvite) and the call's start and end (runCall) are functions of
// their own, off the stack by then, and the goroutine parks under about 2 KB (sipgo's frames
// included) — under the quarter of 16 KiB below which the garbage collector halves a stack
// (issue 18: 8 KiB a call instead of 16; TestTalkingCallStackShrinksTo8KiB).
func (s *Server) handle(req *sip.Request, tx sip.ServerTransaction) {
	defer func() {
		// A bug on one request must never take down the process or another call.
		if r := recover(); r != nil {
			s.log.Error("sip: panic handling request", "method", methodLabel(string(req.Method)), "panic", r)
		}
	}()
	if c, target := s.dispatch(req, tx); c != nil {
		s.runInbound(c, target)
	}
}

// dispatch checks a request and handles it, except a carrier's INVITE admitted as a new call:
// that call it returns, with its line's target, for handle to run (see handle).
func (s *Server) dispatch(req *sip.Request, tx sip.ServerTransaction) (*Call, Target) {
	s.m.requests.WithLabelValues(methodLabel(string(req.Method))).Inc()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		callID := ""
		if h := req.CallID(); h != nil {
			callID = logValue(h.Value())
		}
		s.log.Debug("sip: request", "method", methodLabel(string(req.Method)), "call_id", callID, "source", s.source(req).String())
	}
	switch v, err := s.checkFront(req); v {
	case frontSpoofed:
		// A client naming its own source: ignored (the packet's source is used), counted, and
		// logged with the packet's source for fail2ban.
		s.security(secSourceSpoofed, req, SourceHeader+" from a source that is no trusted front ignored")
	case frontBad:
		s.security(secMalformed, req, "trusted front's "+SourceHeader+" refused: "+logValue(err.Error()))
		if !req.IsAck() {
			s.reply(req, tx, 400, "Bad Request (malformed "+SourceHeader+")")
		}
		return nil, nil
	}
	src := s.sourceAddr(req)
	trunk, isTrunk := s.trunkFor(src)
	// REGISTER comes from agents' phones, never from a carrier: no trunk exemption for it.
	trusted := isTrunk && req.Method != sip.REGISTER
	if ua := req.GetHeader("User-Agent"); ua != nil && !trusted && isScanner(ua.Value(), s.scanners) {
		s.security(secScanner, req, "scanner User-Agent dropped")
		return nil, nil // silent drop: tell a scanner nothing
	}
	if s.limiter != nil && (!trusted || s.opts.RateLimit.LimitTrunks) && !req.IsAck() && !s.rateExempt(src) && !s.limiter.allow(src) {
		s.security(secRateLimit, req, "over the per-source request rate")
		return nil, nil
	}
	if req.CallID() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil {
		s.security(secMalformed, req, "missing Call-ID, CSeq, From or To")
		if !req.IsAck() {
			s.reply(req, tx, 400, "Bad Request")
		}
		return nil, nil
	}
	if req.CSeq().MethodName != req.Method {
		s.security(secMalformed, req, "CSeq method mismatch")
		if !req.IsAck() {
			s.reply(req, tx, 400, "Bad Request (CSeq method mismatch)")
		}
		return nil, nil
	}
	if len(req.GetHeaders("Content-Length")) > 1 {
		s.security(secMalformed, req, "multiple Content-Length")
		if !req.IsAck() {
			s.reply(req, tx, 400, "Bad Request (multiple Content-Length)")
		}
		return nil, nil
	}
	if sch := strings.ToLower(req.Recipient.Scheme); sch != "sip" && sch != "sips" && sch != "tel" {
		if !req.IsAck() {
			s.reply(req, tx, 416, "Unsupported URI Scheme")
		}
		return nil, nil
	}
	if !req.IsAck() && req.Method != sip.CANCEL {
		// RFC 3261 §8.2.2.3: a Require we do not support gets 420 listing it.
		if unsup := unsupportedRequire(req); unsup != "" {
			s.reply(req, tx, 420, "Bad Extension", sip.NewHeader("Unsupported", unsup))
			return nil, nil
		}
	}
	if _, ok := req.To().Params.Get("tag"); ok {
		s.handleInDialog(req, tx)
		return nil, nil
	}
	if st, ok := s.featureCode(req); ok {
		s.handleFeatureCode(req, tx, st) // featurecode.go: an agent's phone setting its state
		return nil, nil
	}
	if s.pickupCode(req) {
		s.handlePickupCode(req, tx) // pickup.go: an agent's phone picking up a ringing call
		return nil, nil
	}
	if req.Method == sip.INVITE {
		if h := req.GetHeader("Replaces"); h != nil {
			s.handleReplacesInvite(req, tx, h) // phoneconsult.go: not how a transfer reaches us
			return nil, nil
		}
		if s.phoneConsultInvite(req, isTrunk) {
			s.handlePhoneConsult(req, tx) // phoneconsult.go: an agent's phone consulting
			return nil, nil
		}
	}
	switch req.Method {
	case sip.INVITE:
		if s.clusterOn() && req.GetHeader(hdrOffer) != nil {
			s.handleInternalInvite(req, tx) // another node's offer to an agent here
			return nil, nil
		}
		return s.admitInvite(req, tx, trunk, isTrunk)
	case sip.REGISTER:
		s.handleRegister(req, tx)
	case sip.OPTIONS:
		s.reply(req, tx, 200, "OK", sip.NewHeader("Allow", allowMethods), sip.NewHeader("Accept", "application/sdp"))
	case sip.ACK:
		// An ACK outside any dialog (e.g. for a 2xx we never sent): absorb it (RFC 3261 §17.2.3).
	case sip.CANCEL:
		// CANCELs matching an INVITE server transaction are handled by sipgo's transaction layer
		// (200 to the CANCEL, 487 to the INVITE); one that matches nothing gets 481.
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist")
	case sip.BYE, sip.UPDATE, sip.INFO, sip.PRACK, sip.NOTIFY:
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist")
	default:
		s.reply(req, tx, 405, "Method Not Allowed", sip.NewHeader("Allow", allowMethods))
	}
	return nil, nil
}

func (s *Server) handleInDialog(req *sip.Request, tx sip.ServerTransaction) {
	// RFC 3261 §12.2.2: the To tag of an in-dialog request is our tag; the Call-ID and our tag
	// find the leg, and the From tag must be the peer's (leg.matches). Anything else is 481.
	toTag, _ := req.To().Params.Get("tag")
	s.mu.Lock()
	l := s.dialogs[dialogKey{callID: req.CallID().Value(), localTag: toTag}]
	s.mu.Unlock()
	if l == nil || !l.matches(req) {
		s.log.Debug("sip: no dialog for request", "method", methodLabel(string(req.Method)), "found", l != nil,
			"to", logValue(req.To().Value()), "from", logValue(req.From().Value()))
		if req.IsAck() {
			return
		}
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	l.handleRequest(req, tx)
}

// dialogKey identifies a leg among the live dialogs: its Call-ID and our tag.
type dialogKey struct{ callID, localTag string }

func (s *Server) addDialog(l *leg) {
	s.mu.Lock()
	s.addDialogLocked(l)
	s.mu.Unlock()
}

func (s *Server) addDialogLocked(l *leg) {
	k := dialogKey{l.callID, l.localTag}
	if _, ok := s.dialogs[k]; !ok {
		s.callIDs[l.callID]++
	}
	s.dialogs[k] = l
}

func (s *Server) removeDialog(l *leg) {
	k := dialogKey{l.callID, l.localTag}
	s.mu.Lock()
	if s.dialogs[k] == l {
		delete(s.dialogs, k)
		if s.callIDs[l.callID]--; s.callIDs[l.callID] <= 0 {
			delete(s.callIDs, l.callID)
		}
	}
	s.mu.Unlock()
}

// contact returns our Contact header for a leg on transport tp.
func (s *Server) contact(tp string) *sip.ContactHeader {
	network := strings.ToLower(tp)
	if network == "" {
		network = "udp"
	}
	ap := s.Addr(network)
	if !ap.IsValid() {
		ap = s.Addr("udp")
		network = "udp"
	}
	u := sip.Uri{Scheme: "sip", User: "switchboard", Host: s.opts.ExternalAddr.String(), Port: int(ap.Port())}
	if network != "udp" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", network)
	}
	return &sip.ContactHeader{Address: u}
}

// unsupportedRequire returns the option tags of Require headers we do not support (we support
// "timer", RFC 4028), comma-separated, or "".
func unsupportedRequire(req *sip.Request) string {
	var out []string
	for _, h := range req.GetHeaders("Require") {
		for _, t := range strings.Split(h.Value(), ",") {
			t = strings.TrimSpace(t)
			if t != "" && !strings.EqualFold(t, "timer") {
				out = append(out, t)
			}
		}
	}
	return strings.Join(out, ", ")
}
