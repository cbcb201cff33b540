// Package config loads and validates Switchboard's YAML configuration.
//
// Decoding is strict: an unknown key is an error. Every value is checked at load, and every
// problem is reported with its YAML path, its line and what is allowed, all of them at once,
// so that `switchboard check-config` shows an operator the whole list in one go.
//
// The schema is documented key by key in docs/configuration.md; deploy/dev/switchboard.yaml is
// the development configuration (deploy/dev/switchboard.yaml).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/switchboard-voice/switchboard/ticketing"
	"go.yaml.in/yaml/v3"
)

// Problem is one invalid value: Path is its YAML path ("sip.listen[0].address"), Line its line
// in the file when known (0 otherwise).
type Problem struct {
	Path    string
	Message string
	Line    int
}

// String returns "path (line N): message", or "line N: message" without a path, leaving
// out what is unknown.
func (p Problem) String() string {
	switch {
	case p.Path != "" && p.Line > 0:
		return fmt.Sprintf("%s (line %d): %s", p.Path, p.Line, p.Message)
	case p.Path != "":
		return p.Path + ": " + p.Message
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return p.Message
}

// Problems is every problem found in a configuration; it is the error Load and Parse return
// when the configuration is invalid.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Config is the whole configuration file. Sections a later feature reads are here already, so
// that a configuration written today keeps loading.
type Config struct {
	// Node names this gateway in logs, metrics and the database (default: the host name).
	Node string `yaml:"node"`
	// ShutdownGrace is how long SIGTERM lets live calls finish (default 30s).
	ShutdownGrace Duration          `yaml:"shutdown_grace"`
	Log           Log               `yaml:"log"`
	Database      Database          `yaml:"database"`
	HTTP          HTTP              `yaml:"http"`
	Admin         Admin             `yaml:"admin"`
	SIP           SIP               `yaml:"sip"`
	RTP           RTP               `yaml:"rtp"`
	WebRTC        WebRTC            `yaml:"webrtc"`
	Trunks        []Trunk           `yaml:"trunks"`
	Lines         []Line            `yaml:"lines"`
	Prompts       Prompts           `yaml:"prompts"`
	IVR           map[string]*Menu  `yaml:"ivr"`
	Queues        map[string]*Queue `yaml:"queues"`
	Agents        []Agent           `yaml:"agents"`
	Users         []User            `yaml:"users"`
	Teams         []Team            `yaml:"teams"`
	Recordings    Recordings        `yaml:"recordings"`
	Voicemail     Voicemail         `yaml:"voicemail"`
	Ticketing     Ticketing         `yaml:"ticketing"`
	Cluster       Cluster           `yaml:"cluster"`
}

// Log configures logging (log/slog to stderr).
type Log struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is auto (JSON when stderr is not a terminal, text otherwise), json or text.
	Format string `yaml:"format"`
}

// Database configures PostgreSQL.
type Database struct {
	// URL is a PostgreSQL connection URL; the DATABASE_URL environment variable overrides it.
	URL string `yaml:"url"`
	// MigrateOnStart applies pending migrations when serve starts (default true).
	MigrateOnStart *bool `yaml:"migrate_on_start"`
	// Spool is the local append-only file that holds call events while PostgreSQL is
	// unreachable (default .data/spool/events.jsonl).
	Spool string `yaml:"spool"`
	// Journal is the node-local journal of the calls this node has open, read at start to
	// close the calls a crash left open even while PostgreSQL is away (default calls.jsonl
	// next to the spool).
	Journal string `yaml:"journal"`
	// HeartbeatInterval is how often this node beats in the nodes table and looks for lost
	// nodes (default 5s; 0 turns both off).
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	// NodeLostAfter is how old another node's last beat is when this node counts it lost and
	// closes its calls (default 15s, three missed beats; at least twice heartbeat_interval).
	NodeLostAfter Duration `yaml:"node_lost_after"`
	// SharedQueues keeps the queues and agents in the database, shared by every node on it
	// (agents' states and the node each is attached to, queue membership, waiting calls in
	// arrival order), instead of this node's memory (default false: one node).
	SharedQueues bool `yaml:"shared_queues"`
}

