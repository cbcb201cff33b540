package ticketing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var htmlTag = regexp.MustCompile(`(?s)<[^>]*>`)

// htmlToText is an html_body as plain text: tags dropped, <br> and </p> as line breaks,
// entities decoded.
func htmlToText(s string) string {
	s = regexp.MustCompile(`(?i)<br\s*/?>|</p>`).ReplaceAllString(s, "\n")
	return strings.TrimSpace(html.UnescapeString(htmlTag.ReplaceAllString(s, "")))
}

var ticketReadOnly = []string{"id", "url", "via", "origin_phone", "display_phone", "merged_into_id", "created_at", "updated_at"}

// zendeskTicketAccepted are fields of Zendesk's ticket that Switchboard accepts and does not
// keep (it has no organizations, brands, forms or followers; group_id is kept): a Zendesk client sending
// them back is not refused (docs/api.md, "Zendesk compatibility").
var zendeskTicketAccepted = []string{"organization_id", "brand_id", "forum_topic_id", "problem_id",
	"has_incidents", "sharing_agreement_ids", "follower_ids", "email_cc_ids", "followup_ids", "ticket_form_id",
	"satisfaction_rating", "raw_subject", "recipient", "allow_channelback", "allow_attachments",
	"from_messaging_channel", "generated_timestamp", "custom_status_id", "safe_update", "updated_stamp",
	"collaborators", "email_ccs", "followers", "macro_ids", "additional_collaborators", "metadata",
	"encoded_id", "result_type", "dates"}

func (a *API) writeTickets(w http.ResponseWriter, r *http.Request, f TicketFilter) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	f.AfterID, f.BeforeID, f.Limit = pg.after, pg.before, pg.limit
	ts, more, err := a.store.ListTickets(r.Context(), f)
	if err != nil {
		return err
	}
	a.writePage(w, r, pg, "tickets", nonNil(ts), ticketIDs(ts), more)
	return nil
}

func (a *API) listTickets(w http.ResponseWriter, r *http.Request, p Principal) error {
	return a.writeTickets(w, r, TicketFilter{Status: r.URL.Query().Get("status")})
}

// readCustomFields reads the call fields of a ticket body: custom_fields (or fields) as
// Zendesk's [{"id", "value"}] list (ids of GET /ticket_fields), or as the object
// {"call_id": …} of earlier versions. Errors name custom_fields.<key>.
func readCustomFields(b *body) (CustomFields, *body) {
	var c CustomFields
	cf := b.customFieldsBody("custom_fields")
	if raw := b.fields["fields"]; raw != nil && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		// Zendesk's "fields" is an alias of custom_fields; our own fields object is read only.
		if alias := b.customFieldsBody("fields"); alias != nil {
			if cf == nil {
				cf = alias
			} else {
				for k, v := range alias.fields {
					cf.fields[k] = v
				}
			}
		}
	} else {
		b.ignore("fields")
	}
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

// customFieldsBody reads name as the object of call fields, turning Zendesk's list
// [{"id": 6, "value": "…"}] into {"call_id": "…"}; nil when absent.
func (b *body) customFieldsBody(name string) *body {
	raw := b.fields[name]
	if raw == nil || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		return b.object(name)
	}
	b.take(name)
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		b.fail(name, "must be a list of {\"id\", \"value\"} or an object, got %s", jsonKind(raw))
		return nil
	}
	fields := map[string]json.RawMessage{}
	for i, it := range items {
		var e struct {
			ID    json.RawMessage `json:"id"`
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(it, &e) != nil || e.ID == nil {
			b.fail(name, "item %d must be {\"id\", \"value\"}, got %s", i, jsonKind(it))
			continue
		}
		id, ok := parseID(e.ID)
		key := ticketFieldKey(id)
		if !ok || key == "" {
			b.fail(name, "item %d: %s is not the id of a ticket field; GET /api/v2/ticket_fields lists them", i, strings.TrimSpace(string(e.ID)))
			continue
		}
		if e.Value == nil {
			e.Value = json.RawMessage("null")
		}
		fields[key] = e.Value
	}
	return &body{prefix: b.prefix + "custom_fields.", fields: fields, used: map[string]bool{}, ignored: map[string]bool{}, errs: b.errs}
}

// readComment reads a ticket's comment: body (or, without it, html_body as text), html_body,
// public, author_id, uploads (tokens of POST /uploads whose files become its attachments).
func readComment(b *body) (*NewComment, *body) {
	cb := b.object("comment")
	if cb == nil {
		return nil, nil
	}
	return readCommentBody(cb), cb
}

