package ticketing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Reports (docs/reports.md): figures per queue and per agent over a period, whole or cut into
// intervals, computed in SQL from the call records (calls) and the agents' state history
// (agent_states). A call counts once it has ended, in the interval it entered its queue (else
// started), so a report over a closed period never changes.

// DefaultServiceLevelSeconds is a queue's service-level threshold when its configuration
// names none: the share of calls answered within it is the queue's service level (the
// industry's "80/20" names 20 seconds).
const DefaultServiceLevelSeconds = 20

// Report intervals (the interval parameter): the figures per 15 minutes, hour or day of the
// time zone asked for; IntervalWhole is one row for the whole period.
const (
	IntervalWhole   = ""
	Interval15m     = "15m"
	IntervalHour    = "hour"
	IntervalDay     = "day"
	maxReportPeriod = 366 * 24 * time.Hour
)

// maxPeriod bounds a report's period by its interval, so that a report has at most about
// 3,000 intervals a queue or agent.
var maxPeriod = map[string]time.Duration{
	IntervalWhole: maxReportPeriod, IntervalDay: maxReportPeriod,
	IntervalHour: 92 * 24 * time.Hour, Interval15m: 31 * 24 * time.Hour,
}

// ReportQuery is what a report covers: the period [From, To), cut into Interval in TimeZone,
// optionally one queue or agent.
type ReportQuery struct {
	From, To time.Time
	Interval string
	// TimeZone is an IANA name ("Europe/Paris"); intervals of an hour or a day start on its
	// local clock. Empty: UTC.
	TimeZone string
	Queue    string
	AgentID  int64
	// ServiceLevelSeconds, when positive, replaces every queue's own threshold.
	ServiceLevelSeconds int
}

// QueueReportRow is one queue over one interval (docs/reports.md defines every figure).
type QueueReportRow struct {
	Queue         string `json:"queue"`
	IntervalStart Time   `json:"interval_start"`
	IntervalEnd   Time   `json:"interval_end"`
	Offered       int64  `json:"offered"`
	Answered      int64  `json:"answered"`
	Abandoned     int64  `json:"abandoned"`
	Voicemail     int64  `json:"voicemail"`
	// Callbacks counts calls whose caller left the queue asking to be called back (outcome
	// callback): offered, neither answered nor abandoned.
	Callbacks int64 `json:"callbacks"`
	Other     int64 `json:"other"`
	// AnsweredWithinSL counts answered calls that waited at most ServiceLevelSeconds.
	AnsweredWithinSL    int64    `json:"answered_within_service_level"`
	ServiceLevelSeconds int      `json:"service_level_seconds"`
	ServiceLevel        *float64 `json:"service_level"`
	ASA                 *float64 `json:"asa"`
	AHT                 *float64 `json:"aht"`
	AvgTimeToAbandon    *float64 `json:"avg_time_to_abandon"`
	MaxTimeToAbandon    *int64   `json:"max_time_to_abandon"`
	// Sums in whole seconds: the waits of answered calls, of abandoned ones, and the handle
	// time of answered calls by part.
	AnswerWaitTime  int64 `json:"answer_wait_time"`
	AbandonWaitTime int64 `json:"abandon_wait_time"`
	TalkTime        int64 `json:"talk_time"`
	HoldTime        int64 `json:"hold_time"`
	WrapUpTime      int64 `json:"wrap_up_time"`
}

// AgentReportRow is one agent over one interval (docs/reports.md defines every figure).
type AgentReportRow struct {
	AgentID       int64    `json:"agent_id"`
	IntervalStart Time     `json:"interval_start"`
	IntervalEnd   Time     `json:"interval_end"`
	Offered       int64    `json:"offered"`
	Answered      int64    `json:"answered"`
	TalkTime      int64    `json:"talk_time"`
	HoldTime      int64    `json:"hold_time"`
	WrapUpTime    int64    `json:"wrap_up_time"`
	AHT           *float64 `json:"aht"`
	// Seconds in each state over the interval (agent_states), and the occupancy they give.
	AvailableTime int64    `json:"available_time"`
	BusyTime      int64    `json:"busy_time"`
	WrapUpState   int64    `json:"wrap_up_state_time"`
	AwayTime      int64    `json:"away_time"`
	Occupancy     *float64 `json:"occupancy"`
}