// HTTP configures the HTTP listener (softphone, API, metrics, health). See http.go for the
// defaults that depend on Listen.
type HTTP struct {
	// Listen is host:port (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// Metrics serves /metrics on Listen. Omitted: only when Listen is a loopback address, so
	// that a public listener does not show the gateway's call volumes to everyone (scrape
	// admin.listen instead, or set true behind a firewall).
	Metrics *bool `yaml:"metrics"`
	// PublicURL is the scheme and authority browsers and API clients use to reach the gateway
	// ("https://gw.example.com"): next_page links are built on it, and its host is allowed.
	// Default: http://LISTEN when Listen names a host; relative links when it binds every
	// interface.
	PublicURL string `yaml:"public_url"`
	// SecureCookies marks the session cookie Secure and names it with the __Host- prefix, for
	// a gateway behind a TLS-terminating proxy. Default: on unless Listen is loopback.
	SecureCookies *bool `yaml:"secure_cookies"`
	// AllowedHosts are the Host header values (host names or IP addresses, port ignored) the
	// gateway answers; anything else gets 421 — DNS rebinding. Default: see AllowedHostList.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// TrustedProxies are the networks of reverse proxies whose X-Forwarded-For names the client
	// (for brute-force limits and security logs). Default: none (the TCP peer is the client).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TokenTTL is the lifetime of an API token whose maker does not choose one (default 90 days).
	TokenTTL Duration `yaml:"token_ttl"`
	// AuthBackoff limits password guessing on /login and HTTP Basic.
	AuthBackoff AuthBackoff `yaml:"auth_backoff"`
	// BcryptConcurrency is how many password checks (bcrypt) may run at once (default 2); more
	// are refused with 429 at once, so that a flood of logins cannot take the CPU that carries
	// the calls' RTP.
	BcryptConcurrency int `yaml:"bcrypt_concurrency"`
	// MaxUploadBytes bounds one file of POST /api/v2/uploads (default 20 MiB); a larger one is
	// refused with 413. A file is held in memory while it is stored.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
}

// AuthBackoff is the exponential backoff after failed password checks, per client address
// and per account.
type AuthBackoff struct {
	// Failures is how many failures in a row a client address may make before it must wait
	// (default 5); an account gets twice as many (from every address together).
	Failures int `yaml:"failures"`
	// Initial is the first wait (default 1s); each further failure doubles it.
	Initial Duration `yaml:"initial"`
	// Max caps the wait (default 15m); failures are forgotten after Max without one.
	Max Duration `yaml:"max"`
}

// MetricsOnListener reports whether /metrics is served on the HTTP listener.
func (h HTTP) MetricsOnListener() bool {
	if h.Metrics != nil {
		return *h.Metrics
	}
	return loopbackListen(h.Listen)
}

// Admin configures the operator-only listener serving /metrics and net/http/pprof.
type Admin struct {
	// Listen is host:port; empty (the default) turns the listener off. A non-loopback
	// address needs AllowPublic: the profiler shows the process's command line and memory.
	Listen string `yaml:"listen"`
	// AllowPublic accepts a Listen that is not a loopback address (a firewall or network
	// policy must protect it).
	AllowPublic bool `yaml:"allow_public"`
}

// Ticketing configures the ticketing core.
type Ticketing struct {
	// DefaultRegion is the ISO 3166 region used to read numbers written without a country
	// code when phone validation is off (default US).
	DefaultRegion string `yaml:"default_region"`
	// Settings are the global call → ticket settings of docs/rules.md; omitted keys keep their
	// defaults (ticketing.DefaultSettings). Lines override the per-line ones.
	Settings ticketing.Settings `yaml:"settings"`
	// AuditRetention is how long the audit trail's entries are kept: older ones are deleted
	// in the background (ticketing.AuditPruner). 0 (the default) keeps them forever; else at
	// least ticketing.MinAuditRetention. Not one of the settings the API changes: an admin
	// must not be able to shorten the trail of their own actions.
	AuditRetention Duration `yaml:"audit_retention"`
}

