package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.yaml.in/yaml/v3"

	"github.com/switchboard-voice/switchboard/ivr"
)

// The scalar types below check their own syntax while the file is decoded. A bad value is
// reported as a *yaml.TypeError, which yaml.v3 collects while it goes on decoding, so that one
// bad value does not hide the others; Parse turns each into a Problem with its YAML path.

// typeError reports a bad scalar at n's line; Parse maps the line back to the YAML path.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}

// scalar returns n's value, or a type error when n is a list or a mapping.
func scalar(n *yaml.Node, want string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", typeError(n, "want %s, got a %s", want, kindName(n.Kind))
	}
	return n.Value, nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}

// Duration is a time.Duration written as a Go duration string ("30s", "5m", "1h30m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns the Go duration string ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a duration string; a bare 0 is accepted as zero.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	const want = `a duration such as "30s" or "2m"`
	s, err := scalar(n, want)
	if err != nil {
		return err
	}
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return typeError(n, "want %s, got %q", want, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Prefix is an IP network in CIDR notation ("127.0.0.0/8", "2001:db8::/32"); a single
// address is written with /32 or /128.
type Prefix struct{ netip.Prefix }

// ParsePrefix parses a CIDR network. The address must be the network's first address
// ("10.0.0.0/8", not "10.1.2.3/8"), so that a typo cannot silently widen the network.
func ParsePrefix(s string) (Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Prefix{}, fmt.Errorf("%q is not a CIDR network; write one such as 192.0.2.0/24, or 192.0.2.7/32 for one address", s)
	}
	if p.Masked() != p {
		return Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return Prefix{p}, nil
}

// UnmarshalYAML reads a CIDR network.
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a CIDR network such as 192.0.2.0/24")
	if err != nil {
		return err
	}
	v, err := ParsePrefix(s)
	if err != nil {
		return typeError(n, "%s", err)
	}
	*p = v
	return nil
}

// MarshalYAML writes CIDR notation.
func (p Prefix) MarshalYAML() (any, error) { return p.String(), nil }

// Target is where a call goes next (comparable with ==): a line's destination, an IVR option,
// a queue's overflow, a closed line's destination. Written as one string: "ivr:main",
// "menu:billing" (the same as "ivr:billing"), "queue:support", "voicemail", "hangup", or a SIP
// URI such as "sip:desk@127.0.0.1:5090". It decodes straight into the IVR's own target
// (ivr.Target: Kind ivr.TargetMenu, TargetQueue, TargetVoicemail, TargetSIP or TargetHangup,
// with the menu or queue Name, or the SIP URI as written, which parses with ParseSIPURI), and
// keeps the text as written for messages.
type Target struct {
	ivr.Target
	raw string
}

const targetForms = `ivr:NAME, menu:NAME, queue:NAME, voicemail, hangup or a SIP URI such as sip:desk@192.0.2.10:5060`

// ParseTarget parses a target string.
func ParseTarget(s string) (Target, error) {
	t := Target{raw: s}
	kind, name, hasName := strings.Cut(s, ":")
	switch {
	case s == "voicemail":
		t.Target = ivr.VoicemailTarget()
	case s == "hangup":
		t.Target = ivr.HangupTarget()
	case hasName && (kind == "ivr" || kind == "menu"):
		t.Target = ivr.MenuTarget(name)
	case hasName && kind == "queue":
		t.Target = ivr.QueueTarget(name)
	case hasName && (kind == "sip" || kind == "sips"):
		if _, err := ParseSIPURI(s); err != nil {
			return Target{}, err
		}
		t.Target = ivr.SIPTarget(s)
		return t, nil
	default:
		return Target{}, fmt.Errorf("%q is not a target; use %s", s, targetForms)
	}
	if (t.Kind == ivr.TargetMenu || t.Kind == ivr.TargetQueue) && !validName(t.Name) {
		return Target{}, fmt.Errorf("%q names no menu or queue: a name is letters, digits, '_' and '-'", s)
	}
	return t, nil
}

// MustTarget is ParseTarget for constants known to be valid; it panics otherwise.
func MustTarget(s string) Target {
	t, err := ParseTarget(s)
	if err != nil {
		panic(err)
	}
	return t
}

// IsSet reports whether the target was given.
func (t Target) IsSet() bool { return t.Kind != ivr.TargetNone }

// String returns the target as written.
func (t Target) String() string {
	if t.raw != "" {
		return t.raw
	}
	return t.Target.String()
}

// UnmarshalYAML reads a target string.
func (t *Target) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a target ("+targetForms+")")
	if err != nil {
		return err
	}
	v, err := ParseTarget(s)
	if err != nil {
		return typeError(n, "%s", err)
	}
	*t = v
	return nil
}

// MarshalYAML writes the target string.
func (t Target) MarshalYAML() (any, error) { return t.String(), nil }