func readCommentBody(cb *body) *NewComment {
	cb.ignore("id", "type", "created_at", "ticket_id", "attachments", "via", "metadata", "plain_body", "data")
	c := &NewComment{Public: true}
	if v := cb.strs("uploads"); v != nil {
		for i, t := range *v {
			if !uploadToken.MatchString(t) {
				cb.fail(fmt.Sprintf("uploads[%d]", i), "%q is not an upload token (the upload.token of POST /uploads)", cleanAudit(t))
			}
		}
		if len(*v) > maxUploadsPerComment {
			cb.fail("uploads", "at most %d upload tokens on one comment", maxUploadsPerComment)
		}
		c.Uploads = *v
	}
	html := cb.str("html_body")
	if v := cb.str("body"); v != nil {
		c.Body = *v
	} else if _, ok := cb.fields["body"]; !ok {
		if html != nil {
			c.Body = htmlToText(*html)
		} else {
			cb.fail("body", "is required")
		}
	}
	if v := cb.boolean("public"); v != nil {
		c.Public = *v
	}
	if v := cb.id("author_id"); v != nil {
		c.AuthorID = *v
	}
	return c
}

// line reads a one-line string field that may be null (Zendesk's way of clearing it): nil
// when absent, "" for null. Control characters and more than 255 bytes are refused, naming
// the field: these values reach logs, search and other clients.
func (b *body) line(name string) *string {
	v, present := b.nullableStr(name)
	if !present {
		return nil
	}
	if v != nil && (len(*v) > 255 || strings.IndexFunc(*v, unicode.IsControl) >= 0 || !utf8.ValidString(*v)) {
		b.fail(name, "must be one line of text of at most 255 bytes, without control characters")
		return nil
	}
	return orEmpty(v)
}

// readTicketZendesk reads Zendesk's stored ticket fields.
func readTicketZendesk(b *body) ZendeskFields {
	var z ZendeskFields
	z.Priority = b.line("priority")
	z.Type = b.line("type")
	z.ExternalID = b.line("external_id")
	z.SubmitterID = b.id("submitter_id")
	if raw := b.fields["collaborator_ids"]; raw != nil {
		ids := b.ids("collaborator_ids")
		if ids != nil {
			z.CollaboratorIDs = &ids
		}
	}
	if v, present := b.nullableStr("due_at"); present {
		if v == nil || *v == "" {
			z.ClearDueAt = true
		} else if t, err := time.Parse(time.RFC3339, *v); err != nil {
			b.fail("due_at", "must be an RFC 3339 time (2026-01-02T15:04:05Z), got %q", *v)
		} else {
			z.DueAt = &t
		}
	}
	z.IsPublic = b.boolean("is_public")
	if id, present := b.nullableID("group_id"); present {
		z.GroupID, z.ClearGroup = id, id == nil
	}
	return z
}

func orEmpty(v *string) *string {
	if v == nil {
		return new(string)
	}
	return v
}

func (a *API) createTicket(w http.ResponseWriter, r *http.Request, p Principal) error {
	b, err := readBody(r, "ticket")
	if err != nil {
		return err
	}
	in, req, nested, err := a.readNewTicket(b)
	if err != nil {
		return err
	}
	if err := b.check(nested...); err != nil {
		return err
	}
	t, err := a.createOne(r.Context(), p, in, req)
	if err != nil {
		return err
	}
	a.write(w, http.StatusCreated, map[string]any{"ticket": t})
	return nil
}

// inlineRequester is Zendesk's requester object on a new ticket: the user is found by email,
// else by phone, else created as an end user.
type inlineRequester struct {
	Name, Email, Phone string
}

