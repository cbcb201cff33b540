package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing"
)

//go:embed static
var staticFiles embed.FS

// CookieName is the session cookie the page and, through Server.Authenticate, /api/v2 accept.
// With Options.SecureCookie it is SecureCookieName instead.
const CookieName = "switchboard_session"

// SecureCookieName is the session cookie with Options.SecureCookie: the __Host- prefix makes
// browsers refuse it unless it is Secure, has Path=/ and no Domain, so that neither a plain
// http:// page of the same host nor a sibling subdomain can plant or overwrite it
// (draft-ietf-httpbis-rfc6265bis §4.1.3.2).
const SecureCookieName = "__Host-" + CookieName

// Defaults of Options.
const (
	DefaultSessionTTL     = 12 * time.Hour
	DefaultReconnectGrace = 15 * time.Second
	DefaultAPIBase        = "/api/v2"
)

// Sentinel errors.
var (
	// ErrBadCredentials is what an Authenticator returns (wrapped or not) for a wrong email or
	// password; the page says so without telling which.
	ErrBadCredentials = errors.New("web: wrong email or password")
	// ErrNotConnected is returned by Offer and StartCall when the agent has no softphone page
	// connected: the dialer should try the agent's SIP phone, or count a missed offer.
	ErrNotConnected = errors.New("web: agent has no softphone connected")
	// ErrBusy is returned by Offer and StartCall when the agent is already ringing or on a call.
	ErrBusy = errors.New("web: agent's softphone is busy")
	// ErrDeclined is returned by Offer when the agent pressed decline. It wraps ivr.ErrNoAnswer.
	ErrDeclined = fmt.Errorf("web: agent declined: %w", ivr.ErrNoAnswer)
)

// Agent is a logged-in user of the page.
type Agent struct {
	ID    int64
	Email string
	Name  string
}

// Authenticator checks an agent's email and password (the integrator adapts
// ticketing.Store.CheckPassword and refuses non-agents). Wrong credentials: ErrBadCredentials.
type Authenticator interface {
	Login(ctx context.Context, email, password string) (Agent, error)
}

// ACD is what the page's buttons drive: *ivr.ACD satisfies it.
type ACD interface {
	SetState(id int64, st ivr.AgentState) (ivr.AgentStatus, error)
	Agent(id int64) (ivr.AgentStatus, error)
	Hold(ctx context.Context, callID string) error
	Resume(ctx context.Context, callID string) error
	Transfer(ctx context.Context, callID string, to ivr.TransferTo) error
}

// Attacher is what an ACD implements when agents may be attached to several gateway nodes
// (*ivr.ACD does): the page's connection attaches its agent to this node, so that calls of the
// other nodes are offered here, and its end detaches it — setting the agent offline unless the
// page reconnected to another node meanwhile. An ACD without it sees the page's end as the
// agent going offline (SetState).
type Attacher interface {
	AgentAttached(id int64, via ivr.Via)
	AgentDetached(id int64, via ivr.Via) (ivr.AgentStatus, error)
}

