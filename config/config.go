// Package config loads and validates Switchboard's YAML configuration.
//
// Decoding is strict: an unknown key is an error. Every value is checked at load, and every
// problem is reported with its YAML path and what is allowed, all of them at once, so that
// `switchboard check-config` shows an operator the whole list in one go.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one invalid value: Path is its YAML path ("sip.listen[0].address").
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
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

// Duration is a time.Duration written as a Go duration string ("30s", "5m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: want a duration such as \"30s\", got %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Config is the whole configuration file.
type Config struct {
	// Node names this gateway in logs, metrics and the database (default: the host name).
	Node          string   `yaml:"node"`
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	Log           Log      `yaml:"log"`
	Database      Database `yaml:"database"`
	HTTP          HTTP     `yaml:"http"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// Database configures PostgreSQL.
type Database struct {
	// URL is a PostgreSQL connection URL; the DATABASE_URL environment variable overrides it.
	URL string `yaml:"url"`
	// MigrateOnStart applies pending migrations when serve starts (default true).
	MigrateOnStart *bool `yaml:"migrate_on_start"`
}

// HTTP configures the HTTP listener (softphone, API, metrics, health).
type HTTP struct {
	Listen string `yaml:"listen"`
}

// Load reads the file at path; see Parse.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes a configuration strictly, applies defaults, lets DATABASE_URL override the
// database URL, and validates it. An invalid configuration returns Problems.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeProblems(err)
	}
	c.applyDefaults()
	if u := os.Getenv("DATABASE_URL"); u != "" {
		c.Database.URL = u
	}
	if ps := c.Validate(); len(ps) > 0 {
		return nil, ps
	}
	return &c, nil
}

// decodeProblems turns yaml's type and unknown-field errors into Problems, one per line.
func decodeProblems(err error) Problems {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		ps := make(Problems, 0, len(te.Errors))
		for _, e := range te.Errors {
			ps = append(ps, Problem{Message: strings.TrimPrefix(e, "yaml: ")})
		}
		return ps
	}
	return Problems{{Message: strings.TrimPrefix(err.Error(), "yaml: ")}}
}

func (c *Config) applyDefaults() {
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = Duration(30 * time.Second)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Database.MigrateOnStart == nil {
		t := true
		c.Database.MigrateOnStart = &t
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
}

// Validate returns every problem with c.
func (c *Config) Validate() Problems {
	var ps Problems
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps = append(ps, Problem{"log.level", fmt.Sprintf("%q is not allowed; use debug, info, warn or error", c.Log.Level)})
	}
	if c.ShutdownGrace < 0 {
		ps = append(ps, Problem{"shutdown_grace", "must not be negative"})
	}
	if c.Database.URL == "" {
		ps = append(ps, Problem{"database.url", "is required (or set DATABASE_URL)"})
	}
	return ps
}
