package web

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Rules OB-7, OB-8 and TC-6 on the page, in a real headless Chromium, with the real ticketing
// API and web.Outbound on PostgreSQL behind it: the dial form offers a line picker (two lines
// can call out) with the agent's queue default selected; "Call from this ticket" on a solved
// ticket's view opens the dialer with the requester and the ticket chosen; the dial reaches
// the Dialer with that ticket (TC-6 under default settings) and the line the agent picked.
func TestRule_OB7_OB8_LinePickerAndCallFromTicketInChromium(t *testing.T) {
	node := e2eTools(t)
	f := outboundtest.New(t)
	ctx := context.Background()
	agent, err := f.Store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Agent One",
		Email: "agent1@example.com", Role: ticketing.RoleAgent, Password: "agentpass"})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{})
	session := func(r *http.Request) (int64, bool) {
		_, ok := h.srv.Authenticate(r)
		return agent.ID, ok
	}
	ticketing.NewAPI(f.Store, ticketing.APIOptions{Session: session}).Register(h.mux, "/api/v2")
	dialled := make(chanDialer, 4)
	out := &Outbound{Store: f.Store, Dialer: dialled, Lines: testLines, Roster: roster{agent.ID: {"sales"}}}
	h.mux.Handle("POST /api/v2/calls", out.Handler(session))
	h.mux.Handle("GET /api/v2/lines", out.LinesHandler(session))

	artifacts, err := filepath.Abs(filepath.Join("..", ".data", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 100*time.Second)
	defer rcancel()
	cmd := exec.CommandContext(rctx, node, "--test", "--test-reporter=spec", "outbound.test.mjs")
	cmd.Dir = "e2e"
	cmd.Env = append(os.Environ(), "SOFTPHONE_URL="+h.http.URL, "ARTIFACTS_DIR="+artifacts, "CHROMIUM_PATH="+chromiumPath,
		"TICKET="+strconv.FormatInt(f.Solved.ID, 10), "DIALLED_NUMBER="+f.ContactNumber, "CONTACT_NAME="+f.Contact.Name,
		"DEFAULT_LINE=+15550160", "PICKED_LINE=+15550150")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // node and the browser it starts: one group
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a browser left behind by a crash
	}
	t.Logf("node --test output:\n%s", buf.String())
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
	select {
	case d := <-dialled:
		if d.TicketID == nil || *d.TicketID != f.Solved.ID || d.To != f.ContactNumber || d.ContactID != f.Contact.ID ||
			d.Line.Number != "+15550150" || d.TicketChoice != ticketing.TicketChoiceExisting {
			t.Fatalf("dialled %+v, want ticket %d to %s from +15550150", d, f.Solved.ID, f.ContactNumber)
		}
	default:
		t.Fatal("nothing was dialled")
	}
	if len(dialled) != 0 {
		t.Fatalf("%d more dials", len(dialled))
	}
}
