package ticketing

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// seesAll reports whether p reads every agent's report rows and call records (supervisors and
// admins, docs/reports.md); an agent reads only their own.
func seesAll(p Principal) bool { return p.IsSupervisor() }

// RegisterReports mounts the reports under prefix (docs/reports.md): GET /reports/queues,
// GET /reports/agents and GET /reports/calls (the call records of a period), each in JSON or
// CSV (format=csv or Accept: text/csv).
func (a *API) RegisterReports(mux *http.ServeMux, prefix string, opts ReportOptions) {
	prefix = strings.TrimSuffix(prefix, "/")
	mux.Handle("GET "+prefix+"/reports/queues", a.handle(RoleAgent, func(w http.ResponseWriter, r *http.Request, p Principal) error {
		return a.queueReport(w, r, p, opts)
	}))
	mux.Handle("GET "+prefix+"/reports/agents", a.handle(RoleAgent, func(w http.ResponseWriter, r *http.Request, p Principal) error {
		return a.agentReport(w, r, p, opts)
	}))
	mux.Handle("GET "+prefix+"/reports/calls", a.handle(RoleAgent, a.reportCalls))
}

// wantsCSV reports whether the client asked for CSV: format=csv, or Accept naming text/csv
// (and not format=json). Any other format is refused, naming the parameter.
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, invalidField("format", "must be json or csv, got %q", f)
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" {
			return true, nil
		}
	}
	return false, nil
}

// reportQuery reads the parameters every report takes.
func reportQuery(r *http.Request) (ReportQuery, error) {
	v := r.URL.Query()
	var q ReportQuery
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(f.name)
		if s == "" {
			continue // CheckReportQuery says it is required
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, invalidField(f.name, "must be an RFC 3339 time such as 2026-12-05T09:00:00Z, got %q", s)
		}
		*f.to = t.UTC()
	}
	q.Interval = v.Get("interval")
	q.TimeZone = v.Get("time_zone")
	if q.TimeZone != "" {
		if _, err := time.LoadLocation(q.TimeZone); err != nil || len(q.TimeZone) > 64 || strings.ContainsAny(q.TimeZone, "\x00 ") {
			return q, invalidField("time_zone", "must be an IANA time zone name such as Europe/Paris, got %q", q.TimeZone)
		}
	}
	q.Queue = v.Get("queue")
	if len(q.Queue) > 200 || strings.IndexFunc(q.Queue, unicode.IsControl) >= 0 || !utf8.ValidString(q.Queue) {
		return q, invalidField("queue", "must be a queue name: at most 200 characters of UTF-8 text, no control characters")
	}
	if s := v.Get("agent_id"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return q, invalidField("agent_id", "must be a user id, got %q", s)
		}
		q.AgentID = id
	}
	if s := v.Get("service_level_seconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 3600 {
			return q, invalidField("service_level_seconds", "must be a whole number from 1 to 3600, got %q", s)
		}
		q.ServiceLevelSeconds = n
	}
	return q, CheckReportQuery(q)
}

// reportMeta is the report's own description in a JSON answer.
func reportMeta(q ReportQuery) map[string]any {
	tz := q.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	return map[string]any{"from": Time{q.From}, "to": Time{q.To}, "interval": q.Interval, "time_zone": tz}
}

func (a *API) queueReport(w http.ResponseWriter, r *http.Request, p Principal, opts ReportOptions) error {
	csvOut, err := wantsCSV(r)
	if err != nil {
		return err
	}
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	rows, err := a.store.QueueReport(r.Context(), q, opts)
	if err != nil {
		return err
	}
	if !csvOut {
		writeJSON(w, http.StatusOK, map[string]any{"report": reportMeta(q), "queues": rows})
		return nil
	}
	return writeCSV(w, "queues.csv", []string{"queue", "interval_start", "interval_end", "offered", "answered", "abandoned",
		"voicemail", "other", "answered_within_service_level", "service_level_seconds", "service_level", "asa", "aht",
		"avg_time_to_abandon", "max_time_to_abandon", "answer_wait_time", "abandon_wait_time", "talk_time", "hold_time", "wrap_up_time", "callbacks"},
		len(rows), func(i int) []string {
			x := rows[i]
			max := ""
			if x.MaxTimeToAbandon != nil {
				max = strconv.FormatInt(*x.MaxTimeToAbandon, 10)
			}
			return []string{csvSafe(x.Queue), csvTime(x.IntervalStart), csvTime(x.IntervalEnd), itoa(x.Offered), itoa(x.Answered),
				itoa(x.Abandoned), itoa(x.Voicemail), itoa(x.Other), itoa(x.AnsweredWithinSL), strconv.Itoa(x.ServiceLevelSeconds),
				fmtFloat(x.ServiceLevel), fmtFloat(x.ASA), fmtFloat(x.AHT), fmtFloat(x.AvgTimeToAbandon), max,
				itoa(x.AnswerWaitTime), itoa(x.AbandonWaitTime), itoa(x.TalkTime), itoa(x.HoldTime), itoa(x.WrapUpTime), itoa(x.Callbacks)}
		})
}