// readNewTicket reads a new ticket's fields from b (POST /tickets, create_many).
func (a *API) readNewTicket(b *body) (NewTicket, *inlineRequester, []*body, error) {
	b.ignore(ticketReadOnly...)
	b.ignore(zendeskTicketAccepted...)
	var in NewTicket
	if v := b.str("subject"); v != nil {
		in.Subject = *v
	}
	if v := b.str("status"); v != nil {
		in.Status = *v
	}
	var req *inlineRequester
	rb := b.object("requester")
	if rb != nil {
		rb.ignore("locale_id", "locale")
		req = &inlineRequester{}
		if v := rb.str("name"); v != nil {
			req.Name = *v
		}
		if v, _ := rb.nullableStr("email"); v != nil {
			req.Email = *v
		}
		if v, _ := rb.nullableStr("phone"); v != nil {
			req.Phone = *v
		}
		if req.Email == "" && req.Phone == "" && len(b.errs) == 0 {
			rb.fail("email", "give the requester's email or phone")
		}
	}
	if v := b.id("requester_id"); v != nil {
		in.RequesterID = *v
		req = nil
	} else if _, ok := b.fields["requester_id"]; !ok && rb == nil {
		b.fail("requester_id", "is required (or give a requester object: {name, email, phone})")
	}
	in.AssigneeID, _ = b.nullableID("assignee_id")
	if v := b.strs("tags"); v != nil {
		in.Tags = *v
	}
	in.Zendesk = readTicketZendesk(b)
	cf, cfb := readCustomFields(b)
	in.CustomFields = cf
	c, cb := readComment(b)
	in.Comment = c
	// Zendesk: a new ticket's description is its first comment.
	if d := b.str("description"); d != nil && c == nil && strings.TrimSpace(*d) != "" {
		in.Comment = &NewComment{Body: *d, Public: true}
	}
	return in, req, []*body{cfb, cb, rb}, nil
}

// createOne creates a ticket, finding or creating its inline requester first.
func (a *API) createOne(ctx context.Context, p Principal, in NewTicket, req *inlineRequester) (Ticket, error) {
	if req != nil {
		id, err := a.store.FindOrCreateRequester(ctx, p.Actor(), req.Name, req.Email, req.Phone)
		if err != nil {
			return Ticket{}, err
		}
		in.RequesterID = id
	}
	return a.store.CreateTicket(ctx, p.Actor(), in)
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
	a.write(w, http.StatusOK, map[string]any{"ticket": t})
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
	b.ignore(zendeskTicketAccepted...)
	b.ignore("description", "requester")
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
	patch.Zendesk = readTicketZendesk(b)
	if err := b.check(cfb, cb); err != nil {
		return err
	}
	t, err := a.store.UpdateTicket(r.Context(), p.Actor(), id, patch)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"ticket": t})
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
	for i := range cs {
		a.linkAttachments(cs[i].Attachments)
	}
	a.write(w, http.StatusOK, map[string]any{"comments": nonNil(cs), "next_page": nil})
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
	c := readCommentBody(b)
	if err := b.err(); err != nil {
		return err
	}
	out, err := a.store.AddComment(r.Context(), p.Actor(), id, *c)
	if err != nil {
		return renameField(renameUploads(err), "comment.body", "body")
	}
	a.linkAttachments(out.Attachments)
	a.write(w, http.StatusCreated, map[string]any{"comment": out})
	return nil
}

// makeCommentPrivate is PUT /tickets/{id}/comments/{comment_id}/make_private: 200 with no body,
// as Zendesk answers it.
func (a *API) makeCommentPrivate(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "ticket")
	if err != nil {
		return err
	}
	cid, err := pathID(r, "comment_id", "comment")
	if err != nil {
		return err
	}
	if err := a.store.MakeCommentPrivate(r.Context(), p.Actor(), id, cid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
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
	// Zendesk's merge comments: accepted; the merge writes its own notes (TM rules).
	b.ignore("source_comment", "target_comment", "source_comment_is_public", "target_comment_is_public")
	if err := b.err(); err != nil {
		return err
	}
	t, err := a.store.MergeTickets(r.Context(), p.Actor(), id, ids)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"ticket": t})
	return nil
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request, p Principal) error {
	s, err := a.store.Settings(r.Context())
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"settings": s})
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
	a.write(w, http.StatusOK, map[string]any{"settings": s})
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

// listTicketFields is GET /ticket_fields: the call fields that custom_fields carries.
func (a *API) listTicketFields(w http.ResponseWriter, r *http.Request, p Principal) error {
	fs := TicketFields()
	a.write(w, http.StatusOK, map[string]any{"ticket_fields": fs, "next_page": nil, "previous_page": nil, "count": len(fs)})
	return nil
}

func (a *API) getTicketField(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "ticket field")
	if err != nil {
		return err
	}
	for _, f := range TicketFields() {
		if f.ID == id {
			a.write(w, http.StatusOK, map[string]any{"ticket_field": f})
			return nil
		}
	}
	return notFound("ticket field %d not found", id)
}

func ticketIDs(ts []Ticket) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}
