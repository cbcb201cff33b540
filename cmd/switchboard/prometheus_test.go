package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The operations files of deploy/ (issue 9), checked against the code and, with Debian's
// prometheus package, against a real Prometheus scraping a real gateway.

const (
	opsRepoRoot    = "../.."
	promConfigPath = opsRepoRoot + "/deploy/prometheus/prometheus.yml"
	promRulesPath  = opsRepoRoot + "/deploy/prometheus/alerts.yml"
	dashboardPath  = opsRepoRoot + "/deploy/grafana/switchboard.json"
	operationsPath = opsRepoRoot + "/docs/OPERATIONS.md"
	// shippedTarget is the dev gateway's http.listen (deploy/dev/switchboard.yaml) in prometheus.yml, which
	// the live test rewrites to its test gateway.
	shippedTarget = `"127.0.0.1:8080"`
)

// requirePeerTool returns the path of an external program a test needs: when it is missing the
// test fails under SWITCHBOARD_REQUIRE_PEERS (make test), and is skipped otherwise.
func requirePeerTool(t *testing.T, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatalf("%s not installed and SWITCHBOARD_REQUIRE_PEERS is set (apt-get install %s)", path, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s)", path, pkg)
	}
	return path
}

var metricNameRE = regexp.MustCompile(`\bswitchboard_[a-zA-Z0-9_]+`)

// registeredMetrics returns every metric name the Go sources register (`Name: "switchboard_…"`
// in the options of a prometheus collector), outside tests.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	nameRE := regexp.MustCompile(`Name:\s*"(switchboard_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir(opsRepoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != opsRepoRoot || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range nameRE.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("found only %d registered metrics in the sources: %v", len(names), names)
	}
	return names
}

// exposedName maps a series name to the metric that exposes it: a histogram's _bucket, _sum
// and _count series belong to the histogram.
func exposedName(name string, known map[string]bool) (string, bool) {
	if known[name] {
		return name, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && known[base] {
			return base, true
		}
	}
	return "", false
}

// promExpr is one PromQL expression of a shipped file and where it is.
type promExpr struct {
	where, expr string
}

// dashboardExprs returns every PromQL expression of the Grafana dashboard: panel targets and
// template variable queries.
func dashboardExprs(t *testing.T) (map[string]any, []promExpr) {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var out []promExpr
	panels, _ := dash["panels"].([]any)
	for _, p := range panels {
		pm := p.(map[string]any)
		targets, _ := pm["targets"].([]any)
		for _, tg := range targets {
			tm := tg.(map[string]any)
			if e, _ := tm["expr"].(string); e != "" {
				out = append(out, promExpr{fmt.Sprintf("panel %q target %v", pm["title"], tm["refId"]), e})
			}
		}
	}
	return dash, out
}

// alertRules is the part of a Prometheus rule file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlertRules(t *testing.T) (alertRules, []promExpr) {
	t.Helper()
	b, err := os.ReadFile(promRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var r alertRules
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", promRulesPath, err)
	}
	var out []promExpr
	for _, g := range r.Groups {
		for _, rl := range g.Rules {
			out = append(out, promExpr{"alert " + rl.Alert, rl.Expr})
		}
	}
	return r, out
}

// checkExprNames fails for every switchboard_* name of the expressions that the gateway does
// not register, and returns the metrics the expressions use.
func checkExprNames(t *testing.T, exprs []promExpr, known map[string]bool) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNameRE.FindAllString(e.expr, -1)
		if len(names) == 0 && !strings.Contains(e.expr, "up{") {
			t.Errorf("%s: names no switchboard metric: %s", e.where, e.expr)
		}
		for _, n := range names {
			base, ok := exposedName(n, known)
			if !ok {
				t.Errorf("%s: %s is not a metric the gateway exports", e.where, n)
				continue
			}
			used[base] = true
		}
	}
	return used
}