func (a *API) agentReport(w http.ResponseWriter, r *http.Request, p Principal, opts ReportOptions) error {
	csvOut, err := wantsCSV(r)
	if err != nil {
		return err
	}
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	if !seesAll(p) {
		if q.AgentID != 0 && q.AgentID != p.UserID {
			return &Error{Kind: ErrForbidden, Description: "agents see their own report only: leave agent_id out or give your own id"}
		}
		q.AgentID = p.UserID
	}
	rows, err := a.store.AgentReport(r.Context(), q, opts)
	if err != nil {
		return err
	}
	if !csvOut {
		writeJSON(w, http.StatusOK, map[string]any{"report": reportMeta(q), "agents": rows})
		return nil
	}
	return writeCSV(w, "agents.csv", []string{"agent_id", "interval_start", "interval_end", "offered", "answered", "talk_time",
		"hold_time", "wrap_up_time", "aht", "available_time", "busy_time", "wrap_up_state_time", "away_time", "occupancy"},
		len(rows), func(i int) []string {
			x := rows[i]
			return []string{itoa(x.AgentID), csvTime(x.IntervalStart), csvTime(x.IntervalEnd), itoa(x.Offered), itoa(x.Answered),
				itoa(x.TalkTime), itoa(x.HoldTime), itoa(x.WrapUpTime), fmtFloat(x.AHT), itoa(x.AvailableTime), itoa(x.BusyTime),
				itoa(x.WrapUpState), itoa(x.AwayTime), fmtFloat(x.Occupancy)}
		})
}

// reportCalls answers GET /reports/calls?from&to: the call records of a period (by start).
func (a *API) reportCalls(w http.ResponseWriter, r *http.Request, p Principal) error {
	csvOut, err := wantsCSV(r)
	if err != nil {
		return err
	}
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	f := CallExport{Since: q.From, Until: q.To, Queue: q.Queue, AgentID: q.AgentID}
	if !seesAll(p) {
		if q.AgentID != 0 && q.AgentID != p.UserID {
			return &Error{Kind: ErrForbidden, Description: "agents see their own calls only: leave agent_id out or give your own id"}
		}
		f.AgentID = p.UserID
	}
	return a.exportCalls(w, r, f, csvOut)
}

// exportCallsCSV answers GET /calls?format=csv (or Accept: text/csv): the filters of GET /calls
// (from, to, line, outcome, since) and until; since is required (a bounded period). Agents get
// their own calls. It is called by the GET /calls handler.
func (a *API) exportCallsCSV(w http.ResponseWriter, r *http.Request, p Principal) error {
	v := r.URL.Query()
	f := CallExport{From: v.Get("from"), To: v.Get("to"), Line: v.Get("line"), Outcome: v.Get("outcome")}
	for _, x := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := v.Get(x.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return invalidField(x.name, "must be an RFC 3339 time such as 2026-12-05T09:00:00Z, got %q", s)
			}
			*x.to = t.UTC()
		}
	}
	if f.Since.IsZero() {
		return invalidField("since", "is required for a CSV export: the start of the period (RFC 3339)")
	}
	if f.Until.IsZero() {
		f.Until = time.Now().UTC()
	}
	if !f.Until.After(f.Since) {
		return invalidField("until", "must be after since")
	}
	if f.Until.Sub(f.Since) > maxReportPeriod {
		return invalidField("until", "the period is longer than 366 days: export it in parts")
	}
	if !seesAll(p) {
		f.AgentID = p.UserID
	}
	return a.exportCalls(w, r, f, true)
}

