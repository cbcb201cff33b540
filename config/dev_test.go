package config

import (
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

const devFile = "../deploy/dev/switchboard.yaml"

// TestDevConfigHasContractValues proves deploy/dev/switchboard.yaml loads and holds the exact
// values of deploy/dev/switchboard.yaml, which outside tests rely on.
func TestDevConfigHasContractValues(t *testing.T) {
	b, err := os.ReadFile(devFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse(b, noEnv)
	if err != nil {
		t.Fatalf("dev config does not load:\n%v", err)
	}

	// SIP on UDP and TCP 127.0.0.1:5060; RTP 20000–20999 on 127.0.0.1; HTTP 127.0.0.1:8080.
	wantListen := []SIPListen{{TransportUDP, "127.0.0.1:5060"}, {TransportTCP, "127.0.0.1:5060"}}
	if !reflect.DeepEqual(c.SIP.Listen, wantListen) {
		t.Errorf("sip.listen = %+v, want %+v", c.SIP.Listen, wantListen)
	}
	if c.RTP.Address != "127.0.0.1" || c.RTP.PortMin != 20000 || c.RTP.PortMax != 20999 {
		t.Errorf("rtp = %s %d-%d, want 127.0.0.1 20000-20999", c.RTP.Address, c.RTP.PortMin, c.RTP.PortMax)
	}
	if c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("http.listen = %q", c.HTTP.Listen)
	}
	if c.Database.URL == "" {
		t.Error("database.url is empty; the dev file needs a sensible default")
	}

	// Trunk carrier: INVITEs from 127.0.0.0/8; outbound to sip:127.0.0.1:5080 as +15550100.
	tr, ok := c.Trunk("carrier")
	if !ok {
		t.Fatal("no trunk carrier")
	}
	if len(tr.Inbound.Allow) != 1 || tr.Inbound.Allow[0].String() != "127.0.0.0/8" {
		t.Errorf("carrier inbound.allow = %v", tr.Inbound.Allow)
	}
	if tr.Outbound.URI != "sip:127.0.0.1:5080" || tr.Outbound.CallerID != "+15550100" {
		t.Errorf("carrier outbound = %+v", tr.Outbound)
	}

	// Lines.
	for number, want := range map[string]ivr.Target{
		"+15550100": {Kind: ivr.TargetMenu, Name: "main"},
		"+15550199": {Kind: ivr.TargetQueue, Name: "support"},
		"+15550198": {Kind: ivr.TargetVoicemail},
		"+15550197": {Kind: ivr.TargetSIP, URI: "sip:desk@127.0.0.1:5090"},
	} {
		l, ok := c.Line(number)
		if !ok {
			t.Errorf("no line %s", number)
			continue
		}
		if l.Target.Kind != want.Kind || l.Target.Name != want.Name || l.Target.URI != want.URI {
			t.Errorf("line %s target = %v, want %v", number, l.Target, want)
		}
		if tr, ok := c.LineTrunk(l); !ok || tr.Name != "carrier" {
			t.Errorf("line %s is not on trunk carrier", number)
		}
		if l.Hours != nil {
			t.Errorf("line %s has opening hours; the dev lines are always open", number)
		}
	}

	// IVR main: 1 → support, 2 → sales, 9 → voicemail; no digit in 5 s repeats once, then support.
	m, ok := c.Menu("main")
	if !ok {
		t.Fatal("no IVR menu main")
	}
	wantOptions := map[string]Target{"1": MustTarget("queue:support"), "2": MustTarget("queue:sales"), "9": MustTarget("voicemail")}
	if len(m.Options) != len(wantOptions) {
		t.Errorf("ivr.main.options = %v, want %v", m.Options, wantOptions)
	}
	for k, want := range wantOptions {
		if got := m.Options[k]; got.Kind != want.Kind || got.Name != want.Name {
			t.Errorf("ivr.main.options[%s] = %v, want %v", k, got, want)
		}
	}
	if m.Timeout.D() != 5*time.Second || m.Retries != 1 || m.NoInput.Kind != ivr.TargetQueue || m.NoInput.Name != "support" {
		t.Errorf("ivr.main timeout %s retries %d no_input %v, want 5s, 1, queue:support", m.Timeout, m.Retries, m.NoInput)
	}
	if m.Prompt == "" {
		t.Error("ivr.main has no greeting prompt")
	}

	// Queues: support rings 15 s, waits at most 120 s, then voicemail; sales exists.
	q, ok := c.Queue("support")
	if !ok {
		t.Fatal("no queue support")
	}
	if q.RingTimeout.D() != 15*time.Second || q.MaxWait.D() != 120*time.Second || q.Overflow.Kind != ivr.TargetVoicemail {
		t.Errorf("queue support = %+v", q)
	}
	if _, ok := c.Queue("sales"); !ok {
		t.Error("no queue sales")
	}

	// Accounts: agents 1 and 2 in support, 3 in sales (agentpass); admin / adminpass.
	want := map[string]struct {
		role, password string
		queues         []string
	}{
		"agent1@example.com": {RoleAgent, "agentpass", []string{"support"}},
		"agent2@example.com": {RoleAgent, "agentpass", []string{"support"}},
		"agent3@example.com": {RoleAgent, "agentpass", []string{"sales"}},
		"admin@example.com":  {RoleAdmin, "adminpass", nil},
	}
	accounts := c.Accounts()
	if len(accounts) != len(want) {
		t.Errorf("%d accounts, want %d", len(accounts), len(want))
	}
	for _, a := range accounts {
		w, ok := want[a.Email]
		if !ok {
			t.Errorf("unexpected account %s", a.Email)
			continue
		}
		if a.Role != w.role || !slices.Equal(a.Queues, w.queues) {
			t.Errorf("account %s: role %s queues %v, want %s %v", a.Email, a.Role, a.Queues, w.role, w.queues)
		}
		if a.Password != w.password || a.PasswordHash != "" {
			t.Errorf("account %s: password is not %q", a.Email, w.password)
		}
	}

	// Recording on for every call into .data/recordings/; every ticketing setting at its default.
	if !c.Recordings.Enabled || c.Recordings.Dir != ".data/recordings" {
		t.Errorf("recordings = %+v", c.Recordings)
	}
	if !reflect.DeepEqual(c.Ticketing.Settings, ticketing.DefaultSettings()) {
		t.Errorf("ticketing.settings = %+v, want the defaults %+v", c.Ticketing.Settings, ticketing.DefaultSettings())
	}
	for i := range c.Lines {
		if c.Lines[i].Settings != (ticketing.LineSettings{}) {
			t.Errorf("line %s overrides ticketing settings", c.Lines[i].Number)
		}
	}
}

func TestLoadReadsTheDevFile(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://env@127.0.0.1/x")
	c, err := Load(devFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != "postgres://env@127.0.0.1/x" {
		t.Errorf("DATABASE_URL did not override: %q", c.Database.URL)
	}
}