// Every PromQL expression of the Grafana dashboard names only metrics the gateway registers,
// the dashboard takes its Prometheus from a datasource variable, and it shows what issue 9 asks
// for: calls active, calls per second, ASR and duration, setup latency, queue depth and wait,
// agents by state, RTP loss and jitter, recordings, event lag, security events.
func TestDashboardMetricsAreExported(t *testing.T) {
	known := registeredMetrics(t)
	dash, exprs := dashboardExprs(t)
	if v, _ := dash["schemaVersion"].(float64); v < 36 || v > 41 {
		t.Errorf("schemaVersion %v, want about 39", dash["schemaVersion"])
	}
	if dash["uid"] == nil || dash["title"] == nil {
		t.Errorf("dashboard needs a uid and a title")
	}
	var vars []any
	if tm, ok := dash["templating"].(map[string]any); ok {
		vars, _ = tm["list"].([]any)
	}
	hasDS := false
	for _, v := range vars {
		vm := v.(map[string]any)
		if vm["type"] == "datasource" && vm["query"] == "prometheus" && vm["name"] == "datasource" {
			hasDS = true
		}
		if q, ok := vm["query"].(map[string]any); ok {
			exprs = append(exprs, promExpr{fmt.Sprintf("variable %v", vm["name"]), q["query"].(string)})
		}
	}
	if !hasDS {
		t.Errorf("no Prometheus datasource variable named datasource")
	}
	for _, p := range dash["panels"].([]any) {
		pm := p.(map[string]any)
		if pm["type"] == "row" {
			continue
		}
		ds, _ := pm["datasource"].(map[string]any)
		if ds["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", pm["title"], pm["datasource"])
		}
		if ts, _ := pm["targets"].([]any); len(ts) == 0 {
			t.Errorf("panel %q has no query", pm["title"])
		}
	}
	used := checkExprNames(t, exprs, known)
	for _, want := range []string{"switchboard_calls_active", "switchboard_calls_total", "switchboard_call_setup_seconds",
		"switchboard_queue_calls_waiting", "switchboard_queue_wait_seconds", "switchboard_agents",
		"switchboard_rtp_packets_lost_total", "switchboard_rtp_packets_total", "switchboard_rtp_jitter_seconds",
		"switchboard_recordings_active", "switchboard_recording_bytes_total", "switchboard_recording_errors_total",
		"switchboard_ticketing_event_lag_seconds", "switchboard_ticketing_spool_events", "switchboard_security_events_total"} {
		if !used[want] {
			t.Errorf("the dashboard shows nothing of %s", want)
		}
	}
	// The cluster view (issue 19): a Cluster row with per-node load (calls and CPU by the node
	// label), the nodes live, the calls closed for a lost node, and queue depth summed over the
	// nodes.
	cluster := map[string]bool{}
	inCluster := false
	for _, p := range dash["panels"].([]any) {
		pm := p.(map[string]any)
		if pm["type"] == "row" {
			inCluster = pm["title"] == "Cluster"
			continue
		}
		if !inCluster {
			continue
		}
		ts, _ := pm["targets"].([]any)
		for _, tg := range ts {
			e, _ := tg.(map[string]any)["expr"].(string)
			cluster[e] = true
		}
	}
	for _, want := range []string{
		"sum by (node) (switchboard_calls_active{", "sum by (node) (rate(switchboard_calls_total{",
		"sum by (node) (rate(process_cpu_seconds_total{", "switchboard_cluster_nodes_live{",
		"switchboard_calls_closed_node_lost_total{", "sum by (queue) (switchboard_queue_calls_waiting{",
	} {
		found := false
		for e := range cluster {
			found = found || strings.Contains(e, want)
		}
		if !found {
			t.Errorf("the dashboard's Cluster row has no query with %q (it has %d queries)", want, len(cluster))
		}
	}
}

