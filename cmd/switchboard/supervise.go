package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/web"
)

// mountSupervisors serves the supervisor API (monitor, whisper, barge, the wallboard) on the
// page's softphones and the ACD; every action is audited in the ticketing store (on the
// supervisor's node only, once). Supervisors are the supervisors and the admins; a supervisor
// who belongs to groups supervises only the agents of those groups.
func (t *telephony) mountSupervisors(mux *http.ServeMux) error {
	gw := t.gw
	sup, err := t.web.Supervisors(web.SupervisorOptions{
		// ClusterACD: in a cluster a supervisor also reaches a call another node owns (the
		// call's node mixes; the supervisor's audio crosses the internal leg).
		ACD: sip.ClusterACD{ACD: t.acd, SIP: t.sip}, Audit: gw.store, Auth: gw.api.Authenticate, Scope: gw.store,
		Reports: gw.store, ReportOptions: gw.reportOptions(),
		Logger: gw.log.With("component", "supervisors"),
	})
	if err != nil {
		return err
	}
	sup.Register(mux, "/api/v2")
	return nil
}

// reportOptions are the reports' options: each queue's service-level threshold, read live from the
// roster (the configuration's value is the fallback).
func (gw *gateway) reportOptions() ticketing.ReportOptions {
	levels := map[string]int{}
	for name, q := range gw.cfg.Queues {
		levels[name] = q.ServiceLevelSeconds
	}
	reports := ticketing.ReportOptions{ServiceLevels: levels}
	// Queues live in the roster once it is loaded (created and changed through the API, each
	// with its service_level_seconds); the file's value is the fallback of a queue that sets none.
	reports.Levels = func() map[string]int {
		m := gw.roster.Load()
		if m == nil || !m.Loaded() {
			return levels
		}
		return m.ServiceLevels(levels)
	}
	return reports
}

// conferenceDialer adds an external party to an agent's call: sip dials it through the
// outbound trunk (the first with outbound.uri, its caller ID) and the ACD mixes it in.
type conferenceDialer struct{ t *telephony }

func (d conferenceDialer) DialConference(ctx context.Context, agentID int64, callID, to string, ended func()) (string, error) {
	tr, ok := outboundTrunk(d.t.gw.cfg)
	if _, relayed := d.t.sip.RelayedAgent(callID); !ok && !relayed {
		// (A call another node owns is dialled through that node's trunk.)
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "no trunk takes outbound calls on this gateway"}
	}
	id, err := d.t.sip.DialConference(ctx, sip.ConferenceDial{CallID: callID, AgentID: agentID, Number: to,
		Trunk: tr.Name, Line: tr.Outbound.CallerID, Join: d.t.acd.Conference, Ended: ended})
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, sip.ErrDraining) || errors.Is(err, sip.ErrClosed):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "the party cannot be called now: the gateway is shutting down"}
	case errors.Is(err, sip.ErrNoOutboundTrunk):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "no trunk takes outbound calls on the gateway node of this call"}
	case errors.Is(err, sip.ErrOverCapacity):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "the party cannot be called now: the gateway is at its call limit"}
	}
	eid := web.ErrorID()
	d.t.gw.log.Error("conference party not dialled", "agent_id", agentID, "call_id", callID, "error_id", eid, "err", err)
	return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "the party cannot be called now (error id " + eid + ")"}
}