// Options configures New. Zero values take the documented defaults.
type Options struct {
	// Auth checks logins. Required.
	Auth Authenticator
	// ACD takes the state, hold, resume and transfer buttons. Required.
	ACD ACD
	// WebRTC makes each agent's media leg. Required.
	WebRTC *media.WebRTC
	// APIBase is where the page finds the HTTP API (screen pop, search, settings, POST /calls).
	// Default "/api/v2".
	APIBase string
	// SessionTTL is how long a login lasts. Default 12 h.
	SessionTTL time.Duration
	// ReconnectGrace is how long an agent's session (PeerConnection, state) waits for the page
	// to reconnect its WebSocket before it is freed and the agent set offline. Default 15 s.
	ReconnectGrace time.Duration
	// SecureCookie makes the session cookie Secure and names it SecureCookieName (TLS
	// terminated in front of the gateway); without it the cookie is still Secure on requests
	// that arrived over TLS.
	SecureCookie bool
	// Guard limits password guessing on /login (backoff per address and account, 429 with
	// Retry-After) and reports failures as security events; give it the API's Guard so that
	// both count together. Nil: no limit.
	Guard *ticketing.AuthGuard
	// Registerer receives switchboard_softphone_sessions; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Transfers serves the page's transfers to outside numbers and consult transfers
	// (web/transfer.go). Nil: the page transfers blindly to agents and queues only, through
	// ACD.Transfer.
	Transfers *Transfers
	// Recordings pauses and resumes a call's recording (the page's Pause recording button).
	// Nil: the button is answered "this gateway does not record calls".
	Recordings RecordingPauser
	// ICEServers are the STUN and TURN servers the page's RTCPeerConnection uses (told in the
	// WebSocket's hello): agents behind a firewall that drops the media's UDP reach the gateway
	// through a TURN relay (over TCP or TLS). Nil: host candidates only.
	ICEServers []ICEServer
	// Sessions keeps the logins where every node of a cluster reads them (the ticketing
	// store's page_sessions, adapted by the integrator), so that a page moved to another node
	// (an HTTP front failing over) keeps its login there. Nil: the logins live in this
	// Server's memory only, as on a single node.
	Sessions SessionStore
	// FrontURL is the cluster's HTTP front, scheme and authority only ("https://gw.example.com"):
	// a page opened at this node's own address that finds its node no longer answering goes
	// there (a new page load, which the front sends to a live node) instead of waiting for its
	// node to come back. A page opened through the front stays: the front moves it. Empty: the
	// page waits for its node (one node).
	FrontURL string
	// Teams tells each agent's team ticket entry (docs/rules.md, TB), shown to the page in the
	// login and /session answers as "ticket_entry" so that the dial form asks for a ticket
	// ID; give it the same policy as Outbound.Teams. Nil: off for everyone.
	Teams TeamPolicy
}

// SessionStore keeps the page's logins for every node. Keys are the SHA-256 of the session
// cookie's value: the store never holds a cookie that logs anyone in.
type SessionStore interface {
	// CreateSession records a login of agent a under key until expires.
	CreateSession(ctx context.Context, key []byte, a Agent, expires time.Time) error
	// Session returns the agent logged in under key and the login's expiry; ErrNoSession
	// (wrapped or not) when there is none, or it ended; any other error when the store did
	// not answer (this node then trusts the logins it saw itself).
	Session(ctx context.Context, key []byte) (Agent, time.Time, error)
	// EndSession deletes the login under key (a logout); the store tells every node to end
	// the agent's softphone (the integrator calls EndSessions on each).
	EndSession(ctx context.Context, key []byte) error
}

// ErrNoSession is what a SessionStore returns for a key with no live login.
var ErrNoSession = errors.New("web: no such session")

// sessionTimeout bounds one question to the SessionStore: a database that hangs must not
// hold a page's request.
const sessionTimeout = 3 * time.Second

// RecordingPauser pauses (pause true) and resumes the recording of a live call; by is the
// agent. A call not recorded on this node is an error wrapping ErrNotRecorded
// (recordings.Service.PauseCall, adapted by the integrator).
type RecordingPauser interface {
	PauseCall(ctx context.Context, callID string, by int64, pause bool) error
}

// ErrNotRecorded is what a RecordingPauser wraps for a call it does not record.
var ErrNotRecorded = errors.New("web: call not recorded here")

