package sip

// Agents' SIP phones: a registrar (RFC 3261 §10) for REGISTER with digest auth against the
// agents' own credentials, and Server.PhoneDialer (agentphone.go), the ivr.AgentDialer that
// rings the registered phones. Wiring in cmd/switchboard:
//
//	srv, _ := sip.New(sip.Options{ /* … */
//		Agents: func(u string) (sip.AgentAccount, bool) {
//			// u is the digest username: the agent's sip_username, or (no SIP secret of its
//			// own, the dev configuration) its e-mail or the e-mail's local part.
//			a, ok := agentBySIPUsername(u) // from the configuration
//			if !ok { return sip.AgentAccount{}, false }
//			if a.SIPSecretHA1 != nil {     // the phone's own secret, stored as HA1s
//				return sip.AgentAccount{ID: a.UserID, Username: u, HA1MD5: a.MD5, HA1SHA256: a.SHA256}, true
//			}
//			return sip.AgentAccount{ID: a.UserID, Username: u, Password: a.PlainSecret}, true
//		},
//		Registrar: sip.RegistrarOptions{OnChange: func(id int64, on bool) { /* optional: acd.SetState */ }},
//	})
//	phones := srv.PhoneDialer() // into the ACD's dialer next to the softphone's
//
// Bindings live in memory (lost on restart; phones re-register). An offer rings every live
// binding of the agent at once (agentphone.go). Not built: GRUU/outbound (RFC 5626) flows,
// Path headers, and persistence of bindings.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// AgentAccount is an agent's SIP phone credentials, as Options.Agents returns them.
//
// Digest authentication (RFC 7616/8760) needs the secret itself or its HA1: an agent with
// neither (only a bcrypt hash of its web password) cannot register a SIP phone.
type AgentAccount struct {
	ID int64 // the agent's id (the ticketing user id the ACD knows the agent by)
	// Username is the digest username HA1MD5 and HA1SHA256 were computed for; with Password
	// it is informational (the digest username is the one Agents was asked for).
	Username string
	// Password is a plain secret the phone's digest response is checked against (any
	// username Agents accepts, either algorithm).
	Password string
	// HA1MD5 and HA1SHA256 store the phone's secret as digest HA1s in hex, H(username:realm:
	// secret) for Username and the registrar's realm (see HA1), so the secret itself need not
	// be kept; used when Password is empty. A phone answering with an algorithm whose HA1 is
	// missing is refused.
	HA1MD5    string
	HA1SHA256 string
}

// ha1 returns the HA1 of the account for the digest username and algorithm, if it has one.
func (a AgentAccount) ha1(alg, username, realm string) (string, bool) {
	if a.Password != "" {
		h, err := HA1(alg, username, realm, a.Password)
		return h, err == nil
	}
	if username != a.Username {
		return "", false
	}
	switch {
	case strings.EqualFold(alg, DigestMD5) && a.HA1MD5 != "":
		return strings.ToLower(a.HA1MD5), true
	case strings.EqualFold(alg, DigestSHA256) && a.HA1SHA256 != "":
		return strings.ToLower(a.HA1SHA256), true
	}
	return "", false
}

