package ticketing

import (
	"net/http"
	"strconv"
)

// registerGroups mounts Zendesk's groups and group memberships (docs/api.md, "Groups"): every
// agent reads them, admins change them (an agent may choose their own default group).
func (a *API) registerGroups(h func(pattern, role string, fn func(w http.ResponseWriter, r *http.Request, p Principal) error)) {
	h("GET /groups", RoleAgent, a.listGroups)
	h("GET /groups/assignable", RoleAgent, a.listGroups)
	h("POST /groups", RoleAdmin, a.createGroup)
	h("GET /groups/{id}", RoleAgent, a.getGroup)
	h("PUT /groups/{id}", RoleAdmin, a.updateGroup)
	h("DELETE /groups/{id}", RoleAdmin, a.deleteGroup)
	h("GET /groups/{id}/memberships", RoleAgent, a.listMemberships("group"))
	h("GET /users/{id}/groups", RoleAgent, a.listUserGroups)
	h("GET /group_memberships", RoleAgent, a.listMemberships(""))
	h("GET /group_memberships/assignable", RoleAgent, a.listMemberships(""))
	h("POST /group_memberships", RoleAdmin, a.createMembership)
	h("GET /group_memberships/{mid}", RoleAgent, a.getMembership)
	h("DELETE /group_memberships/{mid}", RoleAdmin, a.deleteMembership)
	h("GET /users/{id}/group_memberships", RoleAgent, a.listMemberships("user"))
	h("POST /users/{id}/group_memberships", RoleAdmin, a.createMembership)
	h("GET /users/{id}/group_memberships/{mid}", RoleAgent, a.getMembership)
	h("DELETE /users/{id}/group_memberships/{mid}", RoleAdmin, a.deleteMembership)
	h("PUT /users/{id}/group_memberships/{mid}/make_default", RoleAgent, a.makeDefaultMembership)
}

// groupReadOnly are the fields of a group a client may send back unchanged.
var groupReadOnly = []string{"id", "url", "deleted", "created_at", "updated_at"}

// readGroup reads {"group":{...}}.
func readGroup(r *http.Request) (GroupInput, error) {
	b, err := readBody(r, "group")
	if err != nil {
		return GroupInput{}, err
	}
	b.ignore(groupReadOnly...)
	in := GroupInput{Name: b.str("name"), IsPublic: b.boolean("is_public"), Default: b.boolean("default")}
	if v, present := b.nullableStr("description"); present {
		in.Description = orEmpty(v)
	}
	return in, b.err()
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, p Principal) error {
	return a.writeGroups(w, r, 0)
}

func (a *API) listUserGroups(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	return a.writeGroups(w, r, id)
}

func (a *API) writeGroups(w http.ResponseWriter, r *http.Request, userID int64) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	gs, more, err := a.store.ListGroups(r.Context(), GroupFilter{UserID: userID, AfterID: pg.after, BeforeID: pg.before, Limit: pg.limit})
	if err != nil {
		return err
	}
	ids := make([]int64, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	a.writePage(w, r, pg, "groups", nonNil(gs), ids, more)
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "group")
	if err != nil {
		return err
	}
	g, err := a.store.Group(r.Context(), id)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"group": g})
	return nil
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, p Principal) error {
	in, err := readGroup(r)
	if err != nil {
		return err
	}
	g, err := a.store.CreateGroup(r.Context(), p.Actor(), in)
	if err != nil {
		return err
	}
	a.write(w, http.StatusCreated, map[string]any{"group": g})
	return nil
}

func (a *API) updateGroup(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "group")
	if err != nil {
		return err
	}
	in, err := readGroup(r)
	if err != nil {
		return err
	}
	g, err := a.store.UpdateGroup(r.Context(), p.Actor(), id, in)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"group": g})
	return nil
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "group")
	if err != nil {
		return err
	}
	if err := a.store.DeleteGroup(r.Context(), p.Actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listMemberships lists every membership, a group's (by the path's id) or a user's.