// ReportOptions configure the reports.
type ReportOptions struct {
	// ServiceLevels maps a queue to its service-level threshold in seconds
	// (queues.NAME.service_level_seconds); a queue not in it takes DefaultServiceLevelSeconds.
	// Its queues are in every queue report, with zeros when they had no calls.
	ServiceLevels map[string]int
	// Levels, when set, is asked for the thresholds at every report instead of ServiceLevels
	// (queues and their service_level_seconds managed live through the roster API).
	Levels func() map[string]int
	// Now is the clock (default time.Now): a state still going counts up to Now.
	Now func() time.Time
}

// resolved returns o with ServiceLevels read from Levels, once per report.
func (o ReportOptions) resolved() ReportOptions {
	if o.Levels != nil {
		o.ServiceLevels = o.Levels()
	}
	return o
}

func (o ReportOptions) threshold(q ReportQuery, queue string) int {
	if q.ServiceLevelSeconds > 0 {
		return q.ServiceLevelSeconds
	}
	if s, ok := o.ServiceLevels[queue]; ok && s > 0 {
		return s
	}
	return DefaultServiceLevelSeconds
}

// CheckReportQuery refuses a query the reports cannot answer, naming the parameter.
func CheckReportQuery(q ReportQuery) error {
	switch {
	case q.From.IsZero():
		return invalidField("from", "is required: an RFC 3339 time such as 2026-12-05T09:00:00Z")
	case q.To.IsZero():
		return invalidField("to", "is required: an RFC 3339 time such as 2026-12-05T10:00:00Z")
	case !q.To.After(q.From):
		return invalidField("to", "must be after from")
	}
	limit, ok := maxPeriod[q.Interval]
	if !ok {
		return invalidField("interval", "must be 15m, hour or day (or absent for the whole period), got %q", q.Interval)
	}
	if q.To.Sub(q.From) > limit {
		return invalidField("to", "the period is longer than %d days, the most a report by %s covers", int(limit/(24*time.Hour)), intervalName(q.Interval))
	}
	if q.ServiceLevelSeconds < 0 || q.ServiceLevelSeconds > 3600 {
		return invalidField("service_level_seconds", "must be from 1 to 3600, got %d", q.ServiceLevelSeconds)
	}
	return nil
}

func intervalName(i string) string {
	if i == IntervalWhole {
		return "the whole period"
	}
	return i
}

// bucketsSQL is the CTE b(b_start, b_end) of a query's intervals: $1 from, $2 to, $3 the time
// zone, $4 the step (” for the whole period). Steps are taken on the zone's local clock and
// each bound converted back, so a day is a local day (23 or 25 hours across a DST change) and
// consecutive intervals meet exactly; the first and last are clipped to the period.
const bucketsSQL = `b AS (
	SELECT greatest(l AT TIME ZONE $3::text, $1::timestamptz) AS b_start,
	       least((l + nullif($4::text, '')::interval) AT TIME ZONE $3::text, $2::timestamptz) AS b_end
	FROM generate_series(date_bin(nullif($4::text, '')::interval, $1::timestamptz AT TIME ZONE $3::text, timestamp '2000-01-01'),
	                     ($2::timestamptz AT TIME ZONE $3::text) - interval '1 microsecond', nullif($4::text, '')::interval) AS l
	WHERE $4::text <> ''
	UNION ALL
	SELECT $1::timestamptz, $2::timestamptz WHERE $4::text = ''
)`

// wrapUpSQL is the wrap-up seconds of call c (the lateral w(secs)): the wrap_up states that
// followed it, each lasting until the agent's next state; a wrap-up still going counts 0.
const wrapUpSQL = `LEFT JOIN LATERAL (
	SELECT round(sum(extract(epoch FROM nx.since - ws.since)))::bigint AS secs
	FROM agent_states ws
	JOIN LATERAL (SELECT n.since FROM agent_states n WHERE n.agent_id = ws.agent_id AND n.since > ws.since
	              ORDER BY n.since LIMIT 1) nx ON true
	WHERE ws.call_id = c.id AND ws.state = 'wrap_up'
) w ON true`

func (q ReportQuery) args() (tz, step string) {
	tz = q.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	switch q.Interval {
	case Interval15m:
		step = "15 minutes"
	case IntervalHour:
		step = "1 hour"
	case IntervalDay:
		step = "1 day"
	}
	return tz, step
}