// RegistrarOptions tunes the REGISTER handling (RFC 3261 §10). Zero values take the defaults.
type RegistrarOptions struct {
	// Realm of the digest challenge. Default "switchboard".
	Realm string
	// DefaultExpires applies when the REGISTER names no expiry. Default 3600 s.
	DefaultExpires time.Duration
	// MinExpires is the shortest binding accepted; shorter gets 423 with Min-Expires.
	// Default 60 s.
	MinExpires time.Duration
	// MaxExpires caps a binding's lifetime (longer requests are shortened). Default 7200 s.
	MaxExpires time.Duration
	// DigestAlgorithms are the algorithms offered in the challenge, one WWW-Authenticate each,
	// in order of preference (RFC 8760 §2.4). Default SHA-256 then MD5; set MD5 alone for
	// phones that read only the first challenge and know only MD5.
	DigestAlgorithms []string
	// PhoneNetworks lists networks whose addresses a Contact may name even when the REGISTER
	// came from another address, and INVITEs then go to the Contact itself (e.g. a VPN or LAN
	// of desk phones reached through a router that is not the phones' NAT). Outside them a
	// Contact must be the REGISTER's source address, or a private address (a phone behind NAT,
	// whose INVITEs go to the source address); see contact.go. Default none.
	PhoneNetworks []netip.Prefix
	// MaxBindingsPerAgent caps one agent's live bindings; a REGISTER that would add more gets
	// 403. DefaultMaxBindingsPerAgent (5); 0 means no limit.
	MaxBindingsPerAgent int
	// MaxContactsPerRegister caps the Contact headers of one REGISTER; more get 403.
	// DefaultMaxContactsPerRegister (5); 0 means no limit.
	MaxContactsPerRegister int
	// AuthFailuresFree is how many digest failures a source IP or an agent account may have
	// before REGISTER backoff starts (backoff.go). DefaultAuthFailuresFree (3); 0 means none:
	// the backoff starts at the first failure.
	AuthFailuresFree int
	// AuthBackoffBase is the first backoff after the free failures, doubled with each further
	// failure up to AuthBackoffMax. While backed off a REGISTER gets 503 with Retry-After and
	// its password is not checked. DefaultAuthBackoffBase (1 s); 0 turns the backoff off.
	AuthBackoffBase time.Duration
	// AuthBackoffMax caps the backoff. 0 takes DefaultAuthBackoffMax (5 min).
	AuthBackoffMax time.Duration
	// OnChange, when set, is called when an agent's first binding appears (registered true) or
	// its last one goes away by removal or expiry (false), e.g. to set the ACD state. It runs
	// outside the registrar's lock and must not block.
	OnChange func(agentID int64, registered bool)
}

// Defaults of RegistrarOptions.
const (
	DefaultMaxBindingsPerAgent    = 5
	DefaultMaxContactsPerRegister = 5
	DefaultAuthFailuresFree       = 3
	DefaultAuthBackoffBase        = time.Second
	DefaultAuthBackoffMax         = 5 * time.Minute
)

// DefaultRegistrarOptions returns the registrar's defaults, the caps and the backoff that
// zero turns off included.
func DefaultRegistrarOptions() RegistrarOptions {
	return RegistrarOptions{MaxBindingsPerAgent: DefaultMaxBindingsPerAgent, MaxContactsPerRegister: DefaultMaxContactsPerRegister,
		AuthFailuresFree: DefaultAuthFailuresFree, AuthBackoffBase: DefaultAuthBackoffBase, AuthBackoffMax: DefaultAuthBackoffMax,
		DigestAlgorithms: []string{DigestSHA256, DigestMD5}}
}

// binding is one registered contact of an agent (RFC 3261 §10.3).
type binding struct {
	agentID   int64
	contact   sip.Uri
	key       string         // contact URI string: the binding's identity
	source    netip.AddrPort // where the REGISTER came from (NAT: where we send)
	asIs      bool           // the contact is in PhoneNetworks: send to it, not to source
	transport string         // transport of the REGISTER ("UDP", "TCP", "TLS")
	callID    string
	cseq      uint32
	expires   time.Time
	updated   time.Time
	timer     *time.Timer
}

// Binding is a snapshot of a registered contact, for status pages and tests.
type Binding struct {
	AgentID   int64
	Contact   string
	Source    netip.AddrPort
	Transport string
	Expires   time.Time
}

// registrar keeps agents' bindings in memory; they are lost on restart (phones re-register).
type registrar struct {
	s     *Server
	opts  RegistrarOptions
	gauge prometheus.Gauge
	// trunkAddrs are the trunks' addresses no Contact may name (port 0: any port).
	trunkAddrs []netip.AddrPort
	nonces     nonceUses
	// backoff slows digest guessing per source IP ("ip:") and per agent ("agent:"); nil
	// when turned off.
	backoff *authBackoff

	mu       sync.Mutex
	bindings map[int64]map[string]*binding // agent id → contact key → binding
	closed   bool
}

