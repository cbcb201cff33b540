package ticketing

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// userReadOnly are fields of the user shape a client may send back unchanged.
var userReadOnly = []string{"id", "url", "shared_phone_number", "placeholder", "merged_into_id", "created_at", "updated_at", "active"}

// zendeskUserAccepted are fields of Zendesk's user that Switchboard accepts and does not keep
// (no organizations, groups, custom roles, photos, signatures…): a Zendesk client sending them
// back is not refused (docs/api.md, "Zendesk compatibility").
var zendeskUserAccepted = []string{"organization_id", "organization", "locale_id", "role_type", "custom_role_id",
	"default_group_id", "moderator", "only_private_comments", "restricted_agent", "suspended",
	"ticket_restriction", "alias", "signature", "shared", "shared_agent", "photo", "two_factor_auth_enabled",
	"last_login_at", "report_csv", "chat_only", "iana_time_zone", "identities", "skip_verify_email",
	"remote_photo_url", "shared_phone_number", "result_type"}

// readUserExtras reads Zendesk's stored user fields.
func readUserExtras(b *body) UserExtras {
	var x UserExtras
	opt := func(name string) *string {
		v, present := b.nullableStr(name)
		if !present {
			return nil
		}
		return orEmpty(v)
	}
	x.ExternalID = b.line("external_id")
	x.Verified = b.boolean("verified")
	x.Tags = b.strs("tags")
	x.TimeZone = b.line("time_zone")
	x.Locale = b.line("locale")
	x.Notes = opt("notes")
	x.Details = opt("details")
	if raw := b.take("user_fields"); raw != nil && !isNull(raw) {
		if m, err := parseObject(raw, "user_fields"); err != nil {
			b.fail("user_fields", "must be an object, got %s", jsonKind(raw))
		} else {
			x.UserFields = map[string]any{}
			for k, v := range m {
				var val any
				_ = json.Unmarshal(v, &val)
				x.UserFields[k] = val
			}
		}
	}
	return x
}

// renameField moves the details of field from to field to (the store says "value" for a
// number; the user body calls it "phone").
func renameField(err error, from, to string) error {
	var e *Error
	if !errors.As(err, &e) || e.Details[from] == nil {
		return err
	}
	d := map[string][]string{}
	for k, v := range e.Details {
		if k == from {
			k = to
		}
		d[k] = append(d[k], v...)
	}
	var codes map[string]string
	for k, c := range e.Codes {
		if codes == nil {
			codes = map[string]string{}
		}
		if k == from {
			k = to
		}
		codes[k] = c
	}
	return &Error{Kind: e.Kind, Description: strings.Replace(e.Description, from+":", to+":", 1), Details: d, Codes: codes}
}

// mayWriteUser: agents manage end users and themselves; other agents and admins are the
// admins' business.
func mayWriteUser(p Principal, u User) error {
	if u.IsStaff() && u.ID != p.UserID && !p.IsAdmin() {
		return &Error{Kind: ErrForbidden, Description: "only admins can change other agents, supervisors and admins"}
	}
	return nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, p Principal) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	users, more, err := a.store.ListUsers(r.Context(), UserFilter{Role: r.URL.Query().Get("role"), AfterID: pg.after,
		BeforeID: pg.before, Limit: pg.limit})
	if err != nil {
		return err
	}
	a.writePage(w, r, pg, "users", nonNil(users), userIDs(users), more)
	return nil
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	b, err := readBody(r, "user")
	if err != nil {
		return err
	}
	in, err := readNewUser(b)
	if err != nil {
		return err
	}
	if in.Role != "" && in.Role != RoleEndUser && !p.IsAdmin() {
		return &Error{Kind: ErrForbidden, Description: "only admins can create agents, supervisors and admins"}
	}
	u, err := a.store.CreateUser(r.Context(), p.Actor(), in)
	if err != nil {
		return renameField(err, "value", "phone")
	}
	a.write(w, http.StatusCreated, map[string]any{"user": u})
	return nil
}

