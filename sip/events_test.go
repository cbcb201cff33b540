package sip

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// stallSink holds every Emit until release is closed (a sink stuck behind a slow database),
// then records like fakeSink.
type stallSink struct {
	*fakeSink
	release chan struct{}
}

func (s *stallSink) Emit(ctx context.Context, e callevent.Event) error {
	<-s.release
	return s.fakeSink.Emit(ctx, e)
}

// reinvite sends an in-dialog re-INVITE with the given SDP direction from p on the dialog that
// ok (our 200 to the initial INVITE) set up, and ACKs our 200. Our 500 (the previous 2xx's ACK
// not processed yet, RFC 3261 §14.2) is retried with the next CSeq. It returns the last CSeq used.
func (p *udpPeer) reinvite(gwPort int, ok string, cseq int, dir string) int {
	p.t.Helper()
	sdp := pcmuOffer + "a=" + dir + "\n"
	for range 50 {
		p.send(fmt.Sprintf("INVITE sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKri%d\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: %d INVITE\nContact: <sip:bob@127.0.0.1:LPORT>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
			gwPort, time.Now().UnixNano(), header(ok, "To")[0], header(ok, "Call-ID")[0], cseq, len(strings.ReplaceAll(sdp, "\n", "\r\n")), sdp))
		want := fmt.Sprintf("CSeq: %d INVITE", cseq)
		r := p.recvUntil(5*time.Second, func(m string) bool {
			return strings.HasPrefix(m, "SIP/2.0 ") && strings.Contains(m, want) && statusCode(m) >= 200
		})
		switch statusCode(r) {
		case 200:
			p.send(ackFor(gwPort, ok, cseq))
			return cseq
		case 500:
			time.Sleep(20 * time.Millisecond)
			cseq++
		default:
			p.t.Fatalf("re-INVITE %d (%s): %q", cseq, dir, r)
		}
	}
	p.t.Fatalf("re-INVITE (%s) refused 50 times", dir)
	return cseq
}

// TestEventQueueNeverDropsWhileSinkStalls: while the sink is stuck, a call emits far more than
// 64 events (35 holds and 35 resumes by re-INVITE); once the sink moves again every event
// arrives, call.ended last, seq 1..N without a gap. (The old per-call queue held 64 events and
// dropped the rest, call.ended included.)
func TestEventQueueNeverDropsWhileSinkStalls(t *testing.T) {
	sink := &stallSink{fakeSink: newFakeSink(), release: make(chan struct{})}
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
		o.Sink = sink
		o.EmitTimeout = time.Minute // the stall must not turn into a retry
	})
	released := false
	defer func() {
		if !released {
			close(sink.release)
		}
	}()
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200")
	}
	p.send(ackFor(g.port(), ok, 1))
	const cycles = 35
	cseq := 1
	for range cycles {
		cseq = p.reinvite(g.port(), ok, cseq+1, "sendonly")
		cseq = p.reinvite(g.port(), ok, cseq+1, "sendrecv")
	}
	cseq++
	p.send(byeFor(g.port(), ok, cseq))
	if r := p.recvUntil(5*time.Second, func(m string) bool { return strings.Contains(m, fmt.Sprintf("CSeq: %d BYE", cseq)) }); statusCode(r) != 200 {
		t.Fatalf("BYE: %d", statusCode(r))
	}
	close(sink.release)
	released = true
	evs := sink.waitEnded(t, 20*time.Second)
	want := 2 + 2*cycles + 1 // started, answered, held/resumed pairs, ended
	if len(evs) != want {
		t.Fatalf("got %d events, want %d: %v", len(evs), want, eventTypes(evs))
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d (%s) has seq %d: order or gap broken", i, e.Type, e.Seq)
		}
	}
	if last := evs[len(evs)-1]; last.Type != callevent.EventEnded || last.Outcome != callevent.OutcomeAnswered {
		t.Errorf("last event = %s %s, want call.ended answered", last.Type, last.Outcome)
	}
}

// TestEventQueueConcurrentPushesKeepSeqOrder: eight goroutines push while the queue delivers
// (a drain goroutine started on demand, one at a time); delivery sees seq 1..N in order with
// no gap, call.ended (pushLast) last, done closed after it, and a push after it is refused.
// Run under -race.
func TestEventQueueConcurrentPushesKeepSeqOrder(t *testing.T) {
	q := newEventQueue()
	var seq atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				q.push(callevent.Event{Type: callevent.EventHeld}, &seq)
			}
		}()
	}
	got := make(chan []int64, 1)
	var seqs []int64 // appended by the queue's drain goroutines, one at a time
	done := q.start(func(batch []callevent.Event) {
		for _, e := range batch {
			seqs = append(seqs, e.Seq)
		}
	})
	go func() {
		<-done
		got <- seqs
	}()
	wg.Wait()
	if !q.pushLast(callevent.Event{Type: callevent.EventEnded}, &seq) {
		t.Fatal("pushLast refused")
	}
	if q.push(callevent.Event{Type: callevent.EventHeld}, &seq) {
		t.Error("push after call.ended accepted")
	}
	select {
	case seqs := <-got:
		if len(seqs) != 8*500+1 {
			t.Fatalf("reader saw %d events, want %d", len(seqs), 8*500+1)
		}
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Fatalf("event %d has seq %d", i, s)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not finish after pushLast")
	}
}
