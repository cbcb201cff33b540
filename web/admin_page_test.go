package web

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAdminPage_ServedWithItsScriptUnderTheStrictPolicy: GET /admin serves the admin page of
// agents and queues (issue 21) with the page's Content-Security-Policy (scripts from the origin
// only: the page has no inline script or style), and its script is served beside the agent
// page's; the page drives the admin API (its paths are in the script).
func TestAdminPage_ServedWithItsScriptUnderTheStrictPolicy(t *testing.T) {
	h := newHarness(t, Options{})
	resp, err := http.Get(h.http.URL + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(string(page), `src="/assets/admin.js"`) || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("GET /admin = %d, CSP %q, page:\n%s", resp.StatusCode, csp, page)
	}
	for _, bad := range []string{"<script>", "style=", "onclick="} {
		if strings.Contains(string(page), bad) {
			t.Errorf("the admin page holds %q, which its policy blocks", bad)
		}
	}
	resp, err = http.Get(h.http.URL + "/assets/admin.js")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"'/agents'", "/queues/", "memberships", "sip_secret", "'/lines/inbound'", "'/lines'",
		"service_level_seconds", "callback", "closed_target", "time_zone", "holidays", "settings"} {
		if resp.StatusCode != 200 || !strings.Contains(string(js), want) {
			t.Errorf("/assets/admin.js = %d lacks %s", resp.StatusCode, want)
		}
	}
}