// ICEServer is one STUN or TURN server for the page (the W3C RTCIceServer dictionary).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Server is the agent page: login, the static page, /ws signalling, and every connected
// agent's softphone. It is also the softphone side of ivr.AgentDialer (Offer).
type Server struct {
	opts   Options
	log    *slog.Logger
	static fs.FS
	gauge  prometheus.Gauge

	// mu guards the fields below; nothing outside the Server is called while it is held.
	mu sync.Mutex
	// sessions are the logins, by cookie value: all of them without Options.Sessions; with
	// it, those this node saw answered by the store, trusted only while the store does not
	// answer (the database away).
	sessions map[string]session
	agents   map[int64]*agentSession
	closed   bool
	wg       sync.WaitGroup
	// endSeq counts EndSessions calls. While checks are in flight (checking > 0), ended holds
	// the endSeq at which each agent's sessions last ended, so that a check that began before
	// (a login read as valid from the store, a WebSocket not yet attached) learns it is stale
	// (beginCheck, endedSince). It holds one entry per agent at most and is emptied whenever
	// no check is in flight.
	endSeq   uint64
	ended    map[int64]uint64
	checking int
}

type session struct {
	agent   Agent
	expires time.Time
}

// New checks opts and returns a Server. Register its handlers with Register.
func New(opts Options) (*Server, error) {
	if opts.Auth == nil || opts.ACD == nil || opts.WebRTC == nil {
		return nil, errors.New("web: new: Auth, ACD and WebRTC are required")
	}
	if opts.APIBase == "" {
		opts.APIBase = DefaultAPIBase
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.ReconnectGrace <= 0 {
		opts.ReconnectGrace = DefaultReconnectGrace
	}
	if opts.FrontURL != "" {
		front, err := frontOrigin(opts.FrontURL)
		if err != nil {
			return nil, fmt.Errorf("web: new: %w", err)
		}
		opts.FrontURL = front
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("web: new: %w", err)
	}
	s := &Server{opts: opts, log: log, static: sub, sessions: map[string]session{}, agents: map[int64]*agentSession{},
		ended: map[int64]uint64{}}
	s.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_softphone_sessions",
		Help: "Agents with a softphone session (WebRTC leg) open."})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.gauge); err != nil {
			return nil, fmt.Errorf("web: new: register metrics: %w", err)
		}
	}
	return s, nil
}

// Register adds the page's routes to mux: GET / (the page), GET /admin (the admin page of
// agents and queues), GET /assets/ (their files),
// POST /login, POST /logout, GET /session (who is logged in), GET /ws (signalling).
func (s *Server) Register(mux *http.ServeMux) {
	files := noRanges(http.FileServerFS(s.static)) // static.go: a Range flood must not burn a core
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		noRanges(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, s.static, "index.html")
		})).ServeHTTP(w, r)
	})
	// The admin page (agents, queues, memberships: the roster's admin API), same session.
	mux.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		noRanges(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, s.static, "admin.html")
		})).ServeHTTP(w, r)
	})
	mux.Handle("GET /assets/", files)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /session", s.whoami)
	mux.HandleFunc("GET /ws", s.ws)
}

// Authenticate returns the agent logged in with r's session cookie. The integrator's /api/v2
// authentication accepts it (besides Basic and Bearer) so that the page's own API calls work.
func (s *Server) Authenticate(r *http.Request) (Agent, bool) {
	a, err := s.authenticate(r)
	return a, err == nil
}

// errSessionsUnavailable: the SessionStore did not answer and this node never saw the login;
// the page is told to try again (503), not to log in again.
var errSessionsUnavailable = errors.New("web: sessions unavailable")

// authenticate returns the agent of r's session cookie, ErrNoSession, or
// errSessionsUnavailable. With Options.Sessions the store decides — so a login ended on
// another node (logout, password or role change) is refused here at once — and this node's
// own record is used only while the store does not answer.
func (s *Server) authenticate(r *http.Request) (Agent, error) {
	seq := s.beginCheck()
	defer s.endCheck()
	return s.authenticateSince(r, seq)
}

// beginCheck starts a check of a login (and, for a WebSocket, its attach) that EndSessions
// must not slip past: it returns the EndSessions count now, for endedSince. Every beginCheck
// is followed by one endCheck.
func (s *Server) beginCheck() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checking++
	return s.endSeq
}

