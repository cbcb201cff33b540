package ticketing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// maxBulk is the most records one show_many or create_many request names, as in Zendesk.
const maxBulk = 100

// readList reads r's body as {key: [{...}, ...]}, each item its own body (errors prefixed
// "key[i].").
func readList(r *http.Request, key string) ([]*body, error) {
	b, err := readBody(r, "")
	if err != nil {
		return nil, err
	}
	raw := b.take(key)
	if raw == nil {
		return nil, invalidField(key, "is required: send {%q: [...]}", key)
	}
	if err := b.err(); err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &items) != nil {
		return nil, invalidField(key, "must be an array of objects, got %s", jsonKind(raw))
	}
	if len(items) == 0 || len(items) > maxBulk {
		return nil, invalidField(key, "must hold 1 to %d records, got %d", maxBulk, len(items))
	}
	out := make([]*body, len(items))
	for i, it := range items {
		m, err := parseObject(it, fmt.Sprintf("%s[%d]", key, i))
		if err != nil {
			return nil, err
		}
		out[i] = &body{fields: m, used: map[string]bool{}, ignored: map[string]bool{}, errs: map[string][]string{}}
	}
	return out, nil
}

// idList reads a comma-separated list of ids (show_many's ids=1,2,3).
func idList(r *http.Request, name string) ([]int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, invalidField(name, "is required: a comma-separated list of ids")
	}
	parts := strings.Split(v, ",")
	if len(parts) > maxBulk {
		return nil, invalidField(name, "may name at most %d ids, got %d", maxBulk, len(parts))
	}
	out := make([]int64, 0, len(parts))
	for _, p := range parts {
		id, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || id <= 0 {
			return nil, invalidField(name, "%q is not an id", p)
		}
		out = append(out, id)
	}
	return out, nil
}

// showManyUsers is GET /users/show_many?ids=… (or external_ids=…): the users found, in id
// order; ids that name no user are left out, as in Zendesk.
func (a *API) showManyUsers(w http.ResponseWriter, r *http.Request, p Principal) error {
	var users []User
	var err error
	if ext := r.URL.Query().Get("external_ids"); ext != "" {
		parts := strings.Split(ext, ",")
		if len(parts) > maxBulk {
			return invalidField("external_ids", "may name at most %d, got %d", maxBulk, len(parts))
		}
		users, err = a.store.UsersByExternalIDs(r.Context(), parts)
	} else {
		var ids []int64
		if ids, err = idList(r, "ids"); err != nil {
			return err
		}
		users, err = a.store.UsersByIDs(r.Context(), ids)
	}
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"users": nonNil(users), "next_page": nil, "previous_page": nil, "count": len(users)})
	return nil
}

// showManyTickets is GET /tickets/show_many?ids=….
func (a *API) showManyTickets(w http.ResponseWriter, r *http.Request, p Principal) error {
	ids, err := idList(r, "ids")
	if err != nil {
		return err
	}
	ts, err := a.store.TicketsByIDs(r.Context(), ids)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"tickets": nonNil(ts), "next_page": nil, "previous_page": nil, "count": len(ts)})
	return nil
}

// createOrUpdateUser is POST /users/create_or_update: the user matched by external_id, else by
// email, is updated (200); without a match one is created (201).
func (a *API) createOrUpdateUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	b, err := readBody(r, "user")
	if err != nil {
		return err
	}
	u, created, err := a.upsertUser(r.Context(), p, b)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	a.write(w, status, map[string]any{"user": u})
	return nil
}

func (a *API) upsertUser(ctx context.Context, p Principal, b *body) (User, bool, error) {
	in, err := readNewUser(b)
	if err != nil {
		return User{}, false, err
	}
	match, err := a.store.MatchUser(ctx, deref(in.Zendesk.ExternalID), in.Email)
	if err != nil {
		return User{}, false, err
	}
	if match == 0 {
		u, err := a.createUserAs(ctx, p, in)
		return u, true, err
	}
	cur, err := a.store.User(ctx, match)
	if err != nil {
		return User{}, false, err
	}
	if err := mayWriteUser(p, cur); err != nil {
		return User{}, false, err
	}
	patch := UserPatch{Zendesk: in.Zendesk}
	if _, ok := b.fields["name"]; ok {
		patch.Name = &in.Name
	}
	if _, ok := b.fields["email"]; ok && in.Email != "" {
		patch.Email = &in.Email
	}
	if _, ok := b.fields["role"]; ok && in.Role != "" {
		if in.Role != cur.Role && !p.IsAdmin() {
			return User{}, false, &Error{Kind: ErrForbidden, Description: "only admins change roles"}
		}
		patch.Role = &in.Role
	}
	if in.Password != "" {
		patch.Password = &in.Password
	}
	if in.Phone != "" {
		patch.Phone = &in.Phone
	}
	u, err := a.store.UpdateUser(ctx, p.Actor(), match, patch)
	return u, false, renameField(err, "value", "phone")
}

