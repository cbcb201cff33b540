package main

import (
	"net/http"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/web"
)

// mountSupervisors serves the supervisor API (monitor, whisper, barge, the wallboard) on the
// page's softphones and the ACD; every action is audited in the ticketing store. Supervisors
// are the admins.
func (t *telephony) mountSupervisors(mux *http.ServeMux) error {
	gw := t.gw
	sup, err := t.web.Supervisors(web.SupervisorOptions{
		ACD: t.acd, Audit: gw.store, Auth: gw.api.Authenticate,
		Reports: gw.store, ReportOptions: reportOptions(gw.cfg),
		Logger: gw.log.With("component", "supervisors"),
	})
	if err != nil {
		return err
	}
	sup.Register(mux, "/api/v2")
	return nil
}

// reportOptions are the reports' options from the configuration: each queue's service-level
// threshold.
func reportOptions(cfg *config.Config) ticketing.ReportOptions {
	levels := map[string]int{}
	for name, q := range cfg.Queues {
		levels[name] = q.ServiceLevelSeconds
	}
	return ticketing.ReportOptions{ServiceLevels: levels}
}