// endCheck ends a check begun by beginCheck.
func (s *Server) endCheck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checking--
	if s.checking == 0 {
		clear(s.ended)
	}
}

// endedSince reports whether EndSessions(id) ran after beginCheck returned seq. s.mu is held.
func (s *Server) endedSince(id int64, seq uint64) bool {
	return s.ended[id] > seq
}

// authenticateSince is authenticate within a check begun at seq: a login the store answered
// as valid is refused (and not kept as this node's record) when the agent's sessions ended
// while the store was asked — the answer may predate the change that ended them.
func (s *Server) authenticateSince(r *http.Request, seq uint64) (Agent, error) {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return Agent{}, ErrNoSession
	}
	if s.opts.Sessions != nil {
		ctx, cancel := context.WithTimeout(r.Context(), sessionTimeout)
		a, exp, err := s.opts.Sessions.Session(ctx, sessionKey(c.Value))
		cancel()
		switch {
		case err == nil && time.Now().Before(exp):
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.endedSince(a.ID, seq) {
				delete(s.sessions, c.Value)
				return Agent{}, ErrNoSession
			}
			s.sessions[c.Value] = session{agent: a, expires: exp}
			return a, nil
		case err == nil || errors.Is(err, ErrNoSession):
			s.mu.Lock()
			delete(s.sessions, c.Value)
			s.mu.Unlock()
			return Agent{}, ErrNoSession
		}
		s.log.Warn("web: session store unavailable; using this node's own record of the login", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[c.Value]
	switch {
	case ok && time.Now().After(sess.expires):
		delete(s.sessions, c.Value)
		return Agent{}, ErrNoSession
	case ok:
		return sess.agent, nil
	case s.opts.Sessions != nil:
		return Agent{}, errSessionsUnavailable
	}
	return Agent{}, ErrNoSession
}

// sessionKey is what a SessionStore keeps of a cookie value: its SHA-256.
func sessionKey(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// writeAuthError answers a request authenticate refused: 401, or 503 with Retry-After when the
// session store did not answer (the page retries rather than asking for the login again).
func writeAuthError(w http.ResponseWriter, err error) {
	if errors.Is(err, errSessionsUnavailable) {
		apierror.Write(w, apierror.Error{Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second,
			Description: "the login cannot be checked now (database unreachable); try again"})
		return
	}
	apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "not logged in"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// sameOrigin refuses cross-site form posts and WebSockets: Origin, when sent, must name the Host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	return o == "http://"+r.Host || o == "https://"+r.Host
}

// login takes {"email","password"} (JSON) and sets the session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "cross-origin login refused"})
		return
	}
	var body struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || body.Email == "" {
		apierror.Write(w, apierror.Error{Status: http.StatusUnprocessableEntity, Description: "email and password are required"})
		return
	}
	if err := s.opts.Guard.Check(r, body.Email); err != nil {
		ticketing.WriteError(w, err)
		return
	}
	a, err := s.opts.Auth.Login(r.Context(), body.Email, body.Password)
	if errors.Is(err, ErrBadCredentials) {
		s.opts.Guard.Failed(r, body.Email)
		apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "wrong email or password"})
		return
	}
	if errors.Is(err, ticketing.ErrTooManyRequests) { // every password check slot is busy
		s.opts.Guard.Busy(r, body.Email)
		ticketing.WriteError(w, err)
		return
	}
	if err != nil {
		s.log.Error("web: login", "err", err)
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "login failed"})
		return
	}
	s.opts.Guard.Succeeded(r, body.Email)
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	exp := time.Now().Add(s.opts.SessionTTL)
	if s.opts.Sessions != nil {
		ctx, cancel := context.WithTimeout(r.Context(), sessionTimeout)
		err := s.opts.Sessions.CreateSession(ctx, sessionKey(tok), a, exp)
		cancel()
		if err != nil {
			id := logInternal(s.log, "web: login: record the session", err, "agent", a.ID)
			apierror.Write(w, apierror.Error{Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second,
				Description: "login failed: the session could not be recorded (id " + id + "); try again"})
			return
		}
	}
	s.mu.Lock()
	for k, v := range s.sessions { // expired logins go on every login: the map stays bounded
		if time.Now().After(v.expires) {
			delete(s.sessions, k)
		}
	}
	s.sessions[tok] = session{agent: a, expires: exp}
	s.mu.Unlock()
	http.SetCookie(w, s.cookie(r, tok, exp))
	writeJSON(w, http.StatusOK, s.sessionJSON(a))
}