func (a *API) listMemberships(of string) func(w http.ResponseWriter, r *http.Request, p Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		var f GroupMembershipFilter
		switch of {
		case "group":
			id, err := pathID(r, "id", "group")
			if err != nil {
				return err
			}
			f.GroupID = id
		case "user":
			id, err := pathID(r, "id", "user")
			if err != nil {
				return err
			}
			f.UserID = id
		}
		pg, err := page(r)
		if err != nil {
			return err
		}
		f.AfterID, f.BeforeID, f.Limit = pg.after, pg.before, pg.limit
		ms, more, err := a.store.ListGroupMemberships(r.Context(), f)
		if err != nil {
			return err
		}
		ids := make([]int64, len(ms))
		for i, m := range ms {
			ids[i] = m.ID
		}
		a.writePage(w, r, pg, "group_memberships", nonNil(ms), ids, more)
		return nil
	}
}

// pathUser is the {id} of a /users/{id}/group_memberships path, 0 on /group_memberships.
func pathUser(r *http.Request) (int64, error) {
	if r.PathValue("id") == "" {
		return 0, nil
	}
	return pathID(r, "id", "user")
}

// membershipPath reads a membership's path: its id ({mid}) and, under /users/{id}, its user
// (0 elsewhere).
func membershipPath(r *http.Request) (uid, id int64, err error) {
	if uid, err = pathUser(r); err != nil {
		return 0, 0, err
	}
	id, err = pathID(r, "mid", "group membership")
	return uid, id, err
}

func (a *API) getMembership(w http.ResponseWriter, r *http.Request, p Principal) error {
	uid, id, err := membershipPath(r)
	if err != nil {
		return err
	}
	m, err := a.store.GroupMembership(r.Context(), id, uid)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"group_membership": m})
	return nil
}

// createMembership takes {"group_membership":{"user_id","group_id","default"}}; under
// /users/{id} user_id may be left out (and must be {id} when given).
func (a *API) createMembership(w http.ResponseWriter, r *http.Request, p Principal) error {
	uid, err := pathUser(r)
	if err != nil {
		return err
	}
	b, err := readBody(r, "group_membership")
	if err != nil {
		return err
	}
	b.ignore("id", "url", "created_at", "updated_at")
	user, group, def := b.id("user_id"), b.id("group_id"), b.boolean("default")
	if _, sent := b.fields["user_id"]; !sent && uid == 0 {
		b.fail("user_id", "is required")
	}
	if _, sent := b.fields["group_id"]; !sent {
		b.fail("group_id", "is required")
	}
	if user != nil && uid != 0 && *user != uid {
		b.fail("user_id", "must be %d, the user of the path, or left out", uid)
	}
	if err := b.err(); err != nil {
		return err
	}
	if user == nil {
		user = &uid
	}
	m, err := a.store.CreateGroupMembership(r.Context(), p.Actor(), *user, *group, def)
	if err != nil {
		return err
	}
	a.write(w, http.StatusCreated, map[string]any{"group_membership": m})
	return nil
}

func (a *API) deleteMembership(w http.ResponseWriter, r *http.Request, p Principal) error {
	uid, id, err := membershipPath(r)
	if err != nil {
		return err
	}
	if err := a.store.DeleteGroupMembership(r.Context(), p.Actor(), id, uid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// makeDefaultMembership makes a membership the user's default group: an agent their own, an
// admin anyone's. The answer is the user's memberships, as Zendesk's.
func (a *API) makeDefaultMembership(w http.ResponseWriter, r *http.Request, p Principal) error {
	uid, err := pathID(r, "id", "user")
	if err != nil {
		return err
	}
	id, err := pathID(r, "mid", "group membership")
	if err != nil {
		return err
	}
	if uid != p.UserID && !p.IsAdmin() {
		return &Error{Kind: ErrForbidden, Description: "only admins choose another user's default group: user " + strconv.FormatInt(uid, 10) + " is not you"}
	}
	ms, err := a.store.MakeDefaultGroupMembership(r.Context(), p.Actor(), uid, id)
	if err != nil {
		return err
	}
	a.write(w, http.StatusOK, map[string]any{"group_memberships": nonNil(ms)})
	return nil
}
