package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // hours.time_zone must load on hosts without a zoneinfo database

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/phone"
	"golang.org/x/crypto/bcrypt"
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	languageRE = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	labelRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	dtmfRE     = regexp.MustCompile(`^[0-9*#]$`)
)

// IsE164 reports whether s is an E.164 number: "+", a country code not starting with 0, at
// most 15 digits in all (ITU-T E.164 §6).
func IsE164(s string) bool { return phone.IsE164(s) }

// lineNumber reports whether an E.164 line number is one the gateway can match calls to (the
// SIP server reads lines with the same normaliser and refuses to start on any other).
func lineNumber(s string) bool {
	n, ok := phone.Normalize(s, "")
	return ok && n == s
}

func validName(s string) bool { return nameRE.MatchString(s) }

// validHost reports whether s is an IP address or a DNS host name (RFC 1123 §2.1).
func validHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !labelRE.MatchString(label) {
			return false
		}
	}
	return true
}

// checker collects problems.
type checker struct{ ps Problems }

func (k *checker) add(path, format string, args ...any) {
	k.ps = append(k.ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Validate returns every problem with c, each with its YAML path and what is allowed. It
// expects the defaults applied (Parse does both).
func (c *Config) Validate() Problems {
	k := &checker{}
	c.validateBasics(k)
	c.validateHTTP(k)
	c.validateSIP(k)
	c.validateRTP(k)
	c.validateWebRTC(k)
	c.validateTrunks(k)
	c.validateLines(k)
	c.validateIVR(k)
	c.validateQueues(k)
	c.validateAccounts(k)
	c.validateTeams(k)
	c.validateStorage(k)
	c.validateTicketing(k)
	c.validateCluster(k)
	return k.ps
}

func (c *Config) validateBasics(k *checker) {
	if c.Node == "" {
		k.add("node", "is required: it names this gateway in logs, metrics and the database")
	}
	if c.ShutdownGrace < 0 {
		k.add("shutdown_grace", "must not be negative, got %s", c.ShutdownGrace)
	}
	if c.Database.HeartbeatInterval < 0 {
		k.add("database.heartbeat_interval", "must be 0 (off) or positive, got %s", c.Database.HeartbeatInterval)
	}
	if hb := c.Database.HeartbeatInterval; hb > 0 && c.Database.NodeLostAfter < 2*hb {
		k.add("database.node_lost_after", "must be at least twice database.heartbeat_interval (%s), or a slow beat looks like a lost node; got %s", hb, c.Database.NodeLostAfter)
	}
	oneOf(k, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(k, "log.format", c.Log.Format, "auto", "json", "text")
	if c.Database.URL == "" {
		k.add("database.url", "is required (or set DATABASE_URL)")
	} else if !validDatabaseURL(c.Database.URL) {
		k.add("database.url", "is not a PostgreSQL URL; write postgres://USER@HOST:PORT/DBNAME or key=value pairs such as \"host=/run/postgresql dbname=switchboard\"")
	}
	checkListen(k, "http.listen", c.HTTP.Listen, false, true)
	if c.Admin.Listen != "" {
		checkListen(k, "admin.listen", c.Admin.Listen, false, false)
		if !c.Admin.AllowPublic && !loopbackListen(c.Admin.Listen) {
			k.add("admin.listen", "%q is not a loopback address: pprof and /metrics would be reachable from the network; use 127.0.0.1:PORT, or set admin.allow_public: true if a firewall protects it", c.Admin.Listen)
		}
	}
}

func validDatabaseURL(s string) bool {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		_, err := url.Parse(s)
		return err == nil
	}
	return strings.Contains(s, "=") && !strings.Contains(s, "://")
}

// checkListen checks a host:port listen address. ipOnly refuses host names; required refuses
// an empty value.
func checkListen(k *checker, path, addr string, ipOnly, required bool) {
	if addr == "" {
		if required {
			k.add(path, "is required: write host:port, e.g. 127.0.0.1:8080")
		}
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		k.add(path, "%q is not host:port, e.g. 127.0.0.1:8080 or [::1]:8080", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		k.add(path, "%q has port %q; a port is a number from 1 to 65535 (0 picks a free one)", addr, port)
	}
	if host == "" {
		return
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return
	}
	if ipOnly {
		k.add(path, "%q must have an IP address, not a host name (or no host for every interface)", addr)
	} else if !validHost(host) {
		k.add(path, "%q has %q, which is not an IP address or host name", addr, host)
	}
}

// unspecified reports whether a listen address binds every interface.
func unspecified(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

func oneOf(k *checker, path, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	k.add(path, "%q is not allowed; use one of %s", value, strings.Join(allowed, ", "))
}

func checkLanguage(k *checker, path, s string) {
	if !languageRE.MatchString(s) {
		k.add(path, "%q is not a language tag; write one such as en, fr or pt-BR", s)
	}
}

func checkE164(k *checker, path, s string) {
	if !IsE164(s) {
		k.add(path, "%q is not an E.164 number; write + then the country code and number, digits only, e.g. +15550100", s)
	}
}

// checkE164Prefix checks a destination prefix: + then 1 to 15 digits.
func checkE164Prefix(k *checker, path, s string) {
	ok := len(s) >= 2 && len(s) <= 16 && s[0] == '+'
	for i := 1; ok && i < len(s); i++ {
		ok = s[i] >= '0' && s[i] <= '9'
	}
	if !ok {
		k.add(path, "%q is not an E.164 prefix; write + then digits, e.g. +1900 or +44", s)
	}
}

func (c *Config) validateSIP(k *checker) {
	s := &c.SIP
	if len(s.Listen) == 0 {
		k.add("sip.listen", "needs at least one listener, e.g. {transport: udp, address: 127.0.0.1:5060}")
	}
	seen := map[string]int{}
	tls := false
	wildcard := ""
	for i, l := range s.Listen {
		p := "sip.listen" + index(i)
		oneOf(k, p+".transport", l.Transport, TransportUDP, TransportTCP, TransportTLS)
		tls = tls || l.Transport == TransportTLS
		if l.Address == "" {
			k.add(p+".address", "is required: write IP:port, e.g. 127.0.0.1:5060")
			continue
		}
		checkListen(k, p+".address", l.Address, true, true)
		// One socket per transport: the SIP server takes one address for each.
		if j, dup := seen[l.Transport]; dup {
			k.add(p, "is a second %s listener (sip.listen[%d] is the first); give one address per transport", l.Transport, j)
		}
		seen[l.Transport] = i
		if unspecified(l.Address) && wildcard == "" {
			wildcard = p + ".address"
		}
	}
	if tls && s.TLS.CertFile == "" {
		k.add("sip.tls.cert_file", "is required when a listener uses tls")
	}
	if tls && s.TLS.KeyFile == "" {
		k.add("sip.tls.key_file", "is required when a listener uses tls")
	}
	if !tls && (s.TLS.CertFile != "") != (s.TLS.KeyFile != "") {
		k.add("sip.tls", "give both cert_file and key_file, or neither")
	}
	if s.ExternalAddress != "" {
		if a, err := netip.ParseAddr(s.ExternalAddress); err != nil || a.IsUnspecified() || a.Zone() != "" {
			k.add("sip.external_address", "%q is not an IP address peers can reach (write it without a port, e.g. 203.0.113.7)", s.ExternalAddress)
		}
	}
	if s.ExternalAddress == "" {
		switch {
		case wildcard != "":
			k.add("sip.external_address", "is required when %s listens on every interface: it is the address peers are told to send to", wildcard)
		case c.RTP.Address != "" && unspecified(c.RTP.Address):
			k.add("sip.external_address", "is required when rtp.address is %s: it is the media address put in SDP", c.RTP.Address)
		}
	}
	if s.MaxCalls < 0 {
		k.add("sip.max_calls", "must not be negative (0 means no limit), got %d", s.MaxCalls)
	}
	if strings.ContainsAny(s.UserAgent, "\r\n") {
		k.add("sip.user_agent", "must be one line")
	}
	if se := s.SessionExpires.D(); se != 0 && se < 90*time.Second {
		k.add("sip.session_expires", "must be 0 (off) or at least 90s, the minimum of RFC 4028 §5, got %s", se)
	}
	r := s.RateLimit
	if r.RequestsPerSecond < 0 {
		k.add("sip.rate_limit.requests_per_second", "must not be negative (0 turns the limit off), got %g", r.RequestsPerSecond)
	}
	if r.RequestsPerSecond > 0 && r.Burst < 1 {
		k.add("sip.rate_limit.burst", "must be at least 1 when requests_per_second is set, got %d", r.Burst)
	}
	for i, p := range s.TrustedFronts {
		if p.Bits() == 0 {
			// Trusting every address lets any client name any source: the ACL would be void.
			k.add("sip.trusted_fronts"+index(i), "%s trusts every address, so anyone could forge the source the gateway believes; list the fronts' own addresses (e.g. 10.0.0.5/32)", p)
		}
	}
	s.Registrar.validate(k)
	if s.AnswerAckTimeout <= 0 {
		k.add("sip.answer_ack_timeout", "must be positive, got %s", s.AnswerAckTimeout)
	}
	cn := s.Connections
	if cn.Max < 0 {
		k.add("sip.connections.max", "must not be negative (0 means no limit), got %d", cn.Max)
	}
	if cn.PerSource < 0 {
		k.add("sip.connections.per_source", "must not be negative (0 means no limit), got %d", cn.PerSource)
	}
	if cn.HandshakeTimeout < 0 {
		k.add("sip.connections.handshake_timeout", "must not be negative (0 means none), got %s", cn.HandshakeTimeout)
	}
	if cn.IdleTimeout < 0 {
		k.add("sip.connections.idle_timeout", "must not be negative (0 means none), got %s", cn.IdleTimeout)
	}
	for i, ua := range s.ScannerUserAgents {
		if strings.TrimSpace(ua) == "" {
			k.add("sip.scanner_user_agents"+index(i), "must not be empty: it would match every request")
		}
	}
	c.validateFeatureCodes(k)
}

// validateFeatureCodes checks sip.feature_codes: keypad codes (sip.ValidFeatureCode), one
// per state, none a line's number (the code is taken before the lines are looked at, so it
// would shadow the line for agents' phones).
func (c *Config) validateFeatureCodes(k *checker) {
	f := c.SIP.FeatureCodes
	codes := []struct{ key, code string }{{"available", f.Available}, {"away", f.Away}, {"offline", f.Offline}, {"pickup", f.Pickup}}
	for i, fc := range codes {
		path := "sip.feature_codes." + fc.key
		if !sip.ValidFeatureCode(fc.code) {
			k.add(path, "%q is not a feature code: write %d to %d of the keypad's keys 0-9, * and #, e.g. *60", fc.code, sip.MinFeatureCode, sip.MaxFeatureCode)
			continue
		}
		for _, prev := range codes[:i] {
			if fc.code == prev.code {
				k.add(path, "%q is already sip.feature_codes.%s; give each its own code", fc.code, prev.key)
			}
		}
		for j, l := range c.Lines {
			if fc.code == l.Number || fc.code == strings.TrimPrefix(l.Number, "+") {
				k.add(path, "%q is the number of lines[%d]: agents' phones dialling it would use the feature instead of calling the line", fc.code, j)
			}
		}
	}
}

func (c *Config) validateRTP(k *checker) {
	r := c.RTP
	if a, err := netip.ParseAddr(r.Address); err != nil {
		k.add("rtp.address", "%q is not an IP address; RTP binds to one, e.g. 127.0.0.1", r.Address)
	} else if a.Zone() != "" {
		k.add("rtp.address", "%q must not have a zone", r.Address)
	}
	okMin := true
	if r.PortMin < 1024 || r.PortMin > 65535 {
		k.add("rtp.port_min", "must be from 1024 to 65535, got %d", r.PortMin)
		okMin = false
	} else if r.PortMin%2 != 0 {
		k.add("rtp.port_min", "must be even: RTP takes even ports and RTCP the odd one above (RFC 3550 §11), got %d", r.PortMin)
	}
	if r.PortMax < 1024 || r.PortMax > 65535 {
		k.add("rtp.port_max", "must be from 1024 to 65535, got %d", r.PortMax)
	} else if okMin && r.PortMax <= r.PortMin {
		k.add("rtp.port_max", "must be above rtp.port_min (%d) so that the range holds at least one RTP/RTCP port pair, got %d", r.PortMin, r.PortMax)
	}
	if r.MediaTimeout <= 0 {
		k.add("rtp.media_timeout", "must be positive, got %s", r.MediaTimeout)
	}
	if r.HoldTimeout < 0 {
		k.add("rtp.hold_timeout", "must not be negative (0 means no limit), got %s", r.HoldTimeout)
	}
}

func checkAuth(k *checker, path string, a *Auth) {
	if a == nil {
		return
	}
	if a.Username == "" {
		k.add(path+".username", "is required when auth is set")
	}
	if a.Password == "" {
		k.add(path+".password", "is required when auth is set")
	}
}

func (c *Config) validateTrunks(k *checker) {
	seen := map[string]int{}
	for i, t := range c.Trunks {
		p := "trunks" + index(i)
		switch {
		case t.Name == "":
			k.add(p+".name", "is required")
		case !validName(t.Name):
			k.add(p+".name", "%q is not a name: use letters, digits, '_' and '-'", t.Name)
		default:
			if j, dup := seen[t.Name]; dup {
				k.add(p+".name", "%q is already the name of trunks[%d]", t.Name, j)
			} else {
				seen[t.Name] = i
			}
		}
		// An omitted region is default_region's, whose problem is reported once, there.
		if !phone.ValidRegion(t.Region) && t.Region != c.Ticketing.DefaultRegion {
			k.add(p+".region", "%q is not a region code; use an ISO 3166 code such as US, GB or FR (default ticketing.default_region)", t.Region)
		}
		checkAuth(k, p+".inbound.auth", t.Inbound.Auth)
		checkAuth(k, p+".outbound.auth", t.Outbound.Auth)
		if a := t.Inbound.Auth; a != nil {
			checkDigestAlgorithms(k, p+".inbound.auth.digest_algorithms", a.DigestAlgorithms)
		}
		if a := t.Outbound.Auth; a != nil && len(a.DigestAlgorithms) > 0 {
			k.add(p+".outbound.auth.digest_algorithms", "applies to inbound.auth only (outbound calls answer the algorithm the carrier challenges with)")
		}
		if t.Outbound.URI != "" {
			if _, err := ParseSIPURI(t.Outbound.URI); err != nil {
				k.add(p+".outbound.uri", "%s", err)
			}
		}
		if t.Outbound.CallerID != "" {
			checkE164(k, p+".outbound.caller_id", t.Outbound.CallerID)
		}
		for j, d := range t.Outbound.Destinations.Allow {
			checkE164Prefix(k, p+".outbound.destinations.allow"+index(j), d)
		}
		for j, d := range t.Outbound.Destinations.Deny {
			checkE164Prefix(k, p+".outbound.destinations.deny"+index(j), d)
		}
		if t.Outbound.AgentLimits.CallsPerMinute < 0 {
			k.add(p+".outbound.agent_limits.calls_per_minute", "must be 0 (no limit) or more")
		}
		if t.Outbound.AgentLimits.MaxCalls < 0 {
			k.add(p+".outbound.agent_limits.max_calls", "must be 0 (no limit) or more")
		}
		if t.Inbound.CallsPerSecond < 0 {
			k.add(p+".inbound.calls_per_second", "must not be negative (0 means no limit), got %g", t.Inbound.CallsPerSecond)
		}
		if t.Inbound.MaxCalls < 0 {
			k.add(p+".inbound.max_calls", "must not be negative (0 means only sip.max_calls), got %d", t.Inbound.MaxCalls)
		}
		if len(t.Inbound.Allow) == 0 && t.Inbound.Auth == nil && t.Outbound.URI == "" {
			k.add(p, "takes no calls and places none: set inbound.allow, inbound.auth or outbound.uri")
		}
	}
}

// checkTarget checks that a target is given when required and names what exists.
func (c *Config) checkTarget(k *checker, path string, t Target, required bool) {
	switch t.Kind {
	case ivr.TargetNone:
		if required {
			k.add(path, "is required; use %s", targetForms)
		}
	case ivr.TargetMenu:
		if _, ok := c.Menu(t.Name); !ok {
			k.add(path, "%q names no IVR menu; %s", t.String(), known("menus under ivr", sortedKeys(c.IVR)))
		}
	case ivr.TargetQueue:
		if _, ok := c.Queue(t.Name); !ok {
			k.add(path, "%q names no queue; %s", t.String(), known("queues", sortedKeys(c.Queues)))
		}
	}
}

func known(what string, names []string) string {
	if len(names) == 0 {
		return "no " + what + " are configured"
	}
	return what + ": " + strings.Join(names, ", ")
}

func (c *Config) validateLines(k *checker) {
	seen := map[string]int{}
	for i := range c.Lines {
		l := &c.Lines[i]
		p := "lines" + index(i)
		switch {
		case l.Number == "":
			k.add(p+".number", "is required: the line's E.164 number, e.g. +15550100")
		case !IsE164(l.Number):
			checkE164(k, p+".number", l.Number)
		case !lineNumber(l.Number):
			k.add(p+".number", "%s is not a number of any country: no such country code, or the wrong length for it", l.Number)
		default:
			if j, dup := seen[l.Number]; dup {
				k.add(p+".number", "%s is already the number of lines[%d]", l.Number, j)
			} else {
				seen[l.Number] = i
			}
		}
		c.checkLineTrunk(k, p+".trunk", l.Trunk, false)
		checkLanguage(k, p+".language", l.Language)
		c.checkTarget(k, p+".target", l.Target, true)
		if h := l.Hours; h != nil {
			c.checkHours(k, p+".hours", h, true)
		}
		c.checkLineSettings(k, p+".settings", l.Settings, true)
	}
}

// checkLineTrunk checks a line's trunk: one of the trunks, or empty when there is exactly one
// (optional: empty is allowed whatever the trunks — a line of the database without a trunk of
// its own takes the file's line's of its number).
func (c *Config) checkLineTrunk(k *checker, path, trunk string, optional bool) {
	var trunkNames []string
	for _, t := range c.Trunks {
		trunkNames = append(trunkNames, t.Name)
	}
	switch {
	case trunk != "":
		if _, ok := c.Trunk(trunk); !ok {
			k.add(path, "%q names no trunk; %s", trunk, known("trunks", trunkNames))
		}
	case optional:
	case len(c.Trunks) == 0:
		k.add(path, "no trunk is configured: add one under trunks so that calls can reach this line")
	case len(c.Trunks) > 1:
		k.add(path, "is required when there are several trunks; use one of %s", strings.Join(trunkNames, ", "))
	}
}

// checkHours checks a line's opening hours (defaults applied) and loads their time zone. With
// queues false a closed_target's queue is not looked up in the file (the database's lines send
// calls to the database's queues, which the roster checks).
func (c *Config) checkHours(k *checker, hp string, h *Hours, queues bool) {
	if loc, err := time.LoadLocation(h.TimeZone); err != nil || h.TimeZone == "Local" {
		k.add(hp+".time_zone", "%q is not an IANA time zone; write one such as Europe/Paris or America/New_York", h.TimeZone)
	} else {
		h.loc = loc
	}
	open := false
	for d := time.Sunday; d <= time.Saturday; d++ {
		open = open || len(h.Weekly.Day(d)) > 0
	}
	if !open {
		k.add(hp+".weekly", "has no opening hours on any day, so the line would always be closed; add ranges such as mon: [\"09:00-17:00\"] or remove hours")
	}
	if !queues && h.ClosedTarget.Kind == ivr.TargetQueue {
		return
	}
	c.checkTarget(k, hp+".closed_target", h.ClosedTarget, true)
}

// checkLineSettings checks a line's ticket settings over the global ones. With accounts false
// a default_assignee is not looked up among the file's accounts (the database's lines: the
// roster checks the users).
func (c *Config) checkLineSettings(k *checker, sp string, s ticketing.LineSettings, accounts bool) {
	c.checkSettingsErrors(k, sp+".", s.Validate(c.Ticketing.Settings))
	if s.DefaultAssignee != nil && accounts {
		c.checkAssignee(k, sp+".default_assignee", *s.DefaultAssignee)
	}
	if s.DefaultAssignee != nil && !accounts && *s.DefaultAssignee != "" && !validEmail(*s.DefaultAssignee) {
		k.add(sp+".default_assignee", "%q is not an email address; write the email of an agent or user, or leave default_assignee empty", *s.DefaultAssignee)
	}
}

func (c *Config) validateIVR(k *checker) {
	for _, name := range sortedKeys(c.IVR) {
		p := "ivr." + name
		if !validName(name) {
			k.add(p, "%q is not a menu name: use letters, digits, '_' and '-'", name)
		}
		m := c.IVR[name]
		if m == nil {
			k.add(p, "is empty: a menu needs at least a no_input target")
			continue
		}
		if !validName(m.Prompt) && (m.Collect == nil || m.Prompt != "") {
			k.add(p+".prompt", "%q is not a prompt name: use letters, digits, '_' and '-' (the file is PROMPTS_DIR/LANGUAGE/NAME.wav)", m.Prompt)
		}
		if m.Language != "" {
			checkLanguage(k, p+".language", m.Language)
		}
		if m.Collect != nil {
			c.validateCollect(k, p, m)
			continue
		}
		if m.Timeout < Duration(time.Second) || m.Timeout > Duration(time.Minute) {
			k.add(p+".timeout", "must be from 1s to 60s, got %s", m.Timeout)
		}
		if m.Retries < 0 || m.Retries > 10 {
			k.add(p+".retries", "must be from 0 to 10, got %d", m.Retries)
		}
		for _, key := range sortedKeys(m.Options) {
			op := p + ".options." + key
			if !dtmfRE.MatchString(key) {
				k.add(op, "%q is not one DTMF key; use 0-9, \"*\" or \"#\" (quote * and #)", key)
			}
			c.checkTarget(k, op, m.Options[key], true)
		}
		c.checkTarget(k, p+".no_input", m.NoInput, true)
		c.checkTarget(k, p+".invalid", m.Invalid, false)
	}
}

// Bounds of a collect step's values.
const (
	maxCollectPattern = 256
	maxCollectTimeout = 2 * time.Minute
	maxDigitTimeout   = 30 * time.Second
)

// validateCollect checks the collect step of the IVR node at p (CF-4) and compiles its pattern.
func (c *Config) validateCollect(k *checker, p string, m *Menu) {
	col := m.Collect
	const own = "a collect step has its own (under collect)"
	if len(m.Options) > 0 {
		k.add(p+".options", "a collect step takes no options: it stores the digits under collect.variable and goes on to collect.next")
	}
	if m.Timeout != 0 {
		k.add(p+".timeout", "%s: use collect.timeout and collect.digit_timeout", own)
	}
	if m.Retries != 0 {
		k.add(p+".retries", "%s: use collect.retries", own)
	}
	if m.NoInput.IsSet() {
		k.add(p+".no_input", "%s: use collect.no_input", own)
	}
	if m.Invalid.IsSet() && m.Invalid != m.NoInput {
		k.add(p+".invalid", "%s: use collect.invalid", own)
	}
	cp := p + ".collect"
	switch {
	case col.Variable == "":
		k.add(cp+".variable", "is required: the name the digits are stored under (the data key custom_data_fields maps), e.g. account")
	case col.Variable == ticketing.DataKeyMenuPath:
		k.add(cp+".variable", "%q is the key of the IVR menu path; name the variable otherwise", col.Variable)
	case !callevent.ValidDataKey(col.Variable):
		k.add(cp+".variable", "%q is not a variable name: 1 to %d characters of letters, digits, '_', '-' and '.'", col.Variable, callevent.MaxDataKey)
	}
	maxOK := col.MaxDigits >= 1 && col.MaxDigits <= ivr.MaxCollectDigits
	if !maxOK {
		k.add(cp+".max_digits", "must be from 1 to %d, got %d", ivr.MaxCollectDigits, col.MaxDigits)
	}
	switch {
	case col.MinDigits < 1 || col.MinDigits > ivr.MaxCollectDigits:
		k.add(cp+".min_digits", "must be from 1 to %d, got %d", ivr.MaxCollectDigits, col.MinDigits)
	case maxOK && col.MinDigits > col.MaxDigits:
		k.add(cp+".min_digits", "is %d, more than max_digits (%d)", col.MinDigits, col.MaxDigits)
	}
	switch col.Terminator {
	case "#", "*", TerminatorNone:
	default:
		k.add(cp+".terminator", "%q is not a terminator key; use \"#\", \"*\" or none (quote # and *)", col.Terminator)
	}
	if col.DigitTimeout < Duration(time.Second) || col.DigitTimeout > Duration(maxDigitTimeout) {
		k.add(cp+".digit_timeout", "must be from 1s to %s, got %s", Duration(maxDigitTimeout), col.DigitTimeout)
	}
	if col.Timeout < Duration(time.Second) || col.Timeout > Duration(maxCollectTimeout) {
		k.add(cp+".timeout", "must be from 1s to %s, got %s", Duration(maxCollectTimeout), col.Timeout)
	}
	if col.Retries < 0 || col.Retries > 10 {
		k.add(cp+".retries", "must be from 0 to 10, got %d", col.Retries)
	}
	col.pattern = nil
	if col.Pattern != "" {
		if len(col.Pattern) > maxCollectPattern {
			k.add(cp+".pattern", "is %d characters long; at most %d", len(col.Pattern), maxCollectPattern)
		} else if re, err := anchoredPattern(col.Pattern); err != nil {
			k.add(cp+".pattern", "%q is not a regular expression (RE2 syntax): %v", col.Pattern, err)
		} else {
			col.pattern = re
		}
	}
	c.checkTarget(k, cp+".next", col.Next, true)
	if !col.NoInput.Continue {
		c.checkTarget(k, cp+".no_input", col.NoInput.Target, false)
	}
	if !col.Invalid.Continue {
		c.checkTarget(k, cp+".invalid", col.Invalid.Target, false)
	}
}

func (c *Config) validateQueues(k *checker) {
	for _, name := range sortedKeys(c.Queues) {
		p := "queues." + name
		if !validName(name) {
			k.add(p, "%q is not a queue name: use letters, digits, '_' and '-'", name)
		}
		q := c.Queues[name]
		if q == nil {
			k.add(p, "is empty: write {} to take every default")
			continue
		}
		if q.RingTimeout <= 0 {
			k.add(p+".ring_timeout", "must be positive, got %s", q.RingTimeout)
		}
		if q.MaxWait <= 0 {
			k.add(p+".max_wait", "must be positive, got %s", q.MaxWait)
		}
		if q.Overflow.Kind == ivr.TargetQueue && q.Overflow.Name == name {
			k.add(p+".overflow", "cannot be the queue itself")
		} else {
			c.checkTarget(k, p+".overflow", q.Overflow, true)
		}
		if q.WrapUp < 0 {
			k.add(p+".wrap_up", "must not be negative, got %s", q.WrapUp)
		}
		if q.MaxMissedOffers < 0 {
			k.add(p+".max_missed_offers", "must not be negative (0 means never), got %d", q.MaxMissedOffers)
		}
		if q.ServiceLevelSeconds < 1 || q.ServiceLevelSeconds > 3600 {
			k.add(p+".service_level_seconds", "must be from 1 to 3600 seconds, got %d", q.ServiceLevelSeconds)
		}
		if q.OutboundLine != "" {
			c.checkOutboundLine(k, p+".outbound_line", q.OutboundLine)
		}
		if cb := q.Callback; cb.Key != "" || cb.Attempts != 0 || cb.RetryDelay != 0 {
			if len(cb.Key) != 1 || !strings.ContainsAny(cb.Key, "0123456789*#") {
				k.add(p+".callback.key", "must be one key of 0-9, * or #, got %q", cb.Key)
			}
			if cb.Attempts < 0 || cb.Attempts > 10 {
				k.add(p+".callback.attempts", "must be from 1 to 10 (0: the default, 3), got %d", cb.Attempts)
			}
			if cb.RetryDelay < 0 || cb.RetryDelay.D() > 24*time.Hour {
				k.add(p+".callback.retry_delay", "must be from 0s (the default, 60s) to 24h, got %s", cb.RetryDelay)
			}
		}
	}
}

// checkOutboundLine checks that number is a line outbound calls can be placed from (OB-7).
func (c *Config) checkOutboundLine(k *checker, path, number string) {
	var dialable []string
	for _, ol := range c.OutboundLines() {
		if ol.Line.Number == number {
			return
		}
		dialable = append(dialable, ol.Line.Number)
	}
	if l, ok := c.Line(number); ok {
		t := l.Trunk
		if t == "" && len(c.Trunks) == 1 {
			t = c.Trunks[0].Name
		}
		k.add(path, "%s is a line whose trunk %q takes no outbound calls (no outbound.uri); %s", number, t, known("lines that can call out", dialable))
		return
	}
	k.add(path, "%q is not the number of a configured line; %s", number, known("lines that can call out", dialable))
}

func (c *Config) validateAccounts(k *checker) {
	seen := map[string]string{}
	check := func(p, email, password, hash string) {
		switch {
		case email == "":
			k.add(p+".email", "is required")
		case !validEmail(email):
			k.add(p+".email", "%q is not an email address", email)
		default:
			e := strings.ToLower(email)
			if first, dup := seen[e]; dup {
				k.add(p+".email", "%q is already the email of %s", email, first)
			} else {
				seen[e] = p
			}
		}
		switch {
		case password == "" && hash == "":
			k.add(p+".password", "password or password_hash is required")
		case password != "" && hash != "":
			k.add(p+".password", "give password or password_hash, not both")
		case hash != "":
			if _, err := bcrypt.Cost([]byte(hash)); err != nil {
				k.add(p+".password_hash", "is not a bcrypt hash (one starts $2a$, $2b$ or $2y$)")
			}
		case len(password) > 72:
			k.add(p+".password", "is longer than 72 bytes, bcrypt's limit")
		}
	}
	sipUsers := map[string]string{}
	for i, a := range c.Agents {
		p := "agents" + index(i)
		check(p, a.Email, a.Password, a.PasswordHash)
		a.validateSIP(k, p, sipUsers)
		in := map[string]bool{}
		for j, q := range a.Queues {
			qp := p + ".queues" + index(j)
			if _, ok := c.Queue(q); !ok {
				k.add(qp, "%q names no queue; %s", q, known("queues", sortedKeys(c.Queues)))
			} else if in[q] {
				k.add(qp, "%q is listed twice", q)
			}
			in[q] = true
		}
	}
	for i, u := range c.Users {
		p := "users" + index(i)
		check(p, u.Email, u.Password, u.PasswordHash)
		oneOf(k, p+".role", u.Role, RoleAdmin, RoleSupervisor, RoleAgent)
	}
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Contains(s, "@")
}

func (c *Config) validateStorage(k *checker) {
	checkLanguage(k, "prompts.default_language", c.Prompts.DefaultLanguage)
	r := c.Recordings
	if r.Dir == "" {
		if r.Enabled {
			k.add("recordings.dir", "is required when recordings.enabled is true")
		} else if where := c.firstVoicemail(); where != "" {
			k.add("recordings.dir", "is required: voicemail messages are stored there, and %s is voicemail", where)
		}
	}
	oneOf(k, "recordings.start", r.Start, RecordFromAnswer, RecordFromCallStart)
	if r.RetentionDays < 0 {
		k.add("recordings.retention_days", "must not be negative (0 keeps recordings), got %d", r.RetentionDays)
	}
	v := c.Voicemail
	if !validName(v.Prompt) {
		k.add("voicemail.prompt", "%q is not a prompt name: use letters, digits, '_' and '-'", v.Prompt)
	}
	if v.MaxLength <= 0 {
		k.add("voicemail.max_length", "must be positive, got %s", v.MaxLength)
	}
	if v.MinLength < 0 || (v.MaxLength > 0 && v.MinLength >= v.MaxLength) {
		k.add("voicemail.min_length", "must be from 0s to below voicemail.max_length (%s), got %s", v.MaxLength, v.MinLength)
	}
}

// firstVoicemail returns the path of the first target that is voicemail, or "".
func (c *Config) firstVoicemail() string {
	for i, l := range c.Lines {
		p := "lines" + index(i)
		if l.Target.Kind == ivr.TargetVoicemail {
			return p + ".target"
		}
		if l.Hours != nil && l.Hours.ClosedTarget.Kind == ivr.TargetVoicemail {
			return p + ".hours.closed_target"
		}
	}
	for _, name := range sortedKeys(c.IVR) {
		m := c.IVR[name]
		if m == nil {
			continue
		}
		for _, key := range sortedKeys(m.Options) {
			if m.Options[key].Kind == ivr.TargetVoicemail {
				return "ivr." + name + ".options." + key
			}
		}
		if m.NoInput.Kind == ivr.TargetVoicemail {
			return "ivr." + name + ".no_input"
		}
		if m.Invalid.Kind == ivr.TargetVoicemail {
			return "ivr." + name + ".invalid"
		}
	}
	for _, name := range sortedKeys(c.Queues) {
		if q := c.Queues[name]; q != nil && q.Overflow.Kind == ivr.TargetVoicemail {
			return "queues." + name + ".overflow"
		}
	}
	return ""
}

func (c *Config) validateTicketing(k *checker) {
	if r := c.Ticketing.DefaultRegion; !phone.ValidRegion(r) {
		k.add("ticketing.default_region", "%q is not a region code; use an ISO 3166 code such as US, GB or FR", r)
	}
	c.checkSettingsErrors(k, "ticketing.settings.", c.Ticketing.Settings.Validate())
	c.checkAssignee(k, "ticketing.settings.default_assignee", c.Ticketing.Settings.DefaultAssignee)
	if r := c.Ticketing.AuditRetention.D(); r != 0 && r < ticketing.MinAuditRetention {
		k.add("ticketing.audit_retention", "must be 0s (keep the audit trail forever) or at least %s, got %s", Duration(ticketing.MinAuditRetention), c.Ticketing.AuditRetention)
	}
}

// checkSettingsErrors adds the ticketing package's own findings under a YAML path prefix.
// A default_assignee that is not an email is left to checkAssignee, which says more.
func (c *Config) checkSettingsErrors(k *checker, prefix string, errs []ticketing.FieldError) {
	for _, e := range errs {
		if e.Field == "default_assignee" {
			continue
		}
		k.add(prefix+e.Field, "%s", e.Message)
	}
}

// checkAssignee requires default_assignee to be an agent or user of this configuration
// (VM-2: voicemail and abandoned tickets never go to a random agent).
func (c *Config) checkAssignee(k *checker, path, email string) {
	if email == "" {
		return
	}
	if _, ok := c.Account(email); !ok {
		k.add(path, "%q is not an agent or user of this configuration; add it under agents or users, or leave default_assignee empty", email)
	}
}
