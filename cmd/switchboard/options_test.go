package main

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// optionKnob is one configuration key that reaches a package's options.
type optionKnob struct {
	section, key string // docs/configuration.md section (`sip`, `rtp` …) and key in its table
	zero         string // the YAML that sets it to 0 ("" when the configuration refuses 0)
	// get reads the knob where the package receives it.
	get func(cfg *config.Config, o sip.Options) any
	def any // the package's default
}

// The configuration's keys and the options they map to, with the package's default: for each,
// an absent key gives the package's default, an explicit 0 gives the package's 0 — which in
// every such option means off (sip.Options, media.EndpointOptions, ivr.VoicemailOptions say
// so, and sip's TestOptionsZeroTurnsOffAndDefaultOptionsKeepsTheDefaults proves it) — and
// docs/configuration.md shows the same default. Before, `max_calls: 0` was translated to -1 by
// hand and the configuration's hold_timeout default (1h) differed from media's (2h).
func optionKnobs() []optionKnob {
	so := func(f func(o sip.Options) any) func(*config.Config, sip.Options) any {
		return func(_ *config.Config, o sip.Options) any { return f(o) }
	}
	return []optionKnob{
		{"sip", "max_calls", "sip: {max_calls: 0}", so(func(o sip.Options) any { return o.MaxCalls }), sip.DefaultMaxCalls},
		{"sip", "session_expires", "sip: {session_expires: 0}", so(func(o sip.Options) any { return o.SessionExpires }), sip.DefaultSessionExpires},
		{"sip", "user_agent", "", so(func(o sip.Options) any { return o.UserAgent }), sip.DefaultUserAgent},
		{"sip", "rate_limit.requests_per_second", "sip: {rate_limit: {requests_per_second: 0}}",
			so(func(o sip.Options) any { return o.RateLimit.PerSecond }), float64(sip.DefaultRequestsPerSecond)},
		{"sip", "rate_limit.burst", "", so(func(o sip.Options) any { return o.RateLimit.Burst }), sip.DefaultBurst},
		{"sip", "answer_ack_timeout", "", so(func(o sip.Options) any { return o.AnswerAckTimeout }), sip.DefaultAnswerAckTimeout},
		{"sip", "connections.max", "sip: {connections: {max: 0}}", so(func(o sip.Options) any { return o.Conn.Max }), sip.DefaultMaxConns},
		{"sip", "connections.per_source", "sip: {connections: {per_source: 0}}", so(func(o sip.Options) any { return o.Conn.PerSource }), sip.DefaultConnsPerSource},
		{"sip", "connections.handshake_timeout", "sip: {connections: {handshake_timeout: 0}}",
			so(func(o sip.Options) any { return o.Conn.HandshakeTimeout }), sip.DefaultHandshakeTimeout},
		{"sip", "connections.idle_timeout", "sip: {connections: {idle_timeout: 0}}",
			so(func(o sip.Options) any { return o.Conn.IdleTimeout }), sip.DefaultIdleTimeout},
		{"sip", "scanner_user_agents", "sip: {scanner_user_agents: []}",
			so(func(o sip.Options) any { return o.ScannerUserAgents }), sip.DefaultScannerUserAgents()},
		{"sip", "registrar.max_bindings_per_agent", "sip: {registrar: {max_bindings_per_agent: 0}}",
			so(func(o sip.Options) any { return o.Registrar.MaxBindingsPerAgent }), sip.DefaultMaxBindingsPerAgent},
		{"sip", "registrar.max_contacts_per_register", "sip: {registrar: {max_contacts_per_register: 0}}",
			so(func(o sip.Options) any { return o.Registrar.MaxContactsPerRegister }), sip.DefaultMaxContactsPerRegister},
		{"sip", "registrar.auth_failures_free", "sip: {registrar: {auth_failures_free: 0}}",
			so(func(o sip.Options) any { return o.Registrar.AuthFailuresFree }), sip.DefaultAuthFailuresFree},
		{"sip", "registrar.auth_backoff", "sip: {registrar: {auth_backoff: 0}}",
			so(func(o sip.Options) any { return o.Registrar.AuthBackoffBase }), sip.DefaultAuthBackoffBase},
		{"sip", "registrar.auth_backoff_max", "", so(func(o sip.Options) any { return o.Registrar.AuthBackoffMax }), sip.DefaultAuthBackoffMax},
		{"rtp", "media_timeout", "", so(func(o sip.Options) any { return o.MediaTimeout }), media.DefaultMediaTimeout},
		{"rtp", "hold_timeout", "rtp: {hold_timeout: 0}", so(func(o sip.Options) any { return o.HoldTimeout }), media.DefaultHoldTimeout},
		// ivr's options take these straight from the configuration (telephony.go).
		{"voicemail", "max_length", "", func(c *config.Config, _ sip.Options) any { return c.Voicemail.MaxLength.D() }, ivr.DefaultMaxLength},
		{"voicemail", "min_length", "voicemail: {min_length: 0s}", func(c *config.Config, _ sip.Options) any { return c.Voicemail.MinLength.D() }, ivr.DefaultMinLength},
		{"queues", "ring_timeout", "", func(c *config.Config, _ sip.Options) any { return c.Queues["q"].RingTimeout.D() }, ivr.DefaultRingTimeout},
		{"queues", "max_wait", "", func(c *config.Config, _ sip.Options) any { return c.Queues["q"].MaxWait.D() }, ivr.DefaultMaxWait},
		{"ivr", "timeout", "", func(c *config.Config, _ sip.Options) any { return c.IVR["m"].Timeout.D() }, ivr.DefaultMenuTimeout},
		{"ivr.NAME.collect", "timeout", "", func(c *config.Config, _ sip.Options) any { return c.IVR["k"].Collect.Timeout.D() }, ivr.DefaultCollectTimeout},
		{"ivr.NAME.collect", "digit_timeout", "", func(c *config.Config, _ sip.Options) any { return c.IVR["k"].Collect.DigitTimeout.D() }, ivr.DefaultCollectDigitTimeout},
		{"ivr.NAME.collect", "max_digits", "", func(c *config.Config, _ sip.Options) any { return c.IVR["k"].Collect.MaxDigits }, ivr.MaxCollectDigits},
		// ticketing's, which take them straight from the configuration (ticketing.go).
		{"http", "auth_backoff.failures", "", func(c *config.Config, _ sip.Options) any { return c.HTTP.AuthBackoff.Failures }, ticketing.DefaultAuthFailures},
		{"http", "auth_backoff.initial", "", func(c *config.Config, _ sip.Options) any { return c.HTTP.AuthBackoff.Initial.D() }, ticketing.DefaultAuthBackoffInitial},
		{"http", "auth_backoff.max", "", func(c *config.Config, _ sip.Options) any { return c.HTTP.AuthBackoff.Max.D() }, ticketing.DefaultAuthBackoffMax},
		{"http", "bcrypt_concurrency", "", func(c *config.Config, _ sip.Options) any { return c.HTTP.BcryptConcurrency }, ticketing.DefaultBcryptConcurrency},
		{"http", "token_ttl", "", func(c *config.Config, _ sip.Options) any { return c.HTTP.TokenTTL.D() }, ticketing.DefaultTokenTTL},
		{"cluster", "max_skew", "", so(func(o sip.Options) any { return o.Cluster.MaxSkew }), sip.DefaultClusterMaxSkew},
		// eventlog's node watch (nodeWatchOptions); heartbeat_interval 0 (off) is checked below.
		{"database", "heartbeat_interval", "", func(c *config.Config, _ sip.Options) any { return nodeWatchOptions(c).Interval }, eventlog.DefaultHeartbeatInterval},
		{"database", "node_lost_after", "", func(c *config.Config, _ sip.Options) any { return nodeWatchOptions(c).LostAfter }, eventlog.DefaultNodeLostAfter},
	}
}

