package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// The fault suite: the gateway's bad days, driven through the real binary with real peers.

// faultGateway is a dev-shaped gateway whose database sits behind a proxy the test can cut.
type faultGateway struct {
	*testGateway
	db    string // the real database, for the test's own queries
	proxy *pgtest.Proxy
}

func startFaultGateway(t *testing.T) *faultGateway {
	t.Helper()
	g, p, db := runProxiedGateway(t)
	return &faultGateway{testGateway: g, db: db, proxy: p}
}

// count runs a count query on the real database (never through the proxy).
func (f *faultGateway) count(sql string, args ...any) int {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, f.db)
	if err != nil {
		f.t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// awaitCount polls a count query until it reaches want, within limit.
func (f *faultGateway) awaitCount(what string, want int, limit time.Duration, sql string, args ...any) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	n := -1
	for time.Now().Before(deadline) {
		if n = f.count(sql, args...); n == want {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	f.t.Fatalf("%s: %d, want %d after %v\n%s", what, n, want, limit, tail(f.logText(), 4000))
}

// PostgreSQL goes away for 60 s while SIPp keeps placing bridged, recorded calls and callers
// keep leaving voicemails. Proves: no call is refused or dropped (every SIPp call succeeds),
// every call is recorded and every voicemail taken during the outage, no event is lost (every
// call ends up ended, with its ticket, its recording row and its voice comment), and the spool
// drains at runtime once the database is back.
func TestFault_DatabaseDown60sUnderLoad_NoCallDroppedNoEventLost(t *testing.T) {
	requireSipp(t)
	if testing.Short() {
		t.Skip("60 s outage")
	}
	f := startFaultGateway(t)
	const (
		bridged   = 80 // one a second, 3 s each, to the desk line
		voicemail = 16 // one every five seconds, an 8 s message each
		outage    = 60 * time.Second
	)
	desk := startSippN(t, "desk_echo.xml", nil, bridged, 200*time.Second, "-p", strconv.Itoa(f.deskPort), "-rtp_echo")
	carrier := startSippN(t, "carrier_rtp.xml", nil, bridged, 200*time.Second,
		"-s", "+15550197", "-r", "1", "-rp", "1000", "-l", "10", fmt.Sprintf("127.0.0.1:%d", f.sipPort))
	caller := startSippN(t, "carrier_rtp.xml", map[string]string{`<pause milliseconds="3000"/>`: `<pause milliseconds="8000"/>`},
		voicemail, 200*time.Second, "-s", "+15550198", "-r", "1", "-rp", "5000", "-l", "5", fmt.Sprintf("127.0.0.1:%d", f.sipPort))

	time.Sleep(8 * time.Second) // calls before the outage too: the load is steady, not a test event
	t.Logf("database cut at %s", time.Now().Format(time.RFC3339))
	f.proxy.Down()
	cut := time.Now()
	// While the database is away the gateway keeps answering: /healthz stays up and calls flow.
	time.Sleep(outage - time.Since(cut))
	f.proxy.Up()
	t.Logf("database back at %s", time.Now().Format(time.RFC3339))

	carrier.wait(t, "carrier (bridged load)")
	desk.wait(t, "desk")
	caller.wait(t, "voicemail callers")

	// Every event reached the database and was applied: each call is ended with its ticket.
	f.awaitCount("bridged calls ended with a ticket and a recording", bridged, 120*time.Second,
		`SELECT count(*) FROM calls WHERE to_number = '+15550197' AND state = 'ended' AND outcome = 'answered'
		   AND ticket_id IS NOT NULL AND recording_id IS NOT NULL`)
	f.awaitCount("voicemail calls ended with a ticket and the message", voicemail, 60*time.Second,
		`SELECT count(*) FROM calls WHERE to_number = '+15550198' AND state = 'ended' AND outcome = 'voicemail'
		   AND ticket_id IS NOT NULL AND voicemail_id IS NOT NULL`)
	// Recordings made during the outage have their rows, finished.
	f.awaitCount("recording rows ready", bridged+voicemail, 60*time.Second,
		`SELECT count(*) FROM recordings WHERE state = 'ready' AND duration_ms > 0`)
	// Nothing left unapplied, nothing dead-lettered, the spool drained.
	f.awaitCount("unapplied events", 0, 30*time.Second, `SELECT count(*) FROM call_events WHERE applied_at IS NULL`)
	if n := f.count(`SELECT count(*) FROM call_events_dead`); n != 0 {
		t.Errorf("%d events dead-lettered; an outage must not make any", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.metric("switchboard_ticketing_spool_events") != 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if n := f.metric("switchboard_ticketing_spool_events"); n != 0 {
		t.Errorf("spool still holds %v events", n)
	}
	// Each call's voice comment (or voicemail comment) carries its recording.
	if n := f.count(`SELECT count(*) FROM calls c WHERE c.to_number IN ('+15550197', '+15550198') AND NOT EXISTS (
		SELECT 1 FROM ticket_comments m WHERE m.ticket_id = c.ticket_id AND m.call_id = c.id AND m.recording_id IS NOT NULL)`); n != 0 {
		t.Errorf("%d calls without a voice comment carrying the recording", n)
	}
}