// callCSVHeader is the columns of a call-record export.
var callCSVHeader = []string{"id", "direction", "from", "to", "line", "queue", "agent_id", "ticket_id", "requester_id",
	"outcome", "abandoned_where", "started_at", "queued_at", "answered_at", "ended_at", "ivr_time", "queue_time", "ring_time",
	"talk_time", "hold_time", "transfer_time", "wrap_up_time", "duration", "hangup_by", "hangup_cause", "trunk"}

// exportCalls streams the call records f selects, oldest first, as CSV or JSON.
func (a *API) exportCalls(w http.ResponseWriter, r *http.Request, f CallExport, csvOut bool) error {
	if f.Outcome != "" && !validOutcome(f.Outcome) {
		return invalidField("outcome", "must be answered, abandoned, voicemail, no_answer, failed or rejected, got %q", f.Outcome)
	}
	// The export may outlast the API's request timeout: it is bounded by its period instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Minute)
	defer cancel()
	go func() { // the client going away still ends it
		select {
		case <-r.Context().Done():
			if r.Context().Err() == context.Canceled {
				cancel()
			}
		case <-ctx.Done():
		}
	}()
	var cw *csv.Writer
	started := false
	n := 0
	err := a.store.ExportCalls(ctx, f, func(c ExportedCall) error {
		if !started {
			started = true
			if csvOut {
				setCSVHeaders(w, "calls.csv")
				cw = csv.NewWriter(w)
				if err := cw.Write(callCSVHeader); err != nil {
					return err
				}
			} else {
				startJSONExport(w, f)
			}
		}
		n++
		if csvOut {
			return cw.Write(c.csvRecord())
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if n > 1 {
			b = append([]byte{','}, b...)
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil && !started {
		return err
	}
	if err != nil {
		// Headers are out: the client sees a cut file (a JSON body that does not parse);
		// the cause goes to the log.
		a.opts.Logger.Error("ticketing api: call export cut short", "path", r.URL.Path, "err", err)
		return nil
	}
	if !started {
		if csvOut {
			setCSVHeaders(w, "calls.csv")
			cw = csv.NewWriter(w)
			_ = cw.Write(callCSVHeader)
		} else {
			startJSONExport(w, f)
		}
	}
	if csvOut {
		cw.Flush()
	} else {
		_, _ = w.Write([]byte("]}\n"))
	}
	return nil
}

// startJSONExport writes the JSON export's status, headers and opening: the calls follow,
// streamed, and "]}" closes it.
func startJSONExport(w http.ResponseWriter, f CallExport) {
	head, _ := json.Marshal(map[string]any{"from": Time{f.Since}, "to": Time{f.Until}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(append([]byte(`{"report":`), head...), []byte(`,"calls":[`)...))
}

func setCSVHeaders(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8; header=present")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.WriteHeader(http.StatusOK)
}

// writeCSV writes a header and n records (RFC 4180).
func writeCSV(w http.ResponseWriter, name string, header []string, n int, rec func(i int) []string) error {
	setCSVHeaders(w, name)
	cw := csv.NewWriter(w)
	_ = cw.Write(header)
	for i := 0; i < n; i++ {
		_ = cw.Write(rec(i))
	}
	cw.Flush()
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func csvTime(t Time) string { return t.UTC().Format(time.RFC3339) }

// csvSafe keeps a spreadsheet from reading a value from outside (a caller's number, a queue
// name) as a formula: a leading =, +, -, @, tab or CR gets a quote in front (OWASP's CSV
// injection advice). E.164 numbers keep their "+": they are the one form a number takes here.
func csvSafe(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '-', '@', '\t', '\r':
		return "'" + s
	case '+':
		if _, err := strconv.ParseUint(s[1:], 10, 64); err == nil {
			return s
		}
		return "'" + s
	}
	return s
}

func validOutcome(o string) bool {
	switch o {
	case "answered", "abandoned", "voicemail", "no_answer", "failed", "rejected":
		return true
	}
	return false
}