// Every alert of deploy/prometheus/alerts.yml names only metrics the gateway registers, carries
// a severity, a summary, a description and a runbook link to its own section of
// docs/OPERATIONS.md, and the alerts issue 9 lists are all there.
func TestAlertRulesMetricsAreExported(t *testing.T) {
	known := registeredMetrics(t)
	rules, exprs := loadAlertRules(t)
	checkExprNames(t, exprs, known)
	ops, err := os.ReadFile(operationsPath)
	if err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert name (recording rules are not expected here)", g.Name)
				continue
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, k)
				}
			}
			anchor := strings.ToLower(r.Alert)
			if !strings.HasSuffix(r.Annotations["runbook_url"], "docs/OPERATIONS.md#"+anchor) {
				t.Errorf("%s: runbook_url %q, want …/docs/OPERATIONS.md#%s", r.Alert, r.Annotations["runbook_url"], anchor)
			}
			if !bytes.Contains(ops, []byte("\n### "+r.Alert+"\n")) {
				t.Errorf("%s: docs/OPERATIONS.md has no section \"### %s\"", r.Alert, r.Alert)
			}
		}
	}
	for _, want := range []string{"SwitchboardDown", "SwitchboardAnswerSeizureRatioFalling", "SwitchboardCallSetupSlow",
		"SwitchboardQueueWaitHigh", "SwitchboardNoAgentsAvailable", "SwitchboardRTPLossHigh", "SwitchboardRecordingErrors",
		"SwitchboardEventLagHigh", "SwitchboardDatabaseUnreachable", "SwitchboardSpoolGrowing", "SwitchboardSecurityEventsSpike"} {
		if !alerts[want] {
			t.Errorf("alerts.yml lacks %s", want)
		}
	}
}