// Load reads the file at path; see Parse.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes a configuration strictly over the defaults (see Default), lets DATABASE_URL
// override the database URL, and validates it. An invalid configuration returns Problems
// holding every decoding and validation problem, each with its YAML path and line.
func Parse(b []byte) (*Config, error) { return parse(b, os.Getenv) }

func parse(b []byte, getenv func(string) string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		// Not even YAML: nothing more can be said.
		return nil, problemsOf(decodeProblems(err, nil))
	}
	idx := indexDocument(&root)

	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var ds []decoded
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			// A custom decoder's plain error stops yaml.v3: what follows is undecoded.
			return nil, problemsOf(decodeProblems(err, idx))
		}
		// A type error leaves the rest decoded: validate it too, below.
		ds = decodeProblems(err, idx)
	}
	ps := problemsOf(ds)
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		ps = append(ps, Problem{Message: "the file holds more than one YAML document; keep the configuration in one", Line: extra.Line})
	}
	c.applyDefaults(idx)
	if u := getenv("DATABASE_URL"); u != "" {
		c.Database.URL = u
	}
	if s := getenv("SWITCHBOARD_CLUSTER_SECRET"); s != "" {
		c.Cluster.Secret = s
	}
	cv := newCoverage(ds)
	for _, p := range c.Validate() {
		if cv.has(p.Path) {
			continue // that value failed to decode; its problem is already said
		}
		if p.Line == 0 {
			p.Line = idx.lineOf(p.Path)
		}
		ps = append(ps, p)
	}
	if len(ps) > 0 {
		// In file order, so that an operator can walk down the file; problems without a line
		// (a required key that is missing everywhere) come last.
		sort.SliceStable(ps, func(i, j int) bool {
			li, lj := ps[i].Line, ps[j].Line
			return li != 0 && (lj == 0 || li < lj)
		})
		return nil, ps
	}
	return &c, nil
}

// Line returns the line with this E.164 number.
func (c *Config) Line(number string) (*Line, bool) {
	for i := range c.Lines {
		if c.Lines[i].Number == number {
			return &c.Lines[i], true
		}
	}
	return nil, false
}

// Trunk returns the trunk with this name.
func (c *Config) Trunk(name string) (*Trunk, bool) {
	for i := range c.Trunks {
		if c.Trunks[i].Name == name {
			return &c.Trunks[i], true
		}
	}
	return nil, false
}

// LineTrunk returns the trunk a line's calls use: the one it names, or the only trunk.
func (c *Config) LineTrunk(l *Line) (*Trunk, bool) {
	if l.Trunk != "" {
		return c.Trunk(l.Trunk)
	}
	if len(c.Trunks) == 1 {
		return &c.Trunks[0], true
	}
	return nil, false
}

// OutboundLines returns the lines outbound calls may be placed from (OB-7), in configuration
// order: those whose trunk takes outbound calls (outbound.uri), each with that trunk.
func (c *Config) OutboundLines() []OutboundLine {
	var out []OutboundLine
	for i := range c.Lines {
		l := &c.Lines[i]
		if t, ok := c.LineTrunk(l); ok && t.Outbound.URI != "" {
			out = append(out, OutboundLine{Line: l, Trunk: t})
		}
	}
	return out
}

// OutboundLine is a line outbound calls may be placed from, and the trunk that dials them.
type OutboundLine struct {
	Line  *Line
	Trunk *Trunk
}

// LineSettings returns the ticketing settings in force on line l: the global settings with
// the line's overrides.
func (c *Config) LineSettings(l *Line) ticketing.Settings {
	return l.Settings.Apply(c.Ticketing.Settings)
}

// Menu returns the IVR menu with this name.
func (c *Config) Menu(name string) (*Menu, bool) {
	m, ok := c.IVR[name]
	return m, ok && m != nil
}

// Queue returns the queue with this name.
func (c *Config) Queue(name string) (*Queue, bool) {
	q, ok := c.Queues[name]
	return q, ok && q != nil
}

// Account returns the agent or user with this email, compared without regard to case.
func (c *Config) Account(email string) (Account, bool) {
	for _, a := range c.Accounts() {
		if strings.EqualFold(a.Email, email) {
			return a, true
		}
	}
	return Account{}, false
}