// cookieName is the session cookie's name: SecureCookieName with Options.SecureCookie.
func (s *Server) cookieName() string {
	if s.opts.SecureCookie {
		return SecureCookieName
	}
	return CookieName
}

// cookie is the session cookie: HttpOnly (the page's script never reads it), SameSite=Strict
// (another site's links and forms do not carry it), Path=/ and no Domain (as __Host- needs),
// Secure with Options.SecureCookie or over TLS.
func (s *Server) cookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{Name: s.cookieName(), Value: value, Path: "/", Expires: expires, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.opts.SecureCookie || r.TLS != nil}
}

// EndSessions logs agent id out everywhere on this server: every session cookie of theirs
// stops working and their softphone (WebSocket and WebRTC leg) closes, the agent going
// offline. Wire it to ticketing.StoreOptions.CredentialsChanged: a password change, a role
// change or a deletion must not leave a stolen or shared session alive. It does not block on
// the page; safe from any goroutine with no lock of the caller held.
//
// A WebSocket whose login was checked before the change but whose softphone is not yet
// attached when EndSessions runs is refused when it attaches (attach's check, begun before the
// login was read), so no page outlives the change however the two interleave.
func (s *Server) EndSessions(id int64) {
	s.mu.Lock()
	for k, v := range s.sessions {
		if v.agent.ID == id {
			delete(s.sessions, k)
		}
	}
	s.endSeq++
	if s.checking > 0 {
		s.ended[id] = s.endSeq
	}
	s.mu.Unlock()
	s.endAgent(id)
}

// frontOrigin checks a front URL as the configuration checks http.public_url (an http or https
// scheme and a host, no path but "/", no query) and returns its origin: the page compares it
// with its own.
func frontOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("front URL %q: want scheme and host only, e.g. https://gw.example.com", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// sessionJSON is the answer of login and /session: the agent, where the API is, the agent's
// team ticket entry (mode off when the agent is in no team), and the cluster's HTTP front
// when there is one (front_url: where the page goes when this node stops answering).
func (s *Server) sessionJSON(a Agent) map[string]any {
	te := ticketing.TicketEntry{Mode: ticketing.TicketEntryOff}
	if s.opts.Teams != nil {
		if e := s.opts.Teams(a.Email); e.On() {
			te = e
		}
	}
	// The agent's queues: the page's Recent calls shows their calls as the team's.
	queues := []string{}
	if st, err := s.opts.ACD.Agent(a.ID); err == nil && st.Queues != nil {
		queues = st.Queues
	}
	out := map[string]any{"agent": agentJSON(a), "api_base": s.opts.APIBase, "ticket_entry": te, "queues": queues}
	if s.opts.FrontURL != "" {
		out["front_url"] = s.opts.FrontURL
	}
	return out
}

func agentJSON(a Agent) map[string]any {
	return map[string]any{"id": a.ID, "email": a.Email, "name": a.Name}
}

// logout ends the login and frees the agent's softphone (state offline).
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "cross-origin logout refused"})
		return
	}
	a, ok := s.Authenticate(r)
	if c, err := r.Cookie(s.cookieName()); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
		if s.opts.Sessions != nil && c.Value != "" {
			ctx, cancel := context.WithTimeout(r.Context(), sessionTimeout)
			if err := s.opts.Sessions.EndSession(ctx, sessionKey(c.Value)); err != nil {
				s.log.Warn("web: logout: the session stays in the store until it expires", "agent", a.ID, "err", err)
			}
			cancel()
		}
	}
	if ok {
		s.endAgent(a.ID)
	}
	gone := s.cookie(r, "", time.Time{})
	gone.MaxAge = -1
	http.SetCookie(w, gone)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	a, err := s.authenticate(r)
	if err != nil {
		writeAuthError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.sessionJSON(a))
}