func TestConfigKnobsMapStraightOntoOptions_AbsentIsThePackageDefaultZeroIsOff(t *testing.T) {
	const base = "database: {url: postgres://u@127.0.0.1/db}\nqueues: {q: {overflow: hangup}}\n" +
		"ivr: {m: {options: {'1': hangup}, no_input: hangup}, k: {collect: {variable: v, next: hangup}}}\n"
	load := func(t *testing.T, extra string) (*config.Config, sip.Options) {
		t.Helper()
		cfg, err := config.Parse([]byte(base + extra))
		if err != nil {
			t.Fatalf("config %q: %v", extra, err)
		}
		o, err := sipOptions(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return cfg, o
	}
	docs := docDefaults(t, "../../docs/configuration.md")
	for _, k := range optionKnobs() {
		t.Run(k.section+"."+k.key, func(t *testing.T) {
			if got := k.get(load(t, "")); !reflect.DeepEqual(got, k.def) {
				t.Errorf("absent: the package gets %v, want its default %v", got, k.def)
			}
			if k.zero != "" {
				got := reflect.ValueOf(k.get(load(t, k.zero)))
				if !got.IsZero() && !(got.Kind() == reflect.Slice && got.Len() == 0) {
					t.Errorf("%s: the package gets %v, want 0 (off)", k.zero, got)
				}
			}
			doc, ok := docs[k.section+"."+k.key]
			if !ok {
				t.Fatalf("docs/configuration.md has no row for %s in section %s", k.key, k.section)
			}
			if !docMatches(doc, k.def) {
				t.Errorf("docs/configuration.md says the default is %s, the package's is %v", doc, k.def)
			}
		})
	}
	// A heartbeat of 0 is off: no node watch is started (ticketing.go starts one only above 0).
	if cfg, err := config.Parse([]byte(strings.Replace(base, "database: {url: postgres://u@127.0.0.1/db}", "database: {url: postgres://u@127.0.0.1/db, heartbeat_interval: 0s}", 1))); err != nil {
		t.Fatal(err)
	} else if iv := nodeWatchOptions(cfg).Interval; iv != 0 {
		t.Errorf("heartbeat_interval 0s: the node watch gets %s, want 0 (off)", iv)
	}
	// The cluster's internal leg is off without a secret, on with one, the node named.
	if _, o := load(t, ""); len(o.Cluster.Secret) != 0 {
		t.Error("no cluster.secret: the internal leg is on")
	}
	if _, o := load(t, "node: n1\ncluster: {secret: 0123456789abcdef0123456789abcdef, internal_networks: [10.0.0.0/24], internal_address: 10.0.0.1:5060}\n"); string(o.Cluster.Secret) != "0123456789abcdef0123456789abcdef" ||
		o.Cluster.Node != "n1" || len(o.Cluster.Networks) != 1 || o.Cluster.Networks[0].String() != "10.0.0.0/24" {
		t.Errorf("cluster section maps to %+v", o.Cluster.Networks)
	}
	// A trunk's inbound digest: credentials and algorithms reach sip.Trunk; no algorithms
	// there is the package's default (sip.DefaultTrunkDigestAlgorithms).
	if _, o := load(t, "trunks: [{name: c, inbound: {auth: {username: u, password: p, digest_algorithms: [SHA-256]}}}]\n"); len(o.Trunks) != 1 ||
		o.Trunks[0].Username != "u" || o.Trunks[0].Password != "p" || !reflect.DeepEqual(o.Trunks[0].DigestAlgorithms, []string{"SHA-256"}) {
		t.Errorf("trunk inbound.auth maps to %+v", o.Trunks)
	}
	if _, o := load(t, "trunks: [{name: c, inbound: {auth: {username: u, password: p}}}]\n"); len(o.Trunks) != 1 || o.Trunks[0].DigestAlgorithms != nil {
		t.Errorf("trunk inbound.auth without digest_algorithms maps to %v, want nil (sip's default)", o.Trunks[0].DigestAlgorithms)
	}
	// The connection write timeout is not in the configuration: the package's default.
	if _, o := load(t, ""); o.Conn.WriteTimeout != sip.DefaultWriteTimeout {
		t.Errorf("connection write timeout %s, want sip's default %s", o.Conn.WriteTimeout, sip.DefaultWriteTimeout)
	}
}

// docDefaults reads the default column of every key table of docs/configuration.md, by
// "section.key", the section being the name in its "## `name`" (or "### `name`") heading.
func docDefaults(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && strings.HasPrefix(line, "##") {
			section = strings.Trim(strings.Fields(h + " x")[0], "`:")
			continue
		}
		cols := strings.Split(line, "|")
		if len(cols) < 5 || !strings.HasPrefix(strings.TrimSpace(cols[1]), "`") {
			continue
		}
		out[section+"."+strings.Trim(strings.TrimSpace(cols[1]), "`")] = strings.TrimSpace(cols[3])
	}
	return out
}