func newRegistrar(s *Server, opts RegistrarOptions, reg prometheus.Registerer) (*registrar, error) {
	if opts.Realm == "" {
		opts.Realm = "switchboard"
	}
	if opts.DefaultExpires <= 0 {
		opts.DefaultExpires = 3600 * time.Second
	}
	if opts.MinExpires <= 0 {
		opts.MinExpires = 60 * time.Second
	}
	if opts.MaxExpires <= 0 {
		opts.MaxExpires = 7200 * time.Second
	}
	if len(opts.DigestAlgorithms) == 0 {
		opts.DigestAlgorithms = []string{DigestSHA256, DigestMD5}
	}
	opts.DigestAlgorithms = slices.Clone(opts.DigestAlgorithms) // normalised below: not the caller's
	for i, a := range opts.DigestAlgorithms {
		switch {
		case strings.EqualFold(a, DigestMD5):
			opts.DigestAlgorithms[i] = DigestMD5
		case strings.EqualFold(a, DigestSHA256):
			opts.DigestAlgorithms[i] = DigestSHA256
		default:
			return nil, fmt.Errorf("sip: registrar: digest algorithm %q: want %s or %s", a, DigestSHA256, DigestMD5)
		}
	}
	// Zero turns the caps and the backoff off (Options); only the backoff's cap has a default.
	opts.AuthFailuresFree = max(opts.AuthFailuresFree, 0)
	if opts.AuthBackoffMax <= 0 {
		opts.AuthBackoffMax = DefaultAuthBackoffMax
	}
	if opts.MaxExpires < opts.MinExpires {
		return nil, fmt.Errorf("sip: registrar: max expires %s below min expires %s", opts.MaxExpires, opts.MinExpires)
	}
	r := &registrar{
		s:    s,
		opts: opts,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_sip_registrations", Help: "Live REGISTER bindings of agents' SIP phones.",
		}),
		bindings:   map[int64]map[string]*binding{},
		trunkAddrs: trunkAddresses(s.opts.Trunks),
	}
	if opts.AuthBackoffBase > 0 {
		r.backoff = newAuthBackoff(opts.AuthFailuresFree, opts.AuthBackoffBase, max(opts.AuthBackoffMax, opts.AuthBackoffBase), s.now)
	}
	if reg != nil {
		if err := reg.Register(r.gauge); err != nil {
			return nil, fmt.Errorf("sip: registrar metrics: %w", err)
		}
	}
	return r, nil
}

// Registrations returns the live bindings of agentID, most recently refreshed first (all agents
// when agentID is 0).
func (s *Server) Registrations(agentID int64) []Binding {
	r := s.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Binding
	for id, m := range r.bindings {
		if agentID != 0 && id != agentID {
			continue
		}
		for _, b := range m {
			out = append(out, Binding{AgentID: b.agentID, Contact: b.key, Source: b.source, Transport: b.transport, Expires: b.expires})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Expires.After(out[j].Expires) })
	return out
}

// lookupAll returns the agent's live bindings, most recently refreshed first: the phones an
// offer rings at once (agentphone.go).
func (r *registrar) lookupAll(agentID int64) []binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.s.now()
	var out []binding
	for _, b := range r.bindings[agentID] {
		if b.expires.After(now) {
			out = append(out, *b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].updated.After(out[j].updated) })
	return out
}

// phoneAt reports whether src is where a live binding's phone sends from or is reached at
// (its REGISTER's source or its Contact): a request from there comes from an agent's phone.
func (r *registrar) phoneAt(src netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.s.now()
	for _, m := range r.bindings {
		for _, b := range m {
			if !b.expires.After(now) {
				continue
			}
			if b.source == src {
				return true
			}
			if ap, ok := contactAddr(b.contact); ok && ap == src {
				return true
			}
		}
	}
	return false
}

// close drops every binding and stops their timers (Server.Close).
func (r *registrar) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for id, m := range r.bindings {
		for _, b := range m {
			b.timer.Stop()
		}
		delete(r.bindings, id)
	}
	r.gauge.Set(0)
}

// countLocked returns the number of bindings; r.mu must be held.
func (r *registrar) countLocked() int {
	n := 0
	for _, m := range r.bindings {
		n += len(m)
	}
	return n
}

// expire removes b when its timer fires, unless it was refreshed meanwhile.
func (r *registrar) expire(b *binding) {
	r.mu.Lock()
	m := r.bindings[b.agentID]
	if r.closed || m[b.key] != b || b.expires.After(r.s.now()) {
		r.mu.Unlock()
		return
	}
	delete(m, b.key)
	gone := len(m) == 0
	if gone {
		delete(r.bindings, b.agentID)
	}
	r.gauge.Set(float64(r.countLocked()))
	r.mu.Unlock()
	r.s.log.Info("sip: registration expired", "agent_id", b.agentID, "contact", logValue(b.key))
	if gone && r.opts.OnChange != nil {
		r.opts.OnChange(b.agentID, false)
	}
}