// ws upgrades an authenticated, same-origin request to the signalling WebSocket.
func (s *Server) ws(w http.ResponseWriter, r *http.Request) {
	if as, c := s.accept(w, r); as != nil {
		as.serve(r.Context(), c)
	}
}

// accept checks the login, upgrades to the WebSocket and attaches the agent's softphone; nil
// when refused (answered or closed here). The login's check spans the attach: EndSessions
// running in between — after the login was read as valid, before the softphone is listed
// where it would close it — makes attach refuse, and the WebSocket closes as a logged-out
// page's does.
func (s *Server) accept(w http.ResponseWriter, r *http.Request) (*agentSession, *websocket.Conn) {
	seq := s.beginCheck()
	defer s.endCheck()
	a, err := s.authenticateSince(r, seq)
	if err != nil {
		writeAuthError(w, err)
		return nil, nil
	}
	if !sameOrigin(r) {
		apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "cross-origin WebSocket refused"})
		return nil, nil
	}
	c, err := websocket.Accept(w, r, nil) // Accept checks Origin against Host too
	if err != nil {
		return nil, nil
	}
	as, err := s.attach(a, seq)
	if errors.Is(err, errSessionEnded) {
		c.Close(websocket.StatusNormalClosure, "logged out")
		return nil, nil
	}
	if err != nil {
		c.Close(websocket.StatusTryAgainLater, "softphone unavailable")
		return nil, nil
	}
	return as, c
}

// errServerClosed refuses a page attaching while the Server closes.
var errServerClosed = errors.New("web: server closed")

// errSessionEnded refuses a page attaching whose agent's sessions ended (EndSessions) after
// its login was checked.
var errSessionEnded = errors.New("web: session ended")

// attach returns the agent's softphone session, creating it (and its WebRTC leg) at the first
// connection after login.
//
// s.mu is never held while media or the ACD is called: the ACD tells state changes through
// AgentStateChanged, which takes s.mu, from its notifier goroutine, and a WebRTC leg takes a
// while to build. So the leg is built unlocked; if another page of the same agent listed its
// session meanwhile, that one wins and this leg is closed. The agent's state is read after the
// session is listed, so that no change is missed in between: a change from then on reaches
// the session through AgentStateChanged, and AgentStatus.Seq keeps the newer of the two.
//
// seq is the beginCheck of the page's login check: if EndSessions(a.ID) ran since, the page
// is refused with errSessionEnded — checked under s.mu where the session is listed, so that
// EndSessions either finds the session listed (and closes it) or is seen here.
func (s *Server) attach(a Agent, seq uint64) (*agentSession, error) {
	if as, err := s.listed(a.ID, seq); as != nil || err != nil {
		return as, err
	}
	leg, err := s.opts.WebRTC.NewLeg()
	if err != nil {
		s.log.Error("web: new WebRTC leg", "agent", a.ID, "err", err)
		return nil, err
	}
	as := newAgentSession(s, a, leg)
	leg.OnStateChange(as.audioChanged)
	s.mu.Lock()
	other, listed := s.agents[a.ID]
	closed, ended := s.closed, s.endedSince(a.ID, seq)
	if !listed && !closed && !ended {
		s.agents[a.ID] = as
	}
	s.mu.Unlock()
	switch {
	case closed:
		leg.Close()
		return nil, errServerClosed
	case ended:
		leg.Close()
		return nil, errSessionEnded
	case listed:
		leg.Close()
		return other, nil
	}
	s.gauge.Inc()
	if at, ok := s.opts.ACD.(Attacher); ok {
		at.AgentAttached(a.ID, ivr.ViaPage)
	}
	if st, err := s.opts.ACD.Agent(a.ID); err == nil {
		as.applyStatus(st)
	}
	return as, nil
}