// docMatches reports whether a documented default (`30m`, `2160h` (90 days), `1000`, `a`,
// `b`) is v: a scalar is the first quoted value, a list all of them.
func docMatches(doc string, v any) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(doc, "`"), "`")
	switch v := v.(type) {
	case time.Duration:
		d, err := time.ParseDuration(first)
		return err == nil && d == v
	case int:
		n, err := strconv.Atoi(first)
		return err == nil && n == v
	case float64:
		f, err := strconv.ParseFloat(first, 64)
		return err == nil && f == v
	case string:
		return first == v
	case []string:
		quoted := make([]string, len(v))
		for i, s := range v {
			quoted[i] = "`" + s + "`"
		}
		return doc == strings.Join(quoted, ", ")
	}
	panic(fmt.Sprintf("docMatches: %T", v))
}

// The agent page's front (web.Options.FrontURL) is http.public_url on a node of a cluster
// only: a lone node's page waits for its node even when public_url is set (behind a TLS proxy
// that is the node itself).
func TestPageFrontIsPublicURLOnClusterNodesOnly(t *testing.T) {
	var cfg config.Config
	cfg.HTTP.PublicURL = "https://gw.example.com"
	if got := pageFront(&cfg); got != "" {
		t.Errorf("one node: pageFront = %q, want none", got)
	}
	cfg.Database.SharedQueues = true
	if got := pageFront(&cfg); got != "https://gw.example.com" {
		t.Errorf("cluster node: pageFront = %q, want the public URL", got)
	}
	cfg.HTTP.PublicURL = ""
	if got := pageFront(&cfg); got != "" {
		t.Errorf("cluster node without public_url: pageFront = %q, want none", got)
	}
}
