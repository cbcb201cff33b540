package config

import (
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ivr.Target
		ok   bool
	}{
		{"ivr:main", ivr.Target{Kind: ivr.TargetMenu, Name: "main"}, true},
		{"menu:billing", ivr.Target{Kind: ivr.TargetMenu, Name: "billing"}, true},
		{"queue:support", ivr.Target{Kind: ivr.TargetQueue, Name: "support"}, true},
		{"voicemail", ivr.Target{Kind: ivr.TargetVoicemail}, true},
		{"hangup", ivr.Target{Kind: ivr.TargetHangup}, true},
		{"sip:desk@127.0.0.1:5090", ivr.Target{Kind: ivr.TargetSIP, URI: "sip:desk@127.0.0.1:5090"}, true},
		{"sips:desk@pbx.example.com", ivr.Target{Kind: ivr.TargetSIP, URI: "sips:desk@pbx.example.com"}, true},
		{"sip:[::1]:5090", ivr.Target{Kind: ivr.TargetSIP, URI: "sip:[::1]:5090"}, true},
		{"queue:", ivr.Target{}, false},
		{"queue:a b", ivr.Target{}, false},
		{"ivr:main:x", ivr.Target{}, false},
		{"voicemail:support", ivr.Target{}, false},
		{"tel:+15550100", ivr.Target{}, false},
		{"sip:", ivr.Target{}, false},
		{"sip:desk@bad_host", ivr.Target{}, false},
		{"", ivr.Target{}, false},
	} {
		got, err := ParseTarget(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseTarget(%q) error = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if got.Kind != tc.want.Kind || got.Name != tc.want.Name || got.URI != tc.want.URI {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("ParseTarget(%q).String() = %q", tc.in, got.String())
		}
	}
}

func TestParseTimeRange(t *testing.T) {
	for _, tc := range []struct {
		in         string
		start, end time.Duration
		ok         bool
	}{
		{"09:00-17:00", 9 * time.Hour, 17 * time.Hour, true},
		{"00:00-24:00", 0, 24 * time.Hour, true},
		{"08:30 - 12:15", 8*time.Hour + 30*time.Minute, 12*time.Hour + 15*time.Minute, true},
		{"17:00-09:00", 0, 0, false},
		{"09:00-09:00", 0, 0, false},
		{"24:00-24:00", 0, 0, false},
		{"9:00-17:00", 0, 0, false},
		{"09:60-17:00", 0, 0, false},
		{"24:30-25:00", 0, 0, false},
		{"09:00", 0, 0, false},
	} {
		r, err := ParseTimeRange(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseTimeRange(%q) error = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (r.Start != tc.start || r.End != tc.end) {
			t.Errorf("ParseTimeRange(%q) = %v-%v", tc.in, r.Start, r.End)
		}
	}
}

// TestHoursOpen proves opening hours, as configured and handed to the IVR (Hours.IVR), follow
// the line's time zone (wall clock, across a daylight-saving change) and close on holidays.
func TestHoursOpen(t *testing.T) {
	doc := base + `trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]
lines:
  - number: "+15550100"
    target: hangup
    hours:
      time_zone: Europe/Paris
      weekly: {mon: ["09:00-12:00", "14:00-17:00"], sat: ["10:00-24:00"]}
      holidays: [2026-12-28]
      closed_target: hangup
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := c.Line("+15550100")
	h := l.Hours.IVR() // the hours as the IVR applies them
	paris := h.Location
	if paris.String() != "Europe/Paris" {
		t.Fatalf("Location = %v", paris)
	}
	for _, tc := range []struct {
		at   time.Time
		open bool
	}{
		{time.Date(2026, 11, 23, 9, 0, 0, 0, paris), true},     // Monday 09:00
		{time.Date(2026, 11, 23, 8, 59, 59, 0, paris), false},  // before
		{time.Date(2026, 11, 23, 12, 0, 0, 0, paris), false},   // lunch: end is exclusive
		{time.Date(2026, 11, 23, 16, 59, 0, 0, paris), true},   // afternoon
		{time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC), true}, // 09:30 in Paris
		{time.Date(2026, 11, 24, 10, 0, 0, 0, paris), false},   // Tuesday: closed
		{time.Date(2026, 11, 28, 23, 59, 0, 0, paris), true},   // Saturday until midnight
		{time.Date(2026, 12, 28, 10, 0, 0, 0, paris), false},   // a Monday holiday
		{time.Date(2026, 3, 30, 9, 30, 0, 0, paris), true},     // Monday after the spring change
	} {
		if got := h.Open(tc.at); got != tc.open {
			t.Errorf("Open(%v) = %v, want %v", tc.at, got, tc.open)
		}
	}
}

func TestParsePrefixRefusesHostBits(t *testing.T) {
	if _, err := ParsePrefix("127.0.0.1/8"); err == nil {
		t.Error("127.0.0.1/8 accepted")
	}
	for _, ok := range []string{"127.0.0.0/8", "192.0.2.7/32", "::1/128", "2001:db8::/32"} {
		if _, err := ParsePrefix(ok); err != nil {
			t.Errorf("ParsePrefix(%q): %v", ok, err)
		}
	}
}

func TestIsE164(t *testing.T) {
	for s, want := range map[string]bool{
		"+15550100": true, "+442071838750": true, "+123456789012345": true,
		"+1234567890123456": false, "15550100": false, "+0123": false, "+1": false,
		"+1 555 0100": false, "+1-555-0100": false, "": false,
	} {
		if got := IsE164(s); got != want {
			t.Errorf("IsE164(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestRTPPairs(t *testing.T) {
	if got := (RTP{PortMin: 20000, PortMax: 20999}).Pairs(); got != 500 {
		t.Errorf("Pairs() = %d, want 500", got)
	}
	if got := (RTP{PortMin: 20000, PortMax: 20000}).Pairs(); got != 0 {
		t.Errorf("Pairs() of one port = %d, want 0", got)
	}
}

func TestSIPHelpers(t *testing.T) {
	c, err := parse([]byte(base+`sip:
  listen: [{transport: udp, address: "0.0.0.0:5060"}, {transport: tls, address: "0.0.0.0:5061"}]
  external_address: 203.0.113.7
  tls: {cert_file: c.pem, key_file: k.pem}
  rate_limit: {exempt: [192.0.2.0/24]}
  trusted_fronts: [10.0.0.5/32, "2001:db8::/64"]
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SIP.ListenAddress(TransportTLS); got != "0.0.0.0:5061" {
		t.Errorf("ListenAddress(tls) = %q", got)
	}
	if got := c.SIP.ListenAddress(TransportTCP); got != "" {
		t.Errorf("ListenAddress(tcp) = %q, want none", got)
	}
	if got := c.SIP.ExternalAddr().String(); got != "203.0.113.7" {
		t.Errorf("ExternalAddr = %s", got)
	}
	if got := Networks(c.SIP.RateLimit.Exempt); len(got) != 1 || got[0].String() != "192.0.2.0/24" {
		t.Errorf("Networks = %v", got)
	}
	if got := Networks(c.SIP.TrustedFronts); len(got) != 2 || got[0].String() != "10.0.0.5/32" || got[1].String() != "2001:db8::/64" {
		t.Errorf("sip.trusted_fronts = %v", got)
	}
}
