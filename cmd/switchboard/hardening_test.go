package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Issue 14, item 9: check-config warns about risky values but passes them; a public
// admin.listen is refused without admin.allow_public.
func TestCheckConfigWarnsAboutDevPasswordsOpenTrunkAndSmallRTPRange(t *testing.T) {
	dir := t.TempDir()
	risky := filepath.Join(dir, "risky.yaml")
	doc := `database: {url: "postgres://u@127.0.0.1/db"}
sip: {max_calls: 100}
rtp: {port_min: 20000, port_max: 20099}
trunks: [{name: carrier, inbound: {allow: [0.0.0.0/0]}}]
lines: [{number: "+15550100", target: hangup}]
users: [{email: admin@example.com, password: adminpass, role: admin}]
`
	if err := os.WriteFile(risky, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"check-config", risky}, &out, &errb); code != 0 {
		t.Fatalf("check-config on a risky but valid file: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if strings.TrimSpace(out.String()) != "ok" {
		t.Errorf("stdout %q, want ok", out.String())
	}
	for _, want := range []string{"warning: users[0].password: ", "warning: trunks[0].inbound.allow[0]: 0.0.0.0/0", "warning: rtp: "} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}

	public := filepath.Join(dir, "public.yaml")
	if err := os.WriteFile(public, []byte(`database: {url: "postgres://u@127.0.0.1/db"}
admin: {listen: "0.0.0.0:6060"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", public}, &out, &errb); code != 1 || !strings.Contains(out.String(), "admin.listen") {
		t.Fatalf("public admin.listen: exit %d\n%s", code, out.String())
	}
}

// /metrics follows http.metrics, and admin.listen serves it beside pprof (the real binary).
func TestMetricsOffTheHTTPListenerWhenConfiguredAndOnTheAdminListener(t *testing.T) {
	exe := binary(t)
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, pgtest.EmptyURL(t))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	adminPort := freePort(t)
	re := regexp.MustCompile(`(?m)^http: \{listen: "([^"]+)"\}$`)
	if !re.Match(b) {
		t.Fatal("the harness configuration no longer has http: {listen: ...}")
	}
	b = re.ReplaceAll(b, []byte(fmt.Sprintf("http: {listen: \"$1\", metrics: false}\nadmin: {listen: \"127.0.0.1:%d\"}", adminPort)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(exe, path)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(base + "/metrics"); code != http.StatusNotFound || strings.Contains(body, "switchboard_") {
		t.Errorf("GET /metrics on the HTTP listener with http.metrics false: %d", code)
	}
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	if code, body := get(admin + "/metrics"); code != 200 || !strings.Contains(body, "switchboard_build_info") {
		t.Errorf("GET /metrics on admin.listen: %d", code)
	}
	if code, _ := get(admin + "/debug/pprof/cmdline"); code != 200 {
		t.Errorf("pprof on admin.listen: %d", code)
	}
}
