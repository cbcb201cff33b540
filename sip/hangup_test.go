package sip

import (
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// The call record keeps who hung up, how, the final SIP status of the setup, the trunk and the
// SIP Call-ID of every leg: call.started carries the trunk and the carrier's Call-ID,
// call.ended hangup_by, cause, sip_status, sip_reason and sip_call_ids (carrier first).
func TestCallEndedSaysWhoHungUpAndKeepsEachLegsCallID(t *testing.T) {
	check := func(t *testing.T, evs []callevent.Event, by, cause string, status int, legs int) {
		t.Helper()
		st := lastOf(evs, callevent.EventStarted)
		end := lastOf(evs, callevent.EventEnded)
		if st == nil || end == nil {
			t.Fatalf("events %v", eventTypes(evs))
		}
		if st.Trunk != "carrier" || st.SIPCallID == "" {
			t.Errorf("call.started trunk %q sip_call_id %q, want carrier and the carrier's Call-ID", st.Trunk, st.SIPCallID)
		}
		if end.HangupBy != by || end.Cause != cause || end.SIPStatus != status || end.SIPReason == "" {
			t.Errorf("call.ended hangup_by %q cause %q sip %d %q, want %s %s %d", end.HangupBy, end.Cause, end.SIPStatus, end.SIPReason, by, cause, status)
		}
		ids := end.SIPCallIDs.List()
		if len(ids) != legs || len(ids) > 0 && ids[0] != st.SIPCallID {
			t.Errorf("call.ended sip_call_ids %q, want %d, the carrier's (%s) first", ids, legs, st.SIPCallID)
		}
		if len(ids) == 2 && ids[0] == ids[1] {
			t.Errorf("both legs have one Call-ID: %q", ids)
		}
		if errs := callevent.Validate(*end); len(errs) != 0 {
			t.Errorf("call.ended invalid: %v", errs)
		}
	}
	t.Run("caller BYE", func(t *testing.T) {
		b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, nil)
		b.carrier(t, "uac_rtp.xml").wait(t)
		b.desk.wait(t)
		check(t, b.g.sink.waitEnded(t, 20*time.Second), callevent.HangupByCaller, callevent.CauseBye, 200, 2)
	})
	t.Run("callee BYE", func(t *testing.T) {
		b := newBridgeSetup(t, "uas_bye.xml", []string{"-rtp_echo"}, nil)
		b.carrier(t, "uac_wait_bye.xml").wait(t)
		b.desk.wait(t)
		check(t, b.g.sink.waitEnded(t, 20*time.Second), callevent.HangupByCallee, callevent.CauseBye, 200, 2)
	})
	t.Run("CANCEL", func(t *testing.T) {
		b := newBridgeSetup(t, "uas_cancel.xml", nil, nil)
		b.carrier(t, "uac_cancel.xml").wait(t)
		b.desk.wait(t)
		check(t, b.g.sink.waitEnded(t, 20*time.Second), callevent.HangupByCaller, callevent.CauseCancel, 487, 2)
	})
	t.Run("media timeout", func(t *testing.T) {
		evs, ok := mediaTimeoutCall(t)
		check(t, evs, callevent.HangupByGateway, callevent.CauseMediaTimeout, 200, 1)
		if id := lastOf(evs, callevent.EventStarted).SIPCallID; id != header(ok, "Call-ID")[0] {
			t.Errorf("sip_call_id %q, want the INVITE's %q", id, header(ok, "Call-ID")[0])
		}
	})
}