// promtool (Debian prometheus) accepts the shipped scrape configuration and rule file.
func TestPrometheusConfigPassesPromtool(t *testing.T) {
	promtool := requirePeerTool(t, "/usr/bin/promtool", "prometheus")
	for _, args := range [][]string{{"check", "config", promConfigPath}, {"check", "rules", promRulesPath}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// runPrometheus starts Debian's prometheus with a copy of the shipped configuration whose
// scrape target is the given gateway address, the shipped alert rules, and its TSDB in a temp
// dir; it waits for /-/ready and stops the process when the test ends.
func runPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin := requirePeerTool(t, "/usr/bin/prometheus", "prometheus")
	dir := t.TempDir()
	cfg, err := os.ReadFile(promConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	if strings.Count(s, shippedTarget) != 1 {
		t.Fatalf("prometheus.yml should name the dev target %s exactly once", shippedTarget)
	}
	s = strings.Replace(s, shippedTarget, strconv.Quote(target), 1)
	// The shipped 5 s interval would often see no sample of a 3 s call's calls_active: scrape
	// every second here (and time out within it).
	for old, repl := range map[string]string{"scrape_interval: 5s": "scrape_interval: 1s", "scrape_timeout: 4s": "scrape_timeout: 1s"} {
		if !strings.Contains(s, old) {
			t.Fatalf("prometheus.yml lacks %q", old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(promRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput(); err != nil {
			t.Fatalf("promtool check config (test copy): %v\n%s", err, out)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var logs promLogBuffer
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=info")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", tail(logs.String(), 4000))
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited at start: %v\n%s", err, tail(logs.String(), 4000))
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s\n%s", tail(logs.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promLogBuffer is a bytes.Buffer safe for a process's output and the test reading it.
type promLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *promLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *promLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// promAPI calls Prometheus's HTTP API and returns the "data" of a success answer, or the error
// Prometheus gave.
func promAPI(base, path string, q url.Values) (json.RawMessage, error) {
	u := base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("GET %s: %s: %s", path, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// promScalar evaluates an instant query and returns the value of its only sample (ok false when
// the result is empty).
func promScalar(base, query string) (v float64, ok bool, err error) {
	data, err := promAPI(base, "/api/v1/query", url.Values{"query": {query}})
	if err != nil {
		return 0, false, err
	}
	var r struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, false, fmt.Errorf("query %s: %w", query, err)
	}
	if len(r.Result) == 0 {
		return 0, false, nil
	}
	s, _ := r.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	return v, err == nil, err
}

// awaitProm polls an instant query until cond holds for its value, within 60 s.
func awaitProm(t *testing.T, base, query string, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		v, ok, err := promScalar(base, query)
		switch {
		case err != nil:
			last = err.Error()
		case ok && cond(v):
			return v
		default:
			last = fmt.Sprintf("value %v (present %v)", v, ok)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("prometheus: %s did not reach the expected value within 60s; last: %s", query, last)
	return 0
}

// sendScannerRegister sends one REGISTER with a SIP scanner's User-Agent (sip.scanner_user_agents
// default: friendly-scanner), which the gateway drops and counts as a security event.
func sendScannerRegister(t *testing.T, sipPort int) {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", sipPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg := "REGISTER sip:127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-scan-1;rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:100@127.0.0.1>;tag=scan1\r\n" +
		"To: <sip:100@127.0.0.1>\r\n" +
		"Call-ID: scan-1@127.0.0.1\r\n" +
		"CSeq: 1 REGISTER\r\n" +
		"Contact: <sip:100@" + local + ">\r\n" +
		"User-Agent: friendly-scanner\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// grafanaToPromQL replaces the dashboard's Grafana variables with values Prometheus accepts.
func grafanaToPromQL(e string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$instance", ".*").Replace(e)
}

// Debian's prometheus, started with the shipped scrape configuration pointed at a test gateway
// and the shipped alert rules, scrapes the gateway while SIPp places a bridged call: its HTTP
// API then reports the call counted (switchboard_calls_total) and seen live
// (switchboard_calls_active), RTP packets, the ticketing events, and a scanner's REGISTER as a
// security event; the rule groups are loaded and evaluate without error; every expression of the
// dashboard and the rules parses and evaluates on the real PromQL engine; and every metric they
// name is in the gateway's scrape (queue waits aside: this call never queues).
func TestPrometheusScrapesGateway(t *testing.T) {
	requirePeerTool(t, "/usr/bin/prometheus", "prometheus")
	requireSipp(t)
	g := runGateway(t)
	prom := runPrometheus(t, strings.TrimPrefix(g.base, "http://"))

	// The gateway is a healthy target of job switchboard.
	awaitProm(t, prom, `up{job="switchboard"}`, func(v float64) bool { return v == 1 })
	awaitProm(t, prom, `switchboard_build_info{job="switchboard"}`, func(v float64) bool { return v == 1 })

	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
	carrier := startSipp(t, "carrier_rtp.xml", nil, "-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	sendScannerRegister(t, g.sipPort)
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")

	awaitProm(t, prom, `sum(switchboard_calls_total{job="switchboard",direction="inbound",outcome="answered"})`,
		func(v float64) bool { return v == 1 })
	// Scraped during the call, not only after it.
	awaitProm(t, prom, `max_over_time(sum(switchboard_calls_active{job="switchboard",direction="inbound"})[10m:1s])`,
		func(v float64) bool { return v >= 1 })
	awaitProm(t, prom, `sum(switchboard_calls_active{job="switchboard"})`, func(v float64) bool { return v == 0 })
	awaitProm(t, prom, `sum(switchboard_rtp_packets_total{job="switchboard",direction="rx"})`, func(v float64) bool { return v > 50 })
	awaitProm(t, prom, `switchboard_call_setup_seconds_count{job="switchboard"}`, func(v float64) bool { return v >= 1 })
	awaitProm(t, prom, `sum(switchboard_ticketing_events_total{job="switchboard",type="call.ended"})`, func(v float64) bool { return v >= 1 })
	awaitProm(t, prom, `switchboard_security_events_total{job="switchboard",type="scanner_drop"}`, func(v float64) bool { return v >= 1 })
	// The cluster view's per-node CPU names the node through switchboard_build_info (the
	// process collector has no node label).
	awaitProm(t, prom, `count(sum by (node) (rate(process_cpu_seconds_total{job="switchboard"}[1m]) * on (instance) group_left (node) switchboard_build_info{node="test"}))`,
		func(v float64) bool { return v == 1 })

	// The rule groups of alerts.yml are loaded and each rule has evaluated without error.
	rules, _ := loadAlertRules(t)
	var wantGroups []string
	for _, gr := range rules.Groups {
		wantGroups = append(wantGroups, gr.Name)
	}
	sort.Strings(wantGroups)
	deadline := time.Now().Add(60 * time.Second)
	var problems []string
	for {
		problems = nil
		data, err := promAPI(prom, "/api/v1/rules", nil)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		var got []string
		n := 0
		for _, gr := range r.Groups {
			got = append(got, gr.Name)
			for _, rl := range gr.Rules {
				n++
				if rl.Health != "ok" || rl.LastError != "" {
					problems = append(problems, fmt.Sprintf("%s: health %q %s", rl.Name, rl.Health, rl.LastError))
				}
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, wantGroups) {
			problems = append(problems, fmt.Sprintf("rule groups %v, want %v", got, wantGroups))
		}
		if n == 0 {
			problems = append(problems, "no rules loaded")
		}
		if len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules not all loaded and healthy within 60s: %v", problems)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Every expression of the dashboard and the rules parses and evaluates on Prometheus itself.
	_, dexprs := dashboardExprs(t)
	_, aexprs := loadAlertRules(t)
	for _, e := range append(dexprs, aexprs...) {
		if _, err := promAPI(prom, "/api/v1/query", url.Values{"query": {grafanaToPromQL(e.expr)}}); err != nil {
			t.Errorf("%s: %v", e.where, err)
		}
	}

	// Every metric the dashboard and the rules name is in the gateway's scrape.
	data, err := promAPI(prom, "/api/v1/label/__name__/values", url.Values{"match[]": {`{job="switchboard"}`}})
	if err != nil {
		t.Fatal(err)
	}
	var scraped []string
	if err := json.Unmarshal(data, &scraped); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, n := range scraped {
		have[n] = true
	}
	// Not observed by a bridged call: a queue wait is observed when a call leaves a queue. Not
	// on a lone node: a lost_node series of switchboard_calls_closed_node_lost_total exists
	// (at 0) once a node sees another node's heartbeat.
	notYet := map[string]bool{"switchboard_queue_wait_seconds_bucket": true, "switchboard_calls_closed_node_lost_total": true}
	seen := map[string]bool{}
	for _, e := range append(dexprs, aexprs...) {
		for _, n := range metricNameRE.FindAllString(e.expr, -1) {
			if seen[n] {
				continue
			}
			seen[n] = true
			if !have[n] && !notYet[n] {
				t.Errorf("%s (in %s) is not in the gateway's scrape", n, e.where)
			}
		}
	}
}

// The systemd unit is hardened as OPERATIONS.md says, stops later than the default
// shutdown_grace, and passes `systemd-analyze verify` (with ExecStart pointed at a built binary)
// where systemd is present.
func TestDeploySystemdUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile(opsRepoRoot + "/deploy/systemd/switchboard.service")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			lines[k] = v
		}
	}
	for k, want := range map[string]string{"NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "ReadWritePaths": "/var/lib/switchboard", "Restart": "on-failure", "LimitNOFILE": "65536",
		"User": "switchboard", "KillSignal": "SIGTERM"} {
		if lines[k] != want {
			t.Errorf("%s=%q, want %q", k, lines[k], want)
		}
	}
	if _, ok := lines["AmbientCapabilities"]; ok {
		t.Errorf("AmbientCapabilities set: the default ports are above 1024")
	}
	stop, err := time.ParseDuration(lines["TimeoutStopSec"])
	if err != nil || stop <= 30*time.Second {
		t.Errorf("TimeoutStopSec=%q, want more than the default shutdown_grace (30s)", lines["TimeoutStopSec"])
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not present: unit checked by reading only")
	}
	bin := binary(t)
	path := filepath.Join(t.TempDir(), "switchboard.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/switchboard", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The Kamailio front passes `kamailio -c` (Debian kamailio), probes the gateways with OPTIONS,
// and its dispatcher list names gateway nodes in set 1.
func TestDeployKamailioConfigChecks(t *testing.T) {
	kam := requirePeerTool(t, "/usr/sbin/kamailio", "kamailio")
	dir := t.TempDir()
	cfg, err := os.ReadFile(opsRepoRoot + "/deploy/kamailio/kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile(opsRepoRoot + "/deploy/kamailio/dispatcher.list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ds_ping_method", "OPTIONS"`, `ds_select_dst("1"`, "ds_next_dst()", "record_route()", `"/etc/kamailio/dispatcher.list"`,
		// The real source for the gateways' sip.trusted_fronts, a client's copies deleted first;
		// a node's own requests toward carriers get none (it would name a node's address).
		`remove_hf("X-Switchboard-Source");` + "\n\tif (ds_is_from_list(\"1\")) {\n\t\treturn;\n\t}\n\tappend_hf(\"X-Switchboard-Source: $proto $siz:$sp\\r\\n\");"} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("kamailio.cfg lacks %s", want)
		}
	}
	nodes := 0
	for _, l := range strings.Split(string(list), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 || f[0] != "1" || !strings.HasPrefix(f[1], "sip:") {
			t.Errorf("dispatcher.list line %q: want `1 sip:HOST:PORT ...`", l)
		}
		nodes++
	}
	if nodes < 2 {
		t.Errorf("dispatcher.list names %d gateway nodes, want several", nodes)
	}
	lp := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(lp, list, 0o644); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cp, bytes.ReplaceAll(cfg, []byte("/etc/kamailio/dispatcher.list"), []byte(lp)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, kam, "-c", "-f", cp).CombinedOutput(); err != nil {
		t.Errorf("kamailio -c: %v\n%s", err, out)
	}
}

// The Kubernetes manifests parse, run the gateway on the host network with probes on /healthz
// and /readyz and a grace period above shutdown_grace, expose HTTP with a Service scraped by a
// ServiceMonitor, and the ConfigMap's configuration passes `switchboard check-config`; the
// HTTP front (haproxy.yaml) finds the gateway pods through a headless Service that selects
// them, checks /readyz, keeps a page on its pod with the SWITCHBOARD_NODE cookie as
// deploy/haproxy does, mounts its configuration where its container reads it, and that
// configuration passes `haproxy -c`.
func TestDeployKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(opsRepoRoot + "/deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	kinds := map[string]map[string]any{}   // the gateway's, by kind
	objects := map[string]map[string]any{} // every object, by kind/name
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc == nil {
				continue
			}
			kind, _ := doc["kind"].(string)
			if kind == "" || doc["apiVersion"] == nil {
				t.Errorf("%s: a document without kind or apiVersion", f)
			}
			meta, _ := doc["metadata"].(map[string]any)
			name, _ := meta["name"].(string)
			if objects[kind+"/"+name] != nil {
				t.Errorf("%s: a second %s/%s", f, kind, name)
			}
			objects[kind+"/"+name] = doc
			// The gateway's own objects are named switchboard (its ConfigMap
			// switchboard-config); the front's and the headless Service are checked below.
			if name == "switchboard" || name == "switchboard-config" {
				kinds[kind] = doc
			}
		}
	}
	get := func(m any, path ...any) any {
		for _, p := range path {
			switch k := p.(type) {
			case string:
				mm, _ := m.(map[string]any)
				m = mm[k]
			case int:
				l, _ := m.([]any)
				if k >= len(l) {
					return nil
				}
				m = l[k]
			}
		}
		return m
	}
	for _, k := range []string{"Deployment", "ConfigMap", "Service", "ServiceMonitor"} {
		if kinds[k] == nil {
			t.Errorf("no %s in deploy/kubernetes", k)
		}
	}
	d := kinds["Deployment"]
	spec := get(d, "spec", "template", "spec")
	if get(spec, "hostNetwork") != true {
		t.Errorf("Deployment: hostNetwork is not true (the RTP range needs the node's network)")
	}
	if g, _ := get(spec, "terminationGracePeriodSeconds").(int); g <= 30 {
		t.Errorf("terminationGracePeriodSeconds %v, want more than shutdown_grace (30s)", g)
	}
	c := get(spec, "containers", 0)
	if p := get(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("livenessProbe path %v, want /healthz", p)
	}
	if p := get(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readinessProbe path %v, want /readyz", p)
	}
	if p := get(kinds["ServiceMonitor"], "spec", "endpoints", 0, "path"); p != "/metrics" {
		t.Errorf("ServiceMonitor path %v, want /metrics", p)
	}
	if p := get(kinds["Service"], "spec", "ports", 0, "name"); p != get(kinds["ServiceMonitor"], "spec", "endpoints", 0, "port") {
		t.Errorf("ServiceMonitor port does not name the Service's port %v", p)
	}
	conf, _ := get(kinds["ConfigMap"], "data", "switchboard.yaml").(string)
	if !strings.Contains(conf, "__NODE_IP__") {
		t.Fatalf("ConfigMap switchboard.yaml lacks the __NODE_IP__ placeholder the init container replaces")
	}
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(conf, "__NODE_IP__", "192.0.2.10")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary(t), "check-config", path).CombinedOutput(); err != nil {
		t.Errorf("switchboard check-config (the ConfigMap's configuration): %v\n%s", err, out)
	}

	// The HTTP front.
	nodes := objects["Service/switchboard-nodes"]
	if get(nodes, "spec", "clusterIP") != "None" {
		t.Errorf("Service switchboard-nodes: clusterIP %v, want None (headless: DNS names every pod)", get(nodes, "spec", "clusterIP"))
	}
	if sel, want := get(nodes, "spec", "selector", "app.kubernetes.io/name"), get(d, "spec", "template", "metadata", "labels", "app.kubernetes.io/name"); sel == nil || sel != want {
		t.Errorf("Service switchboard-nodes selects %v, the gateway's pods are labelled %v", sel, want)
	}
	hcfg, _ := get(objects["ConfigMap/switchboard-front-config"], "data", "haproxy.cfg").(string)
	for _, want := range []string{
		"option httpchk GET /readyz",
		"cookie SWITCHBOARD_NODE insert indirect nocache httponly attr SameSite=Strict dynamic",
		"option redispatch 1",
		"retry-on conn-failure empty-response",
		"switchboard-nodes.default.svc.cluster.local:8080 check resolvers kube",
	} {
		if !strings.Contains(hcfg, want) {
			t.Errorf("the front's haproxy.cfg lacks %q", want)
		}
	}
	shipped, err := os.ReadFile(opsRepoRoot + "/deploy/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(shipped), "cookie SWITCHBOARD_NODE insert indirect nocache httponly attr SameSite=Strict\n") {
		t.Errorf("deploy/haproxy/haproxy.cfg's cookie line changed: keep the Kubernetes front's (haproxy.yaml) the same")
	}
	front := objects["Deployment/switchboard-front"]
	fc := get(front, "spec", "template", "spec", "containers", 0)
	if args, _ := get(fc, "args").([]any); len(args) == 0 || args[len(args)-1] != "/usr/local/etc/haproxy/haproxy.cfg" {
		t.Errorf("Deployment switchboard-front: args %v, want haproxy -f /usr/local/etc/haproxy/haproxy.cfg", get(fc, "args"))
	}
	if get(fc, "volumeMounts", 0, "mountPath") != "/usr/local/etc/haproxy" ||
		get(front, "spec", "template", "spec", "volumes", 0, "configMap", "name") != "switchboard-front-config" {
		t.Errorf("Deployment switchboard-front does not mount ConfigMap switchboard-front-config at /usr/local/etc/haproxy")
	}
	if get(objects["Service/switchboard-front"], "spec", "ports", 0, "targetPort") != get(fc, "ports", 0, "name") {
		t.Errorf("Service switchboard-front does not target the front's port")
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = "/usr/sbin/haproxy"
	}
	if _, err := os.Stat(haproxy); err != nil {
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatalf("haproxy not installed and SWITCHBOARD_REQUIRE_PEERS is set")
		}
		t.Skip("haproxy not installed (apt-get install haproxy): the front's configuration is not checked")
	}
	hp := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(hp, []byte(hcfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", hp).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c (the front's haproxy.cfg in haproxy.yaml): %v\n%s", err, out)
	}
}

// nodeLabelRE matches the node label of a series in the text format, with the comma that
// joins it to its neighbours.
var nodeLabelRE = regexp.MustCompile(`\bnode="[^"]*",|,node="[^"]*"|\{node="[^"]*"\}`) // not lost_node="…"

// withoutNodeLabel removes the node label from every series of a /metrics body, so tests can
// name a series by its other labels.
func withoutNodeLabel(body string) string {
	return nodeLabelRE.ReplaceAllString(body, "")
}

// A fresh gateway — no call taken, no login tried — already exposes every labelled series of
// a known label value at 0 (queues, trunks, directions, outcomes, security event types,
// reasons, event types), so a dashboard or an alert reads 0 rather than "no data"; every
// metric the dashboard and the alerts name is in its scrape; and every switchboard_ series
// carries the node label of the configuration (node: test).
func TestFreshGatewayMetricsExistAtZeroWithNodeLabel(t *testing.T) {
	g := runGateway(t)
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(raw)

	names := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "switchboard_") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		names[name] = true
		if !strings.Contains(line, `node="test"`) {
			t.Errorf("series without node=\"test\": %s", line)
		}
	}

	plain := withoutNodeLabel(body)
	for _, want := range []string{
		`switchboard_calls_active{direction="inbound"} 0`,
		`switchboard_calls_active{direction="outbound"} 0`,
		`switchboard_calls_total{direction="inbound",outcome="answered"} 0`,
		`switchboard_calls_total{direction="outbound",outcome="failed"} 0`,
		`switchboard_trunk_calls_total{direction="inbound",outcome="abandoned",trunk="carrier"} 0`,
		`switchboard_trunk_calls_total{direction="outbound",outcome="answered",trunk="carrier"} 0`,
		`switchboard_sip_requests_total{method="INVITE"} 0`,
		`switchboard_security_events_total{type="acl_reject"} 0`,
		`switchboard_security_events_total{type="auth_failure"} 0`,
		`switchboard_security_events_total{type="rtp_source_rejected"} 0`,
		`switchboard_security_events_total{type="connection_limited"} 0`,
		`switchboard_security_events_total{type="http_auth_failure"} 0`,
		`switchboard_security_events_total{type="http_auth_throttled"} 0`,
		`switchboard_orphan_byes_total{result="ok"} 0`,
		`switchboard_calls_closed_after_crash_total{outcome="answered"} 0`,
		`switchboard_outbound_refused_total{reason="rate"} 0`,
		`switchboard_queue_calls_waiting{queue="support"} 0`,
		`switchboard_queue_wait_seconds_count{queue="support"} 0`,
		`switchboard_agents{state="available"} 0`,
		`switchboard_rtp_packets_total{direction="rx"} 0`,
		`switchboard_rtp_packets_rejected_total{reason="probation"} 0`,
		`switchboard_recording_packets_dropped_total{reason="late"} 0`,
		`switchboard_ticketing_events_total{type="call.ended"} 0`,
		`switchboard_ticketing_writes_total{kind="comment"} 0`,
	} {
		if !strings.Contains(plain, "\n"+want+"\n") {
			name := want[:strings.IndexByte(want, '{')]
			t.Errorf("fresh /metrics lacks %s; has:\n%s", want, grepLines(plain, name))
		}
	}

	known := registeredMetrics(t)
	_, dexprs := dashboardExprs(t)
	_, aexprs := loadAlertRules(t)
	for _, e := range append(dexprs, aexprs...) {
		if strings.Contains(e.expr, "or on() vector(0)") {
			// A series that only exists once something happened (a label value nobody knows
			// beforehand, like the lost node's name) falls back to 0: no "no data" either.
			continue
		}
		for _, n := range metricNameRE.FindAllString(e.expr, -1) {
			if !names[n] {
				if _, ok := exposedName(n, known); ok {
					t.Errorf("%s (in %s) is not in a fresh gateway's scrape: the panel or alert reads no data", n, e.where)
				}
			}
		}
	}
}