func (a *API) createUserAs(ctx context.Context, p Principal, in NewUser) (User, error) {
	if in.Role != "" && in.Role != RoleEndUser && !p.IsAdmin() {
		return User{}, &Error{Kind: ErrForbidden, Description: "only admins can create agents, supervisors and admins"}
	}
	u, err := a.store.CreateUser(ctx, p.Actor(), in)
	return u, renameField(err, "value", "phone")
}

// bulkUsers is POST /users/create_many and /users/create_or_update_many: each user in its
// own transaction (one failing does not stop the others, as in Zendesk), answered with the
// job status holding every result.
func (a *API) bulkUsers(upsert bool) func(w http.ResponseWriter, r *http.Request, p Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		items, err := readList(r, "users")
		if err != nil {
			return err
		}
		job := JobStatus{JobType: "Bulk Create Users", Total: len(items), Results: make([]JobResult, 0, len(items))}
		if upsert {
			job.JobType = "Bulk Create or Update Users"
		}
		for i, b := range items {
			res := JobResult{Index: i}
			var u User
			created := true
			var err error
			if upsert {
				u, created, err = a.upsertUser(r.Context(), p, b)
			} else {
				var in NewUser
				if in, err = readNewUser(b); err == nil {
					u, err = a.createUserAs(r.Context(), p, in)
				}
			}
			if err != nil && !isCallerError(err) {
				return err
			}
			if err != nil {
				res.Error, res.Details = jobError(err)
			} else {
				res.ID, res.Success, res.Status = u.ID, true, "Created"
				res.Action = "create"
				if !created {
					res.Status, res.Action = "Updated", "update"
				}
				res.Email, res.ExternalID = u.Email, u.ExternalID
			}
			job.Results = append(job.Results, res)
		}
		return a.writeJob(w, r, p, &job)
	}
}

// bulkTickets is POST /tickets/create_many.
func (a *API) bulkTickets(w http.ResponseWriter, r *http.Request, p Principal) error {
	items, err := readList(r, "tickets")
	if err != nil {
		return err
	}
	job := JobStatus{JobType: "Bulk Create Tickets", Total: len(items), Results: make([]JobResult, 0, len(items))}
	for i, b := range items {
		res := JobResult{Index: i}
		in, req, nested, err := a.readNewTicket(b)
		if err == nil {
			err = b.check(nested...)
		}
		var t Ticket
		if err == nil {
			t, err = a.createOne(r.Context(), p, in, req)
		}
		if err != nil && !isCallerError(err) {
			return err
		}
		if err != nil {
			res.Error, res.Details = jobError(err)
		} else {
			res.ID, res.Success, res.Status, res.Action = t.ID, true, "Created", "create"
		}
		job.Results = append(job.Results, res)
	}
	return a.writeJob(w, r, p, &job)
}

// isCallerError reports whether err is the caller's mistake (an *Error), which a bulk job
// records against its item, rather than a failure of the server, which fails the request.
func isCallerError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func (a *API) writeJob(w http.ResponseWriter, r *http.Request, p Principal, j *JobStatus) error {
	if err := a.store.saveJob(r.Context(), p.Actor(), j); err != nil {
		return err
	}
	j.URL = a.resourceURL("/job_statuses/" + j.ID)
	writeJSON(w, http.StatusOK, map[string]any{"job_status": j})
	return nil
}

// getJobStatus is GET /job_statuses/{id}: admins see every job, agents their own.
func (a *API) getJobStatus(w http.ResponseWriter, r *http.Request, p Principal) error {
	j, err := a.store.Job(r.Context(), p.Actor(), p.IsAdmin(), r.PathValue("id"))
	if err != nil {
		return err
	}
	j.URL = a.resourceURL("/job_statuses/" + j.ID)
	writeJSON(w, http.StatusOK, map[string]any{"job_status": j})
	return nil
}

// showManyJobStatuses is GET /job_statuses/show_many?ids=a,b: the jobs found.
func (a *API) showManyJobStatuses(w http.ResponseWriter, r *http.Request, p Principal) error {
	v := r.URL.Query().Get("ids")
	if v == "" {
		return invalidField("ids", "is required: a comma-separated list of job status ids")
	}
	out := []JobStatus{}
	for i, id := range strings.Split(v, ",") {
		if i >= maxBulk {
			return invalidField("ids", "may name at most %d job statuses", maxBulk)
		}
		j, err := a.store.Job(r.Context(), p.Actor(), p.IsAdmin(), strings.TrimSpace(id))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		j.URL = a.resourceURL("/job_statuses/" + j.ID)
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"job_statuses": out})
	return nil
}
