package ticketing

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
)

var ticketReadOnly = []string{"id", "url", "via", "origin_phone", "display_phone", "fields", "merged_into_id", "created_at", "updated_at"}

func (a *API) writeTickets(w http.ResponseWriter, r *http.Request, f TicketFilter) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	f.AfterID, f.Limit = after, limit
	ts, more, err := a.store.ListTickets(r.Context(), f)
	if err != nil {
		return err
	}
	var last int64
	if len(ts) > 0 {
		last = ts[len(ts)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"tickets": nonNil(ts), "next_page": a.nextPage(r, more, last)})
	return nil
}

func (a *API) listTickets(w http.ResponseWriter, r *http.Request, p Principal) error {
	return a.writeTickets(w, r, TicketFilter{Status: r.URL.Query().Get("status")})
}

// readCustomFields reads the custom_fields object of a ticket body.
func readCustomFields(b *body) (CustomFields, *body) {
	var c CustomFields
	cf := b.object("custom_fields")
	if cf == nil {
		return c, nil
	}
	str := func(name string) *string {
		v, _ := cf.nullableStr(name)
		return v
	}
	c.SessionType = str("session_type")
	c.CallerNumber = str("caller_number")
	c.QueueName = str("queue_name")
	c.CallID = str("call_id")
	const day = 366 * 24 * 3600
	c.CallDuration = cf.count("call_duration", day)
	c.WaitTime = cf.count("wait_time", day)
	c.HoldDuration = cf.count("hold_duration", day)
	if v := cf.count("csat", 100); v != nil {
		n := int(*v)
		c.CSAT = &n
	}
	return c, cf
}

func readComment(b *body) (*NewComment, *body) {
	cb := b.object("comment")
	if cb == nil {
		return nil, nil
	}
	c := &NewComment{Public: true}
	if v := cb.str("body"); v != nil {
		c.Body = *v
	} else if _, ok := cb.fields["body"]; !ok {
		cb.fail("body", "is required")
	}
	if v := cb.boolean("public"); v != nil {
		c.Public = *v
	}
	return c, cb
}

func (a *API) createTicket(w http.ResponseWriter, r *http.Request, p Principal) error {
	b, err := readBody(r, "ticket")
	if err != nil {
		return err
	}
	b.ignore(ticketReadOnly...)
	var in NewTicket
	if v := b.str("subject"); v != nil {
		in.Subject = *v
	}
	if v := b.str("status"); v != nil {
		in.Status = *v
	}
	if v := b.id("requester_id"); v != nil {
		in.RequesterID = *v
	} else if _, ok := b.fields["requester_id"]; !ok {
		b.fail("requester_id", "is required")
	}
	in.AssigneeID, _ = b.nullableID("assignee_id")
	if v := b.strs("tags"); v != nil {
		in.Tags = *v
	}
	cf, cfb := readCustomFields(b)
	in.CustomFields = cf
	c, cb := readComment(b)
	in.Comment = c
	if err := b.check(cfb, cb); err != nil {
		return err
	}
	t, err := a.store.CreateTicket(r.Context(), p.Actor(), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"ticket": t})
	return nil
}

func (a *API) getTicket(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "ticket")
	if err != nil {
		return err
	}
	t, err := a.store.Ticket(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t})
	return nil
}

func (a *API) updateTicket(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "ticket")
	if err != nil {
		return err
	}
	b, err := readBody(r, "ticket")
	if err != nil {
		return err
	}
	b.ignore(ticketReadOnly...)
	var patch TicketPatch
	patch.Subject = b.str("subject")
	patch.Status = b.str("status")
	patch.RequesterID = b.id("requester_id")
	var present bool
	patch.AssigneeID, present = b.nullableID("assignee_id")
	patch.ClearAssignee = present && patch.AssigneeID == nil && len(b.errs["assignee_id"]) == 0
	patch.Tags = b.strs("tags")
	cf, cfb := readCustomFields(b)
	patch.CustomFields = cf
	c, cb := readComment(b)
	patch.Comment = c
	if err := b.check(cfb, cb); err != nil {
		return err
	}
	t, err := a.store.UpdateTicket(r.Context(), p.Actor(), id, patch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t})
	return nil
}

func (a *API) listComments(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "ticket")
	if err != nil {
		return err
	}
	cs, err := a.store.Comments(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"comments": nonNil(cs), "next_page": nil})
	return nil
}

func (a *API) addComment(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "ticket")
	if err != nil {
		return err
	}
	b, err := readBody(r, "comment")
	if err != nil {
		return err
	}
	b.ignore("id", "type", "author_id", "created_at", "ticket_id")
	c := NewComment{Public: true}
	if v := b.str("body"); v != nil {
		c.Body = *v
	} else if _, ok := b.fields["body"]; !ok {
		b.fail("body", "is required")
	}
	if v := b.boolean("public"); v != nil {
		c.Public = *v
	}
	if err := b.err(); err != nil {
		return err
	}
	out, err := a.store.AddComment(r.Context(), p.Actor(), id, c)
	if err != nil {
		return renameField(err, "comment.body", "body")
	}
	writeJSON(w, http.StatusCreated, map[string]any{"comment": out})
	return nil
}

func (a *API) mergeTickets(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "ticket")
	if err != nil {
		return err
	}
	b, err := readBody(r, "")
	if err != nil {
		return err
	}
	ids := b.ids("ids")
	if err := b.err(); err != nil {
		return err
	}
	t, err := a.store.MergeTickets(r.Context(), p.Actor(), id, ids)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t})
	return nil
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request, p Principal) error {
	s, err := a.store.Settings(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"settings": s})
	return nil
}

// putSettings overlays the fields given on the stored settings (a partial update), reading
// each top-level field on its own so that a wrong type names its field, then validates the
// whole (Settings.Validate) and stores it. The body is {"settings": {...}}; a bare settings
// object is accepted too.
func (a *API) putSettings(w http.ResponseWriter, r *http.Request, p Principal) error {
	b, err := readBody(r, "")
	if err != nil {
		return err
	}
	fields := b.fields
	if raw, ok := fields["settings"]; ok && len(fields) == 1 {
		if fields, err = parseObject(raw, "settings"); err != nil {
			return err
		}
	}
	cur, err := a.store.Settings(r.Context())
	if err != nil {
		return err
	}
	details := map[string][]string{}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		dec := json.NewDecoder(bytes.NewReader(one))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cur); err != nil {
			field, msg := k, err.Error()
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				if te.Field != "" {
					field = te.Field
				}
				msg = "must be " + jsonTypeName(te.Type.Kind().String()) + ", got " + te.Value
			}
			details[field] = append(details[field], msg)
		}
	}
	if len(details) > 0 {
		return &Error{Kind: ErrInvalid, Description: "invalid voice settings", Details: details}
	}
	s, err := a.store.PutSettings(r.Context(), p.Actor(), cur)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"settings": s})
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "int", "int64", "float64":
		return "a number"
	}
	return kind
}
