package sip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The dialog state saved at answer, written out as JSON and read back, lets another Server (the
// process after a crash) end the leg: its BYE carries the dialog's Call-ID and both tags, goes
// to the remote target through the route set in order (RFC 3261 §12.2.1.1), with a CSeq above
// any the first process could have used (§12.2.2); the far end's 200 comes back.
func TestByeOrphanFromSavedDialogState(t *testing.T) {
	answered := make(chan *Call, 1)
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			answered <- c
			<-ctx.Done()
			return nil
		})}}
		o.T1 = 20 * time.Millisecond // the hang-up at the end waits 64*T1 for a BYE nobody answers
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "Record-Route: <sip:127.0.0.1:LPORT;lr>, <sip:proxy2.invalid;lr>\n", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	p.send(fmt.Sprintf("ACK sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKack1\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		g.port(), header(ok, "To")[0], header(ok, "Call-ID")[0]))
	c := <-answered
	states := c.DialogStates()
	if len(states) != 1 {
		t.Fatalf("dialog states of an answered call with one leg: %+v", states)
	}
	raw, err := json.Marshal(states[0])
	if err != nil {
		t.Fatal(err)
	}
	var d DialogState
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}

	// The next process: another Server, which never saw the call.
	g2 := startGateway(t, nil)
	res := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code, err := g2.s.ByeOrphan(ctx, d)
		if err != nil {
			t.Errorf("ByeOrphan: %v", err)
		}
		res <- code
	}()
	bye := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") })
	if bye == "" {
		t.Fatal("no BYE from the saved state")
	}
	if !strings.HasPrefix(bye, "BYE sip:bob@127.0.0.1:"+strconv.Itoa(p.port)) {
		t.Errorf("BYE Request-URI is not the remote target: %s", strings.SplitN(bye, "\r\n", 2)[0])
	}
	if got := header(bye, "Call-ID"); len(got) != 1 || got[0] != header(ok, "Call-ID")[0] {
		t.Errorf("BYE Call-ID %v, want the dialog's %v", got, header(ok, "Call-ID"))
	}
	if from := header(bye, "From")[0]; !strings.Contains(from, "tag="+d.LocalTag) || !strings.Contains(header(ok, "To")[0], "tag="+d.LocalTag) {
		t.Errorf("BYE From %q does not carry our tag from the 200 (%q)", from, header(ok, "To")[0])
	}
	if to := header(bye, "To")[0]; !strings.Contains(to, "tag=abc") {
		t.Errorf("BYE To %q lacks the caller's tag", to)
	}
	routes := header(bye, "Route")
	if want := []string{"<sip:127.0.0.1:" + strconv.Itoa(p.port) + ";lr>", "<sip:proxy2.invalid;lr>"}; strings.Join(routes, ",") != strings.Join(want, ",") {
		t.Errorf("BYE routes %q, want %q", routes, want)
	}
	cseq, _, _ := strings.Cut(header(bye, "CSeq")[0], " ")
	if n, _ := strconv.Atoi(cseq); n <= int(d.LocalCSeq) || header(bye, "CSeq")[0] != cseq+" BYE" {
		t.Errorf("BYE CSeq %q, want above the saved %d", header(bye, "CSeq")[0], d.LocalCSeq)
	}
	p.gw.Port = g2.port() // the response goes to the new process (the Via's sent-by)
	p.send("SIP/2.0 200 OK\nVia: " + header(bye, "Via")[0] + "\nFrom: " + header(bye, "From")[0] + "\nTo: " + header(bye, "To")[0] +
		"\nCall-ID: " + header(bye, "Call-ID")[0] + "\nCSeq: " + header(bye, "CSeq")[0] + "\nContent-Length: 0\n\n")
	select {
	case code := <-res:
		if code != 200 {
			t.Errorf("ByeOrphan = %d, want the far end's 200", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ByeOrphan did not return")
	}
	c.Hangup()

	if _, err := g2.s.ByeOrphan(context.Background(), DialogState{CallID: "x"}); !errors.Is(err, ErrBadDialogState) {
		t.Errorf("ByeOrphan without tags: %v, want ErrBadDialogState", err)
	}
}