// readNewUser reads a new user's fields from b (POST /users, create_many, create_or_update).
func readNewUser(b *body) (NewUser, error) {
	b.ignore(userReadOnly...)
	b.ignore(zendeskUserAccepted...)
	in := NewUser{}
	if v := b.str("name"); v != nil {
		in.Name = *v
	} else if _, ok := b.fields["name"]; !ok {
		b.fail("name", "is required")
	}
	if v, _ := b.nullableStr("email"); v != nil {
		in.Email = *v
	}
	if v := b.str("role"); v != nil {
		in.Role = *v
	}
	if v := b.str("password"); v != nil {
		in.Password = *v
	}
	if v, _ := b.nullableStr("phone"); v != nil {
		in.Phone = *v
	}
	in.Zendesk = readUserExtras(b)
	return in, b.err()
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	u, err := a.store.User(r.Context(), id)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"user": u})
	return nil
}

// getMe is GET /users/me: the user the request authenticates as (Zendesk clients call it to
// check their credentials).
func (a *API) getMe(w http.ResponseWriter, r *http.Request, p Principal) error {
	u, err := a.store.User(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"user": u})
	return nil
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	b, err := readBody(r, "user")
	if err != nil {
		return err
	}
	b.ignore(userReadOnly...)
	b.ignore(zendeskUserAccepted...)
	var patch UserPatch
	patch.Name = b.str("name")
	if v, present := b.nullableStr("email"); present {
		if v == nil {
			v = new(string)
		}
		patch.Email = v
	}
	patch.Role = b.str("role")
	patch.Password = b.str("password")
	if v, _ := b.nullableStr("phone"); v != nil {
		patch.Phone = v
	}
	patch.Zendesk = readUserExtras(b)
	if err := b.err(); err != nil {
		return err
	}
	u, err := a.store.User(r.Context(), id)
	if err != nil {
		return err
	}
	if err := mayWriteUser(p, u); err != nil {
		return err
	}
	if patch.Role != nil && *patch.Role != u.Role && !p.IsAdmin() {
		return &Error{Kind: ErrForbidden, Description: "only admins change roles"}
	}
	u, err = a.store.UpdateUser(r.Context(), p.Actor(), id, patch)
	if err != nil {
		return renameField(err, "value", "phone")
	}
	a.write(w, http.StatusOK, map[string]any{"user": u})
	return nil
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	u, err := a.store.User(r.Context(), id)
	if err != nil {
		return err
	}
	if err := mayWriteUser(p, u); err != nil {
		return err
	}
	if err := a.store.DeleteUser(r.Context(), p.Actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) searchUsers(w http.ResponseWriter, r *http.Request, p Principal) error {
	q := r.URL.Query()
	var users []User
	switch {
	case q.Get("phone") != "":
		hs, err := a.store.UsersByPhone(r.Context(), q.Get("phone"))
		if err != nil {
			return renameField(err, "value", "phone")
		}
		users = make([]User, len(hs))
		for i, h := range hs {
			users[i] = h.User
		}
	case q.Get("query") != "":
		var err error
		if users, err = a.store.SearchUsers(r.Context(), q.Get("query")); err != nil {
			return err
		}
	default:
		return invalidField("query", "give ?phone=E164 or ?query=text")
	}
	a.write(w, http.StatusOK, map[string]any{"users": nonNil(users), "next_page": nil})
	return nil
}

// userForWrite returns the user of the path (followed through a merge) if p may change it.
func (a *API) userForWrite(r *http.Request, p Principal) (User, error) {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return User{}, err
	}
	u, err := a.store.LiveUser(r.Context(), id)
	if err != nil {
		return User{}, err
	}
	return u, mayWriteUser(p, u)
}

func (a *API) listIdentities(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	ids, err := a.store.Identities(r.Context(), id)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"identities": nonNil(ids), "next_page": nil})
	return nil
}

