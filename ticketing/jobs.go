package ticketing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// JobStatus is Zendesk's job status of a bulk request (create_many, create_or_update_many).
// Switchboard does the work before it answers, so a job is completed (or failed) when the
// client first sees it; it is kept a day so that a client polling it, as it polls Zendesk's,
// finds it on any node. URL is filled in by the API.
type JobStatus struct {
	ID       string      `json:"id"`
	URL      string      `json:"url"`
	JobType  string      `json:"job_type"`
	Status   string      `json:"status"`
	Total    int         `json:"total"`
	Progress int         `json:"progress"`
	Message  *string     `json:"message"`
	Results  []JobResult `json:"results"`
	actorID  *int64
}

// JobResult is one item of a job: its index in the request and the record written (ID,
// Status "Created" or "Updated"), or why it was not (Error, Details, as Zendesk reports them).
type JobResult struct {
	Index   int    `json:"index"`
	ID      int64  `json:"id,omitempty"`
	Status  string `json:"status,omitempty"`
	Action  string `json:"action,omitempty"`
	Success bool   `json:"success"`
	Error   string `json:"error,omitempty"`
	Details string `json:"details,omitempty"`
	// ExternalID and Email name the user of a users job, as Zendesk does.
	ExternalID *string `json:"external_id,omitempty"`
	Email      *string `json:"email,omitempty"`
}

// saveJob stores a finished job and forgets jobs older than a day.
func (s *Store) saveJob(ctx context.Context, actor Actor, j *JobStatus) error {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("ticketing: job id: %w", err)
	}
	j.ID = hex.EncodeToString(b[:])
	j.Status = "completed"
	j.Progress = j.Total
	failed := 0
	for _, r := range j.Results {
		if !r.Success {
			failed++
		}
	}
	if failed > 0 {
		msg := fmt.Sprintf("Completed at %d of %d: %d failed", j.Total, j.Total, failed)
		j.Message = &msg
	} else {
		msg := fmt.Sprintf("Completed at %d of %d", j.Total, j.Total)
		j.Message = &msg
	}
	res, err := json.Marshal(j.Results)
	if err != nil {
		return fmt.Errorf("ticketing: job results: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM job_statuses WHERE created_at < clock_timestamp() - interval '1 day'`); err != nil {
		return fmt.Errorf("ticketing: expire jobs: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO job_statuses (id, job_type, status, total, progress, message, results, actor_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, j.ID, j.JobType, j.Status, j.Total, j.Progress, j.Message, res, actorArg(actor))
	if err != nil {
		return dbError("save job", err)
	}
	return nil
}

// Job returns job id as the actor may see it: admins any job, agents their own.
func (s *Store) Job(ctx context.Context, actor Actor, isAdmin bool, id string) (JobStatus, error) {
	var j JobStatus
	var res []byte
	err := s.pool.QueryRow(ctx, `SELECT id, job_type, status, total, progress, message, results, actor_id FROM job_statuses WHERE id = $1`, id).
		Scan(&j.ID, &j.JobType, &j.Status, &j.Total, &j.Progress, &j.Message, &res, &j.actorID)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !isAdmin && (j.actorID == nil || *j.actorID != int64(actor))) {
		return JobStatus{}, notFound("job status %q not found (jobs are kept a day)", id)
	}
	if err != nil {
		return JobStatus{}, fmt.Errorf("ticketing: job %s: %w", id, err)
	}
	if err := json.Unmarshal(res, &j.Results); err != nil {
		return JobStatus{}, fmt.Errorf("ticketing: job %s results: %w", id, err)
	}
	return j, nil
}

// jobError is a failed item's error and details, named as Zendesk names them.
func jobError(err error) (string, string) {
	var e *Error
	if !errors.As(err, &e) {
		return "InternalError", "internal error; see the server log"
	}
	name := "RecordInvalid"
	switch {
	case errors.Is(e.Kind, ErrNotFound):
		name = "RecordNotFound"
	case errors.Is(e.Kind, ErrConflict):
		name = "Conflict"
	case errors.Is(e.Kind, ErrForbidden):
		name = "PermissionDenied"
	case e.duplicate():
		name = "DuplicateValue"
	}
	return name, e.Description
}
