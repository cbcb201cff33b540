package ticketing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/webhooks"
)

// zendeskDir holds the node-zendesk script and its package.json (node-zendesk pinned).
const zendeskDir = "testdata/zendesk"

// nodeZendesk returns node's path with node-zendesk installed in testdata/zendesk (npm ci when
// missing, as web/e2e installs playwright-core). Without node or npm the test skips, or fails
// under SWITCHBOARD_REQUIRE_PEERS (make test installs both).
func nodeZendesk(t *testing.T) string {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatalf(format+" (SWITCHBOARD_REQUIRE_PEERS is set)", args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node not installed: apt-get install nodejs npm")
	}
	if _, err := os.Stat(filepath.Join(zendeskDir, "node_modules", "node-zendesk", "package.json")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			skip("npm not installed: apt-get install npm")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = zendeskDir
		if out, err := cmd.CombinedOutput(); err != nil {
			skip("npm ci in %s failed: %v\n%s", zendeskDir, err, out)
		}
	}
	return node
}

// TestZendeskClient_NodeZendeskWorksUnchanged drives the API with node-zendesk 6, the most
// used Zendesk client, configured as an integration configures it for Zendesk (endpointUri,
// username and API token, nothing else changed), through users, identities, tickets,
// comments, merges, search, pagination (both ways), bulk jobs, incremental exports, uploads
// and attachments, webhooks receiving ticket events (signed, in order, retried) and errors:
// every call of compat.test.mjs must behave as Zendesk's API does. Before wave 2, 38 of 40
// such calls failed (the ".json" suffix alone answered 404); before the second wave uploads
// answered 404, page[before] 422, and a webhook got no ticket event.
func TestZendeskClient_NodeZendeskWorksUnchanged(t *testing.T) {
	node := nodeZendesk(t)
	pool := pgtest.Pool(t)
	store := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	// next_page and links.next are absolute, as Zendesk's are: node-zendesk follows them as given.
	api := ticketing.NewAPI(store, ticketing.APIOptions{PublicURL: srv.URL})
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	// Webhooks, delivered by a dispatcher polling often and retrying fast.
	dispatcher, err := webhooks.NewDispatcher(webhooks.Options{Pool: pool, Node: "zd", PollInterval: 50 * time.Millisecond,
		InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	webhooks.NewAPI(webhooks.APIOptions{Pool: pool, Auth: api, Changed: dispatcher.Wake, PublicURL: srv.URL}).Register(mux, "/api/v2")
	dctx, stopDispatch := context.WithCancel(context.Background())
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		dispatcher.Run(dctx)
	}()
	t.Cleanup(func() {
		stopDispatch()
		<-dispatched
	})
	handler = ticketing.ZendeskPaths("/api/v2", mux)

	ctx := context.Background()
	admin, err := store.EnsureUser(ctx, "admin@example.com", "Admin", ticketing.RoleAdmin, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := store.EnsureUser(ctx, "agent1@example.com", "Agent One", ticketing.RoleAgent, agentPass)
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.CreateAPIToken(ctx, admin.ID, "node-zendesk")
	if err != nil {
		t.Fatal(err)
	}
	voice := zendeskVoiceTicket(t, store, agent.ID)

	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "--test", "--test-reporter=spec", "compat.test.mjs")
	cmd.Dir = zendeskDir
	cmd.Env = append(os.Environ(),
		"ZD_ENDPOINT_URI="+srv.URL+"/api/v2",
		"ZD_EMAIL=admin@example.com", "ZD_TOKEN="+token, "ZD_PASSWORD="+adminPass,
		"ZD_AGENT_EMAIL=agent1@example.com", "ZD_AGENT_PASSWORD="+agentPass,
		"ZD_VOICE_TICKET="+strconv.FormatInt(voice, 10))
	out, err := cmd.CombinedOutput()
	t.Logf("node-zendesk:\n%s", out)
	if err != nil {
		t.Fatalf("node-zendesk script failed: %v", err)
	}
}

// zendeskVoiceTicket makes a ticket as the events engine makes one for an answered inbound
// call (via voice, a voice comment with its recording), for the script to read as Zendesk
// Talk's: via.source {from, to, rel} and the comment's call under data.
func zendeskVoiceTicket(t *testing.T, store *ticketing.Store, agentID int64) int64 {
	t.Helper()
	ctx := context.Background()
	caller, err := store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Caller", Phone: "+12125550150"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{
		Subject: "Call from +12125550150", RequesterID: caller.ID, OriginPhone: "+12125550150", AssigneeID: &agentID,
		Via: ticketing.Via{Channel: ticketing.ChannelVoice, Source: "inbound"},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := int64(42)
	started := time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)
	if _, err := store.AppendVoiceComment(ctx, tk.ID, ticketing.VoiceComment{
		Body: "Inbound call from +12125550150", CallID: "call-zd-1", From: "+12125550150", To: "+15550100",
		StartedAt: started, Duration: &d, AnsweredByID: &agentID, Location: "New York, NY",
		RecordingID: "rec-zd-1", RecordingURL: "/api/v2/recordings/rec-zd-1",
	}); err != nil {
		t.Fatal(err)
	}
	return tk.ID
}