func (a *API) addIdentity(w http.ResponseWriter, r *http.Request, p Principal) error {
	b, err := readBody(r, "identity")
	if err != nil {
		return err
	}
	b.ignore("id", "url", "user_id", "line_type", "created_at", "updated_at", "undeliverable_count", "deliverable_state")
	if t := b.str("type"); t != nil && *t != "phone_number" {
		b.fail("type", "%q is not supported; only phone_number identities exist here", *t)
	}
	value := b.str("value")
	if value == nil {
		if _, ok := b.fields["value"]; !ok {
			b.fail("value", "is required")
		}
	}
	primary := b.boolean("primary")
	verified := b.boolean("verified")
	if err := b.err(); err != nil {
		return err
	}
	u, err := a.userForWrite(r, p)
	if err != nil {
		return err
	}
	ident, err := a.store.AddIdentity(r.Context(), p.Actor(), u.ID, *value)
	if err != nil {
		return err
	}
	if primary != nil && *primary && !ident.Primary {
		if _, err := a.store.MakePrimary(r.Context(), p.Actor(), u.ID, ident.ID); err != nil {
			return err
		}
		ident.Primary = true
	}
	if verified != nil && *verified {
		if ident, err = a.store.SetIdentityVerified(r.Context(), p.Actor(), u.ID, ident.ID, true); err != nil {
			return err
		}
	}
	a.write(w, http.StatusCreated, map[string]any{"identity": ident})
	return nil
}

func (a *API) deleteIdentity(w http.ResponseWriter, r *http.Request, p Principal) error {
	iid, err := pathID(r, "iid", "identity")
	if err != nil {
		return err
	}
	u, err := a.userForWrite(r, p)
	if err != nil {
		return err
	}
	if err := a.store.DeleteIdentity(r.Context(), p.Actor(), u.ID, iid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) makePrimary(w http.ResponseWriter, r *http.Request, p Principal) error {
	iid, err := pathID(r, "iid", "identity")
	if err != nil {
		return err
	}
	u, err := a.userForWrite(r, p)
	if err != nil {
		return err
	}
	ids, err := a.store.MakePrimary(r.Context(), p.Actor(), u.ID, iid)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"identities": nonNil(ids), "next_page": nil})
	return nil
}

func (a *API) mergeUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	b, err := readBody(r, "user")
	if err != nil {
		return err
	}
	target := b.id("id")
	if target == nil {
		if _, ok := b.fields["id"]; !ok {
			b.fail("id", "is required: the id of the user to merge into")
		}
	}
	if err := b.err(); err != nil {
		return err
	}
	u, err := a.store.MergeUsers(r.Context(), p.Actor(), id, *target)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"user": u})
	return nil
}

func (a *API) requestedTickets(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	return a.writeTickets(w, r, TicketFilter{RequesterID: id})
}

func (a *API) getIdentity(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	iid, err := pathID(r, "iid", "identity")
	if err != nil {
		return err
	}
	ident, err := a.store.Identity(r.Context(), id, iid)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"identity": ident})
	return nil
}

// updateIdentity is PUT /users/{id}/identities/{iid}: Zendesk's update, of verified here (a
// number's value does not change: add the new one and delete the old).
func (a *API) updateIdentity(w http.ResponseWriter, r *http.Request, p Principal) error {
	iid, err := pathID(r, "iid", "identity")
	if err != nil {
		return err
	}
	b, err := readBody(r, "identity")
	if err != nil {
		return err
	}
	b.ignore("id", "url", "user_id", "type", "line_type", "primary", "created_at", "updated_at", "undeliverable_count", "deliverable_state")
	verified := b.boolean("verified")
	if raw := b.fields["value"]; raw != nil {
		b.take("value")
		b.fail("value", "a number cannot be changed: add the new number and delete this one")
	}
	if err := b.err(); err != nil {
		return err
	}
	u, err := a.userForWrite(r, p)
	if err != nil {
		return err
	}
	var ident Identity
	if verified != nil {
		ident, err = a.store.SetIdentityVerified(r.Context(), p.Actor(), u.ID, iid, *verified)
	} else {
		ident, err = a.store.Identity(r.Context(), u.ID, iid)
	}
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"identity": ident})
	return nil
}

// verifyIdentity is PUT /users/{id}/identities/{iid}/verify.
func (a *API) verifyIdentity(w http.ResponseWriter, r *http.Request, p Principal) error {
	iid, err := pathID(r, "iid", "identity")
	if err != nil {
		return err
	}
	u, err := a.userForWrite(r, p)
	if err != nil {
		return err
	}
	ident, err := a.store.SetIdentityVerified(r.Context(), p.Actor(), u.ID, iid, true)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"identity": ident})
	return nil
}

func userIDs(us []User) []int64 {
	out := make([]int64, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}