// reportError maps PostgreSQL's refusal of a time zone name to a 422 naming time_zone.
func reportError(op string, tz string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "22023" && strings.Contains(pe.Message, "time zone") {
		return invalidField("time_zone", "%q is not a time zone name the database knows (use an IANA name such as Europe/Paris)", tz)
	}
	return dbError(op, err)
}

// QueueReport returns the queue figures of q, by interval then queue.
func (s *Store) QueueReport(ctx context.Context, q ReportQuery, opts ReportOptions) ([]QueueReportRow, error) {
	if err := CheckReportQuery(q); err != nil {
		return nil, err
	}
	opts = opts.resolved()
	tz, step := q.args()
	names := make([]string, 0, len(opts.ServiceLevels))
	secs := make([]int64, 0, len(opts.ServiceLevels))
	for n := range opts.ServiceLevels {
		names = append(names, n)
		secs = append(secs, int64(opts.threshold(q, n)))
	}
	rows, err := s.pool.Query(ctx, `WITH `+bucketsSQL+`,
	th AS (SELECT * FROM unnest($6::text[], $7::bigint[]) AS t(queue, secs)),
	c AS (
		SELECT c.queue, coalesce(c.queued_at, c.started_at) AS t, c.outcome,
		       c.queue_time + c.ring_time AS wait, c.talk_time, c.hold_time, coalesce(w.secs, 0) AS wrap,
		       coalesce(th.secs, $8::bigint) AS sl
		FROM calls c `+wrapUpSQL+`
		LEFT JOIN th ON th.queue = c.queue
		WHERE c.ended_at IS NOT NULL AND c.queue IS NOT NULL
		  AND coalesce(c.queued_at, c.started_at) >= $1 AND coalesce(c.queued_at, c.started_at) < $2
		  AND ($5::text = '' OR c.queue = $5::text)
	)
	SELECT b.b_start, b.b_end, c.queue, count(*),
	       count(*) FILTER (WHERE c.outcome = 'answered'),
	       count(*) FILTER (WHERE c.outcome = 'abandoned'),
	       count(*) FILTER (WHERE c.outcome = 'voicemail'),
	       count(*) FILTER (WHERE c.outcome = 'callback'),
	       count(*) FILTER (WHERE c.outcome = 'answered' AND c.wait <= c.sl),
	       coalesce(sum(c.wait) FILTER (WHERE c.outcome = 'answered'), 0)::bigint,
	       coalesce(sum(c.wait) FILTER (WHERE c.outcome = 'abandoned'), 0)::bigint,
	       max(c.wait) FILTER (WHERE c.outcome = 'abandoned'),
	       coalesce(sum(c.talk_time) FILTER (WHERE c.outcome = 'answered'), 0)::bigint,
	       coalesce(sum(c.hold_time) FILTER (WHERE c.outcome = 'answered'), 0)::bigint,
	       coalesce(sum(c.wrap) FILTER (WHERE c.outcome = 'answered'), 0)::bigint
	FROM b JOIN c ON c.t >= b.b_start AND c.t < b.b_end
	GROUP BY b.b_start, b.b_end, c.queue`,
		q.From, q.To, tz, step, q.Queue, names, secs, int64(opts.threshold(q, "")))
	if err != nil {
		return nil, reportError("queue report", tz, err)
	}
	defer rows.Close()
	type key struct {
		start, end int64 // unix microseconds: times scanned in other locations are equal
		queue      string
	}
	got := map[key]QueueReportRow{}
	for rows.Next() {
		var r QueueReportRow
		if err := rows.Scan(&r.IntervalStart, &r.IntervalEnd, &r.Queue, &r.Offered, &r.Answered, &r.Abandoned,
			&r.Voicemail, &r.Callbacks, &r.AnsweredWithinSL, &r.AnswerWaitTime, &r.AbandonWaitTime, &r.MaxTimeToAbandon,
			&r.TalkTime, &r.HoldTime, &r.WrapUpTime); err != nil {
			return nil, dbError("queue report", err)
		}
		got[key{r.IntervalStart.UnixMicro(), r.IntervalEnd.UnixMicro(), r.Queue}] = r
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("queue report", tz, err)
	}
	buckets, err := s.reportBuckets(ctx, q)
	if err != nil {
		return nil, err
	}
	// Every configured queue in every interval (zeros when it had no calls), and every queue
	// that had calls.
	queues := map[string]bool{}
	for n := range opts.ServiceLevels {
		if q.Queue == "" || n == q.Queue {
			queues[n] = true
		}
	}
	for k := range got {
		queues[k.queue] = true
	}
	out := make([]QueueReportRow, 0, len(buckets)*len(queues))
	for _, b := range buckets {
		for _, n := range sortedSet(queues) {
			r, ok := got[key{b[0].UnixMicro(), b[1].UnixMicro(), n}]
			if !ok {
				r = QueueReportRow{Queue: n, IntervalStart: Time{b[0]}, IntervalEnd: Time{b[1]}}
			}
			r.IntervalStart, r.IntervalEnd = Time{r.IntervalStart.UTC()}, Time{r.IntervalEnd.UTC()}
			r.ServiceLevelSeconds = opts.threshold(q, n)
			r.Other = r.Offered - r.Answered - r.Abandoned - r.Voicemail - r.Callbacks
			r.ServiceLevel = ratio(r.AnsweredWithinSL, r.Offered)
			r.ASA = ratio(r.AnswerWaitTime, r.Answered)
			r.AHT = ratio(r.TalkTime+r.HoldTime+r.WrapUpTime, r.Answered)
			r.AvgTimeToAbandon = ratio(r.AbandonWaitTime, r.Abandoned)
			out = append(out, r)
		}
	}
	return out, nil
}

