package config

import (
	"strings"
	"testing"
)

// check-config's warnings (issue 14, item 9): valid but risky values, each named by its path.
func TestWarningsNameDevPasswordsOpenTrunksAndSmallRTPRanges(t *testing.T) {
	doc := base + `sip: {max_calls: 100}
rtp: {port_min: 20000, port_max: 20199}
trunks:
  - {name: open, inbound: {allow: [0.0.0.0/0]}}
  - {name: wide6, inbound: {allow: ["::/0"]}}
  - {name: ok, inbound: {allow: [192.0.2.0/24, 10.0.0.0/8]}}
lines: [{number: "+15550100", trunk: ok, target: hangup}]
agents: [{email: a@example.com, password: agentpass}, {email: b@example.com, password: s3cret-not-dev}]
users: [{email: admin@example.com, password: adminpass, role: admin}]
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range c.Warnings() {
		got[w.Path] = w.Message
	}
	for _, path := range []string{"agents[0].password", "users[0].password", "trunks[0].inbound.allow[0]", "trunks[1].inbound.allow[0]", "rtp"} {
		if got[path] == "" {
			t.Errorf("no warning for %s; got %v", path, got)
		}
	}
	if len(got) != 5 {
		t.Errorf("%d warnings, want 5: %v", len(got), got)
	}
	if !strings.Contains(got["rtp"], "100 RTP/RTCP port pairs, fewer than 2 × sip.max_calls (200)") {
		t.Errorf("rtp warning: %s", got["rtp"])
	}

	quiet, err := parse([]byte(base+`sip: {max_calls: 100}
rtp: {port_min: 20000, port_max: 20399}
trunks: [{name: ok, inbound: {allow: [127.0.0.0/8]}}]
lines: [{number: "+15550100", target: hangup}]
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if ws := quiet.Warnings(); len(ws) != 0 {
		t.Errorf("a sound configuration warns: %v", ws)
	}
	quiet.HTTP = HTTP{Listen: "0.0.0.0:8080", Metrics: new(bool)}
	*quiet.HTTP.Metrics = true
	if ws := quiet.Warnings(); len(ws) != 1 || ws[0].Path != "http.metrics" {
		t.Errorf("public /metrics: %v", ws)
	}
}

// /metrics and pprof stay off public listeners unless configured (issue 14, item 9).
func TestAdminListenOffLoopbackNeedsAllowPublic(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "192.0.2.1:6060", "[::]:6060", "gateway.example.com:6060"} {
		_, err := parse([]byte(base+"admin: {listen: \""+addr+"\"}\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), "admin.listen") || !strings.Contains(err.Error(), "allow_public") {
			t.Errorf("admin.listen %s: %v", addr, err)
		}
		if _, err := parse([]byte(base+"admin: {listen: \""+addr+"\", allow_public: true}\n"), noEnv); err != nil {
			t.Errorf("admin.listen %s with allow_public: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:6060"} {
		if _, err := parse([]byte(base+"admin: {listen: \""+addr+"\"}\n"), noEnv); err != nil {
			t.Errorf("admin.listen %s: %v", addr, err)
		}
	}
	on, off := true, false
	for _, r := range []struct {
		listen  string
		metrics *bool
		want    bool
	}{
		{"127.0.0.1:8080", nil, true}, {"localhost:8080", nil, true}, {"0.0.0.0:8080", nil, false},
		{":8080", nil, false}, {"192.0.2.1:8080", nil, false}, {"0.0.0.0:8080", &on, true}, {"127.0.0.1:8080", &off, false},
	} {
		if got := (HTTP{Listen: r.listen, Metrics: r.metrics}).MetricsOnListener(); got != r.want {
			t.Errorf("http.listen %s metrics %v: MetricsOnListener %v, want %v", r.listen, r.metrics, got, r.want)
		}
	}
}