// listed returns the agent's session if it exists (nil if not), errServerClosed, or
// errSessionEnded when EndSessions(id) ran since seq.
func (s *Server) listed(id int64, seq uint64) (*agentSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, errServerClosed
	case s.endedSince(id, seq):
		return nil, errSessionEnded
	}
	return s.agents[id], nil
}

// endAgent frees an agent's softphone: the call (if any) ends, the leg closes, the agent goes
// offline.
func (s *Server) endAgent(id int64) {
	s.mu.Lock()
	as, ok := s.agents[id]
	if ok {
		delete(s.agents, id)
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	s.gauge.Dec()
	as.close()
	var err error
	if at, ok := s.opts.ACD.(Attacher); ok {
		_, err = at.AgentDetached(id, ivr.ViaPage)
	} else {
		_, err = s.opts.ACD.SetState(id, ivr.StateOffline)
	}
	if err != nil && !errors.Is(err, ivr.ErrUnknownAgent) {
		s.log.Warn("web: set agent offline", "agent", id, "err", err)
	}
}

func (s *Server) agentByID(id int64) *agentSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agents[id]
}

// Connected reports whether the agent has a softphone page connected now, signalling and
// audio (ICE and DTLS up): the integrator's dialer offers calls to the softphone when true, to
// the agent's SIP phone otherwise.
func (s *Server) Connected(agentID int64) bool {
	as := s.agentByID(agentID)
	return as != nil && as.connected() && as.leg.Connected()
}

// AgentStateChanged tells the agent's page its new state. Wire it to ivr.ACDOptions.OnAgentState,
// which the ACD calls with none of its locks held, in order; it does not block and does not
// call the ACD. A status older (by Seq) than one the page has is ignored.
func (s *Server) AgentStateChanged(st ivr.AgentStatus) {
	if as := s.agentByID(st.ID); as != nil {
		as.applyStatus(st)
	}
}

// Offer rings the agent's page (ivr.AgentDialer): the page shows incoming-call with the
// caller's number and fetches the screen pop. It returns the answered leg, ErrDeclined,
// ErrNotConnected (no page, or its audio is not up) or ErrBusy at once, or ctx's error when
// the ACD withdraws the offer.
func (s *Server) Offer(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	if !s.Connected(o.AgentID) {
		return nil, ErrNotConnected
	}
	return s.agentByID(o.AgentID).offer(ctx, o)
}

// StartCall puts an outbound call the agent placed (POST /calls) on the agent's page, without
// ringing: the returned leg bridges the far end into the agent's PeerConnection once it answers,
// and its Done closes when the agent hangs up. to is the number dialled.
func (s *Server) StartCall(agentID int64, callID, to string) (ivr.AgentLeg, error) {
	as := s.agentByID(agentID)
	if as == nil || !as.connected() {
		return nil, ErrNotConnected
	}
	return as.startCall(callID, to)
}

// Dialer returns the Server as an ivr.AgentDialer.
func (s *Server) Dialer() ivr.AgentDialer { return s }

// Close frees every agent's softphone and closes their WebSockets. It does not close
// Options.WebRTC.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ids := make([]int64, 0, len(s.agents))
	for id := range s.agents {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.endAgent(id)
	}
	s.wg.Wait()
	return nil
}

// PreferSoftphone is the dialer the integrator gives the ACD: agents with the softphone page
// connected are offered calls there, the others through phones (the SIP-phone dialer).
func PreferSoftphone(s *Server, phones ivr.AgentDialer) ivr.AgentDialer {
	return ivr.AgentDialerFunc(func(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
		if s.Connected(o.AgentID) || phones == nil {
			return s.Offer(ctx, o)
		}
		return phones.Offer(ctx, o)
	})
}