// AgentReport returns the agent figures of q, by interval then agent. Agents with neither
// calls, offers nor state time in the period are left out.
func (s *Store) AgentReport(ctx context.Context, q ReportQuery, opts ReportOptions) ([]AgentReportRow, error) {
	if err := CheckReportQuery(q); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tz, step := q.args()
	type key struct {
		start, end int64 // unix microseconds (an interval a clock skips has no length: end too)
		agent      int64
	}
	got := map[key]*AgentReportRow{}
	row := func(start, end time.Time, agent int64) *AgentReportRow {
		k := key{start.UnixMicro(), end.UnixMicro(), agent}
		if r := got[k]; r != nil {
			return r
		}
		r := &AgentReportRow{AgentID: agent, IntervalStart: Time{start.UTC()}, IntervalEnd: Time{end.UTC()}}
		got[k] = r
		return r
	}
	// Calls the agent answered: counted, with their handle time.
	rows, err := s.pool.Query(ctx, `WITH `+bucketsSQL+`,
	c AS (
		SELECT c.agent_id, coalesce(c.queued_at, c.started_at) AS t, c.talk_time, c.hold_time, coalesce(w.secs, 0) AS wrap
		FROM calls c `+wrapUpSQL+`
		WHERE c.ended_at IS NOT NULL AND c.outcome = 'answered' AND c.agent_id IS NOT NULL
		  AND coalesce(c.queued_at, c.started_at) >= $1 AND coalesce(c.queued_at, c.started_at) < $2
		  AND ($5::bigint = 0 OR c.agent_id = $5::bigint) AND ($6::text = '' OR c.queue = $6::text)
	)
	SELECT b.b_start, b.b_end, c.agent_id, count(*), sum(c.talk_time)::bigint, sum(c.hold_time)::bigint, sum(c.wrap)::bigint
	FROM b JOIN c ON c.t >= b.b_start AND c.t < b.b_end
	GROUP BY b.b_start, b.b_end, c.agent_id`, q.From, q.To, tz, step, q.AgentID, q.Queue)
	if err != nil {
		return nil, reportError("agent report", tz, err)
	}
	for rows.Next() {
		var start, end time.Time
		var agent, n, talk, hold, wrap int64
		if err := rows.Scan(&start, &end, &agent, &n, &talk, &hold, &wrap); err != nil {
			rows.Close()
			return nil, dbError("agent report", err)
		}
		r := row(start, end, agent)
		r.Answered, r.TalkTime, r.HoldTime, r.WrapUpTime = n, talk, hold, wrap
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, reportError("agent report", tz, err)
	}
	// Offers: every call.offered naming the agent, at the time of the offer.
	rows, err = s.pool.Query(ctx, `WITH `+bucketsSQL+`
	SELECT b.b_start, b.b_end, (e.body->>'agent_id')::bigint AS agent, count(*)
	FROM b JOIN call_events e ON e.type = 'call.offered' AND e.at >= b.b_start AND e.at < b.b_end
	WHERE ($5::bigint = 0 OR (e.body->>'agent_id')::bigint = $5::bigint)
	  AND ($6::text = '' OR EXISTS (SELECT 1 FROM calls c WHERE c.id = e.call_id AND c.queue = $6::text))
	GROUP BY 1, 2, 3`, q.From, q.To, tz, step, q.AgentID, q.Queue)
	if err != nil {
		return nil, reportError("agent report", tz, err)
	}
	for rows.Next() {
		var start, end time.Time
		var agent, n int64
		if err := rows.Scan(&start, &end, &agent, &n); err != nil {
			rows.Close()
			return nil, dbError("agent report", err)
		}
		row(start, end, agent).Offered = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, reportError("agent report", tz, err)
	}
	// Time in each state, clipped to the intervals: the state in force at the period's start
	// (the agent's last change before it) and every change in it, each lasting until the
	// next, the last until the period's end or now.
	if q.Queue == "" {
		rows, err = s.pool.Query(ctx, `WITH `+bucketsSQL+`,
		st AS (
			SELECT s.agent_id, s.state, s.since,
			       coalesce(lead(s.since) OVER (PARTITION BY s.agent_id ORDER BY s.since), least($2::timestamptz, $6::timestamptz)) AS until
			FROM agent_states s
			WHERE s.since < $2 AND ($5::bigint = 0 OR s.agent_id = $5::bigint)
			  AND s.since >= coalesce((SELECT max(p.since) FROM agent_states p WHERE p.agent_id = s.agent_id AND p.since <= $1), $1)
		)
		SELECT b.b_start, b.b_end, st.agent_id, st.state,
		       round(sum(extract(epoch FROM least(st.until, b.b_end) - greatest(st.since, b.b_start))))::bigint
		FROM b JOIN st ON st.since < b.b_end AND st.until > b.b_start
		WHERE st.state IN ('available', 'busy', 'wrap_up', 'away')
		GROUP BY 1, 2, 3, 4`, q.From, q.To, tz, step, q.AgentID, opts.Now())
		if err != nil {
			return nil, reportError("agent report", tz, err)
		}
		for rows.Next() {
			var start, end time.Time
			var agent, secs int64
			var state string
			if err := rows.Scan(&start, &end, &agent, &state, &secs); err != nil {
				rows.Close()
				return nil, dbError("agent report", err)
			}
			r := row(start, end, agent)
			switch state {
			case "available":
				r.AvailableTime = secs
			case "busy":
				r.BusyTime = secs
			case "wrap_up":
				r.WrapUpState = secs
			case "away":
				r.AwayTime = secs
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, reportError("agent report", tz, err)
		}
	}
	out := make([]AgentReportRow, 0, len(got))
	for _, r := range got {
		r.AHT = ratio(r.TalkTime+r.HoldTime+r.WrapUpTime, r.Answered)
		r.Occupancy = ratio(r.BusyTime+r.WrapUpState, r.AvailableTime+r.BusyTime+r.WrapUpState)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].IntervalStart.Equal(out[j].IntervalStart.Time) {
			return out[i].IntervalStart.Before(out[j].IntervalStart.Time)
		}
		return out[i].AgentID < out[j].AgentID
	})
	return out, nil
}

// reportBuckets returns the intervals of q, [start, end) each, in order.
func (s *Store) reportBuckets(ctx context.Context, q ReportQuery) ([][2]time.Time, error) {
	tz, step := q.args()
	rows, err := s.pool.Query(ctx, `WITH `+bucketsSQL+` SELECT b_start, b_end FROM b ORDER BY b_start`, q.From, q.To, tz, step)
	if err != nil {
		return nil, reportError("report intervals", tz, err)
	}
	defer rows.Close()
	var out [][2]time.Time
	for rows.Next() {
		var b [2]time.Time
		if err := rows.Scan(&b[0], &b[1]); err != nil {
			return nil, dbError("report intervals", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("report intervals", tz, err)
	}
	return out, nil
}

// ratio is n/d, nil when d is 0 (no calls: no average, not 0).
func ratio(n, d int64) *float64 {
	if d == 0 {
		return nil
	}
	v := float64(n) / float64(d)
	return &v
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fmtSeconds formats a figure for CSV: empty for none.
func fmtFloat(v *float64) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%.4f", *v)
}