// challenge answers 401 with a fresh nonce bound to the request's source (digest.go), one
// WWW-Authenticate per algorithm in order of preference (RFC 8760 §2.4), stale=true when the
// client's nonce merely expired or was issued to another address.
func (r *registrar) challenge(req *sip.Request, tx sip.ServerTransaction, src netip.Addr, stale bool) {
	nonce := r.s.boundNonce(src, string(req.Method))
	hs := make([]sip.Header, 0, len(r.opts.DigestAlgorithms))
	for _, alg := range r.opts.DigestAlgorithms {
		v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=%s, qop="auth"`, r.opts.Realm, nonce, strings.ToUpper(alg))
		if stale {
			v += ", stale=true"
		}
		hs = append(hs, sip.NewHeader("WWW-Authenticate", v))
	}
	r.s.reply(req, tx, 401, "Unauthorized", hs...)
}

// offered reports whether alg (empty: MD5) is one of the algorithms we challenge with.
func (r *registrar) offered(alg string) bool {
	if alg == "" {
		alg = DigestMD5
	}
	return offers(r.opts.DigestAlgorithms, alg)
}

// handleRegister processes a REGISTER (RFC 3261 §10.3): digest authentication against the
// agent's credentials, then adding, refreshing and removing the agent's bindings.
func (s *Server) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	r := s.reg
	if s.opts.Agents == nil {
		s.reply(req, tx, 405, "Method Not Allowed", sip.NewHeader("Allow", allowMethods))
		return
	}
	// §10.3 step 6: the authenticated user must be allowed to register the To AOR: its user
	// part must name the same agent (or be the digest username itself).
	acct, src, ok := r.authenticate(req, tx, func(creds digestCreds, acct AgentAccount, fail func()) bool {
		if to := req.To().Address.User; to != "" && to != creds["username"] {
			other, found := s.opts.Agents(to)
			if !found || other.ID != acct.ID {
				s.m.securityEvent.WithLabelValues(secAuthFailure).Inc()
				fail()
				s.reply(req, tx, 403, "Forbidden (To does not match the credentials)")
				return false
			}
		}
		return true
	})
	if !ok {
		return
	}

	changes, wildcard, err := parseRegisterContacts(req, r.opts.DefaultExpires)
	if err != nil {
		s.reply(req, tx, 400, "Bad Request ("+err.Error()+")")
		return
	}
	// §10.3 step 7: too brief an interval rejects the whole request with Min-Expires.
	for _, c := range changes {
		if c.expires > 0 && c.expires < r.opts.MinExpires {
			s.reply(req, tx, 423, "Interval Too Brief",
				sip.NewHeader("Min-Expires", strconv.Itoa(int(r.opts.MinExpires/time.Second))))
			return
		}
	}

	// Contact policy (contact.go): the cap on contacts per REGISTER, then each contact bound
	// (not those removed) must be an address the sender may bind. RFC 3261 §10.3 step 4: a
	// binding the registrar does not authorise is refused with 403; nothing of the request
	// is applied.
	if max := r.opts.MaxContactsPerRegister; max > 0 && len(changes) > max {
		s.security(secContactRejected, req, "too many contacts in one REGISTER")
		s.reply(req, tx, 403, "Forbidden (too many contacts)")
		return
	}
	asIs := make([]bool, len(changes))
	for i, c := range changes {
		if c.expires == 0 {
			continue
		}
		if err := r.checkContact(c.contact, src.Addr()); err != nil {
			s.security(secContactRejected, req, err.Error())
			s.reply(req, tx, 403, "Forbidden ("+err.Error()+")")
			return
		}
		if ap, ok := contactAddr(c.contact); ok && ap.Addr() != src.Addr() && inPrefixes(r.opts.PhoneNetworks, ap.Addr()) {
			asIs[i] = true
		}
	}
	callID := req.CallID().Value()
	cseq := req.CSeq().SeqNo
	now := s.now()

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		s.reply(req, tx, 503, "Service Unavailable")
		return
	}
	m := r.bindings[acct.ID]
	had := len(m) > 0
	if m == nil {
		m = map[string]*binding{}
		r.bindings[acct.ID] = m
	}
	// §10.3 step 7: a binding refreshed with the same Call-ID must carry a higher CSeq.
	for _, c := range changes {
		if b := m[c.contact.String()]; b != nil && b.callID == callID && cseq <= b.cseq {
			r.mu.Unlock()
			s.reply(req, tx, 500, "Server Internal Error (CSeq out of order)", sip.NewHeader("Retry-After", "1"))
			return
		}
	}
	// The per-agent cap counts the bindings this REGISTER would leave; refreshing or removing
	// is always allowed, only adding beyond the cap is refused (as Asterisk's max_contacts).
	if max := r.opts.MaxBindingsPerAgent; max > 0 && !wildcard {
		after := map[string]bool{}
		for k := range m {
			after[k] = true
		}
		added := false
		for _, c := range changes {
			k := c.contact.String()
			if c.expires == 0 {
				delete(after, k)
			} else if !after[k] {
				after[k], added = true, true
			}
		}
		if added && len(after) > max {
			if len(m) == 0 {
				delete(r.bindings, acct.ID)
			}
			r.mu.Unlock()
			s.security(secContactRejected, req, "too many bindings for the agent")
			s.reply(req, tx, 403, "Forbidden (too many registered contacts)")
			return
		}
	}
	if wildcard {
		for k, b := range m {
			b.timer.Stop()
			delete(m, k)
		}
	}
	for i, c := range changes {
		key := c.contact.String()
		b := m[key]
		if c.expires == 0 {
			if b != nil {
				b.timer.Stop()
				delete(m, key)
			}
			continue
		}
		exp := min(c.expires, r.opts.MaxExpires)
		if b == nil {
			b = &binding{agentID: acct.ID, contact: c.contact, key: key}
			bb := b
			b.timer = time.AfterFunc(exp, func() { r.expire(bb) })
			m[key] = b
		} else {
			b.timer.Reset(exp)
		}
		b.source, b.transport, b.asIs = src, strings.ToUpper(req.Transport()), asIs[i]
		b.callID, b.cseq = callID, cseq
		b.expires, b.updated = now.Add(exp), now
	}
	has := len(m) > 0
	if !has {
		delete(r.bindings, acct.ID)
	}
	// §10.3 step 8: the 200 lists every current binding with its remaining time.
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b := m[k]
		ch := &sip.ContactHeader{Address: *b.contact.Clone(), Params: sip.NewParams()}
		left := max(int(b.expires.Sub(now).Round(time.Second)/time.Second), 1)
		ch.Params.Add("expires", strconv.Itoa(left))
		res.AppendHeader(ch)
	}
	r.gauge.Set(float64(r.countLocked()))
	r.mu.Unlock()

	// The hook runs before the 200 goes out, so whoever sees the 200 sees the agent's new state.
	if r.opts.OnChange != nil && had != has {
		r.opts.OnChange(acct.ID, has)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	if err := s.respond(tx, res); err != nil {
		s.log.Debug("sip: respond to REGISTER", "error", err)
	}
	s.log.Info("sip: REGISTER", "agent_id", acct.ID, "contacts", len(keys), "source", r.s.source(req).String())
}

// verify checks the digest credentials of a REGISTER from src against acct: our realm, a
// nonce issued to src for REGISTER, an algorithm we offered for which the account has a secret,
// and the response (qop=auth; without qop only for MD5, RFC 2069 compatibility).
func (r *registrar) verify(c digestCreds, acct AgentAccount, src netip.Addr, method string) bool {
	if c == nil || c["username"] == "" || c["realm"] != r.opts.Realm || !r.s.boundNonceOK(c["nonce"], src, method) {
		return false
	}
	alg := c["algorithm"]
	h := digestHash(alg)
	if h == nil || !r.offered(alg) {
		return false
	}
	if alg == "" {
		alg = DigestMD5
	}
	ha1, ok := acct.ha1(alg, c["username"], r.opts.Realm)
	if !ok {
		return false
	}
	return checkDigestResponse(c, method, ha1, h, strings.EqualFold(alg, DigestMD5))
}

// backedOff answers a REGISTER whose key is backed off with 503 and Retry-After (RFC 3261
// §21.5.4, §20.33: a phone that mistyped its secret retries later instead of hammering; as
// Kamailio's ratelimit and pike answer) and counts auth_backoff; it reports whether it did.
// A source holding a live binding of agentID (of any agent when 0) is never backed off.
func (r *registrar) backedOff(req *sip.Request, tx sip.ServerTransaction, key string, src netip.Addr, agentID int64) bool {
	if r.backoff == nil {
		return false
	}
	d := r.backoff.blocked(key)
	if d <= 0 || r.hasBindingFrom(src, agentID) {
		return false
	}
	r.s.m.securityEvent.WithLabelValues(secAuthBackoff).Inc()
	secs := int((d + time.Second - 1) / time.Second)
	r.s.reply(req, tx, 503, "Service Unavailable (too many failed authentications)", sip.NewHeader("Retry-After", strconv.Itoa(secs)))
	return true
}

// failed records a digest failure of the source (and of the agent, when known); when that
// starts a backoff it logs one security event line (fail2ban matches it), not one per
// refused request.
func (r *registrar) failed(req *sip.Request, keys ...string) {
	if r.backoff == nil {
		return
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		if d := r.backoff.fail(k); d > 0 {
			r.s.log.Warn("sip: security event", "security_event", secAuthBackoff, "source", r.s.source(req).String(),
				"method", methodLabel(string(req.Method)), "key", k, "detail", "REGISTER digest failures: backed off for "+d.String())
		}
	}
}

// hasBindingFrom reports whether src holds a live binding of agentID (of any agent when 0).
func (r *registrar) hasBindingFrom(src netip.Addr, agentID int64) bool {
	now := r.s.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, m := range r.bindings {
		if agentID != 0 && id != agentID {
			continue
		}
		for _, b := range m {
			if b.source.Addr() == src && b.expires.After(now) {
				return true
			}
		}
	}
	return false
}

// contactChange is one Contact of a REGISTER: bind (or refresh) it for expires, or remove it
// when expires is 0.
type contactChange struct {
	contact sip.Uri
	expires time.Duration
}

// parseRegisterContacts reads a REGISTER's Contact and Expires headers (RFC 3261 §10.2.1,
// §10.3 step 6): each contact's expires parameter, else the Expires header, else def. It
// reports the wildcard "*", which is only valid alone and with Expires: 0. Errors name what is
// malformed (the 400's reason).
func parseRegisterContacts(req *sip.Request, def time.Duration) ([]contactChange, bool, error) {
	hdrExp, hasHdr := def, false
	if eh := req.GetHeader("Expires"); eh != nil {
		n, err := strconv.ParseUint(strings.TrimSpace(eh.Value()), 10, 32)
		if err != nil {
			return nil, false, errors.New("Expires")
		}
		hdrExp, hasHdr = time.Duration(n)*time.Second, true
	}
	var changes []contactChange
	wildcard := false
	for _, hh := range req.GetHeaders("Contact") {
		ch, ok := hh.(*sip.ContactHeader)
		if !ok {
			return nil, false, errors.New("Contact")
		}
		if ch.Address.Wildcard {
			wildcard = true
			continue
		}
		exp := hdrExp
		if v, ok := ch.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return nil, false, errors.New("Contact expires")
			}
			exp = time.Duration(n) * time.Second
		}
		if sch := strings.ToLower(ch.Address.Scheme); sch != "sip" && sch != "sips" || ch.Address.Host == "" {
			return nil, false, errors.New("Contact must be a sip URI")
		}
		changes = append(changes, contactChange{contact: *ch.Address.Clone(), expires: exp})
	}
	if wildcard && (len(changes) > 0 || !hasHdr || hdrExp != 0) {
		return nil, false, errors.New("Contact: * needs Expires: 0 and no other contact")
	}
	return changes, wildcard, nil
}

// dest returns where requests to the binding's phone are sent (host:port), the Request-URI
// staying the Contact URI; "" means the Contact's own address. That is used only when the
// Contact's IP is the address the REGISTER came from, or lies in PhoneNetworks; any other
// Contact the registrar accepted is a phone behind NAT that wrote its LAN address, and the
// REGISTER's source address is used instead, as the NAT binding that REGISTER opened leads
// back to the phone (never the Contact: contact.go). Over TCP and TLS the source address is
// used too, so the phone's own connection is reused (a phone rarely listens on its Contact port
// for stream transports); that path is not covered by a test yet.
func (b binding) dest() string {
	if !b.source.IsValid() {
		return ""
	}
	if b.transport == "TCP" || b.transport == "TLS" {
		return b.source.String()
	}
	if ap, ok := contactAddr(b.contact); ok && (ap.Addr() == b.source.Addr() || b.asIs) {
		return ""
	}
	return b.source.String()
}

// authenticate checks a request of an agent's phone (REGISTER, or an INVITE to a feature
// code) by digest against the agent's credentials (RFC 3261 §22, RFC 7616): without
// credentials it challenges (401), with wrong ones it refuses (403) and counts the failure
// toward the source's and the account's backoff (backoff.go). check, when set, runs once the
// password is verified and before the nonce count is spent; it answers and returns false to
// refuse (fail counts a failure). ok is false when the request was answered here.
func (r *registrar) authenticate(req *sip.Request, tx sip.ServerTransaction,
	check func(creds digestCreds, acct AgentAccount, fail func()) bool) (acct AgentAccount, src netip.AddrPort, ok bool) {
	s := r.s
	method := string(req.Method)
	// The real source (a trusted front's client, front.go): backoff, nonce binding and the
	// binding's address are the phone's, not the front's.
	src = s.source(req)
	// Brute force: a source backed off after digest failures gets no challenge, and its
	// password is not checked, until the backoff ends (backoff.go). A source that holds a live
	// binding is exempt, so a spoofed failure cannot lock a registered phone out.
	ipKey := "ip:" + src.Addr().String()
	if r.backedOff(req, tx, ipKey, src.Addr(), 0) {
		return AgentAccount{}, src, false
	}
	// §10.3 step 5 and §22: authenticate first. No credentials: challenge.
	h := req.GetHeader("Authorization")
	if h == nil {
		r.challenge(req, tx, src.Addr(), false)
		return AgentAccount{}, src, false
	}
	creds := parseDigest(h.Value())
	if creds != nil && creds["nonce"] != "" && creds["realm"] == r.opts.Realm &&
		!s.boundNonceOK(creds["nonce"], src.Addr(), method) {
		// An expired nonce, or one issued to another address (a NAT binding that moved, or a
		// nonce fetched elsewhere for a spoofed request), is no proof of a wrong password:
		// challenge again, at this address.
		r.challenge(req, tx, src.Addr(), true)
		return AgentAccount{}, src, false
	}
	if creds != nil && creds["uri"] != "" && !sameURI(creds["uri"], req.Recipient) {
		// RFC 2617 §3.2.2.5, RFC 7616 §3.4.6: a response computed for another URI.
		s.security(secMalformed, req, "digest uri "+logValue(creds["uri"])+" is not the Request-URI")
		s.reply(req, tx, 400, "Bad Request (digest uri does not match the Request-URI)")
		return AgentAccount{}, src, false
	}
	ok = false
	if creds != nil && creds["username"] != "" {
		acct, ok = s.opts.Agents(creds["username"])
	}
	agentKey := ""
	if ok {
		agentKey = "agent:" + strconv.FormatInt(acct.ID, 10)
		if r.backedOff(req, tx, agentKey, src.Addr(), acct.ID) {
			return AgentAccount{}, src, false
		}
	}
	if !ok || !r.verify(creds, acct, src.Addr(), method) {
		s.m.securityEvent.WithLabelValues(secAuthFailure).Inc()
		s.log.Info("sip: "+method+" refused", "username", logValue(creds["username"]), "source", r.s.source(req).String())
		r.failed(req, ipKey, agentKey)
		s.reply(req, tx, 403, "Forbidden")
		return AgentAccount{}, src, false
	}
	if check != nil && !check(creds, acct, func() { r.failed(req, ipKey, agentKey) }) {
		return AgentAccount{}, src, false
	}
	// RFC 7616 §3.4: the nonce count must grow; a repeated one is a replayed request.
	switch r.nonces.use(creds["nonce"], creds["qop"] != "", creds["nc"], s.now()) {
	case nonceReplay:
		s.m.securityEvent.WithLabelValues(secAuthFailure).Inc()
		s.log.Info("sip: "+method+" refused", "username", logValue(creds["username"]), "source", r.s.source(req).String(), "reason", "replayed nonce count")
		r.failed(req, ipKey, agentKey)
		s.reply(req, tx, 403, "Forbidden (replayed nonce count)")
		return AgentAccount{}, src, false
	case nonceStale:
		r.challenge(req, tx, src.Addr(), true)
		return AgentAccount{}, src, false
	}
	if r.backoff != nil {
		r.backoff.reset(ipKey)
		r.backoff.reset(agentKey)
	}
	return acct, src, true
}