// Branch is where a collect step sends a call on no input or invalid input: "continue" (on
// to the step's next target, without the variable) or a target (see Target).
type Branch struct {
	// Target is the target; unset when Continue.
	Target Target
	// Continue is set for "continue", and when the branch was not written.
	Continue bool
}

// BranchContinue is the branch that goes on to the collect step's next target.
const BranchContinue = "continue"

// IsSet reports whether the branch was given.
func (b Branch) IsSet() bool { return b.Continue || b.Target.IsSet() }

// String returns the branch as written.
func (b Branch) String() string {
	if b.Continue {
		return BranchContinue
	}
	return b.Target.String()
}

// UnmarshalYAML reads "continue" or a target string.
func (b *Branch) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "continue or a target ("+targetForms+")")
	if err != nil {
		return err
	}
	if s == BranchContinue {
		*b = Branch{Continue: true}
		return nil
	}
	t, err := ParseTarget(s)
	if err != nil {
		return typeError(n, "%s; or continue (on to the step's next target)", err)
	}
	*b = Branch{Target: t}
	return nil
}

// MarshalYAML writes the branch string.
func (b Branch) MarshalYAML() (any, error) { return b.String(), nil }

// ParseSIPURI parses a sip: or sips: URI (RFC 3261 §19.1.1) and requires a host.
func ParseSIPURI(s string) (sip.Uri, error) {
	var u sip.Uri
	if !strings.HasPrefix(s, "sip:") && !strings.HasPrefix(s, "sips:") {
		return u, fmt.Errorf("%q is not a SIP URI: it must start with sip: or sips:, e.g. sip:192.0.2.10:5060", s)
	}
	if strings.ContainsAny(s, " \t\r\n<>\"") {
		return u, fmt.Errorf("%q is not a SIP URI: it contains spaces, quotes or angle brackets", s)
	}
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, fmt.Errorf("%q is not a SIP URI: %v", s, err)
	}
	if u.Host == "" || u.Wildcard {
		return sip.Uri{}, fmt.Errorf("%q is not a SIP URI: it has no host", s)
	}
	if u.Port < 0 || u.Port > 65535 {
		return sip.Uri{}, fmt.Errorf("%q is not a SIP URI: port %d is outside 1-65535", s, u.Port)
	}
	if !validHost(strings.TrimSuffix(strings.TrimPrefix(u.Host, "["), "]")) {
		return sip.Uri{}, fmt.Errorf("%q is not a SIP URI: %q is not an IP address or host name", s, u.Host)
	}
	return u, nil
}

// Date is a calendar day, written YYYY-MM-DD: the IVR's holiday (ivr.Date).
type Date struct{ ivr.Date }

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%q is not a date; write YYYY-MM-DD, e.g. 2026-12-25", s)
	}
	return Date{ivr.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}}, nil
}

// String returns YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// UnmarshalYAML reads YYYY-MM-DD.
func (d *Date) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a date written YYYY-MM-DD")
	if err != nil {
		return err
	}
	v, err := ParseDate(s)
	if err != nil {
		return typeError(n, "%s", err)
	}
	*d = v
	return nil
}

// MarshalYAML writes YYYY-MM-DD.
func (d Date) MarshalYAML() (any, error) { return d.String(), nil }

// TimeRange is a daily opening interval, written "09:00-17:00"; End may be 24:00: the IVR's
// opening interval (ivr.TimeRange, offsets from midnight, Start < End).
type TimeRange struct{ ivr.TimeRange }

// ParseTimeRange parses "HH:MM-HH:MM".
func ParseTimeRange(s string) (TimeRange, error) {
	bad := fmt.Errorf("%q is not a time range; write HH:MM-HH:MM, e.g. 09:00-17:00 (24:00 ends at midnight)", s)
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return TimeRange{}, bad
	}
	start, ok1 := clock(strings.TrimSpace(a))
	end, ok2 := clock(strings.TrimSpace(b))
	if !ok1 || !ok2 || start == 24*time.Hour {
		return TimeRange{}, bad
	}
	if end <= start {
		return TimeRange{}, fmt.Errorf("%q ends before it starts; a range cannot cross midnight, split it into two days", s)
	}
	return TimeRange{ivr.TimeRange{Start: start, End: end}}, nil
}

// clock parses "HH:MM" from 00:00 to 24:00.
func clock(s string) (time.Duration, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, true
}

// String returns "HH:MM-HH:MM".
func (r TimeRange) String() string {
	f := func(d time.Duration) string {
		return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return f(r.Start) + "-" + f(r.End)
}

// UnmarshalYAML reads "HH:MM-HH:MM".
func (r *TimeRange) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a time range such as 09:00-17:00")
	if err != nil {
		return err
	}
	v, err := ParseTimeRange(s)
	if err != nil {
		return typeError(n, "%s", err)
	}
	*r = v
	return nil
}

// MarshalYAML writes "HH:MM-HH:MM".
func (r TimeRange) MarshalYAML() (any, error) { return r.String(), nil }
