package ticketing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Groups (teams) are Zendesk's groups of agents (migration 030, docs/api.md "Groups"): an
// admin creates them and puts agents, supervisors and admins in them. They decide whom a
// supervisor supervises (SupervisionScope) and which calls the agent page shows as the team's
// (CallFilter.TeamOf).

// Group is a team of staff users, in Zendesk's shape. Deleted is always false: a deleted group
// is gone (its memberships with it, its tickets keep no group).
type Group struct {
	ID          int64  `json:"id"`
	URL         string `json:"url"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Default     bool   `json:"default"`
	Deleted     bool   `json:"deleted"`
	IsPublic    bool   `json:"is_public"`
	CreatedAt   Time   `json:"created_at"`
	UpdatedAt   Time   `json:"updated_at"`
}

// GroupMembership puts a user in a group, in Zendesk's shape. Default marks the user's default
// group: their first membership, or the one made default since.
type GroupMembership struct {
	ID        int64  `json:"id"`
	URL       string `json:"url"`
	UserID    int64  `json:"user_id"`
	GroupID   int64  `json:"group_id"`
	Default   bool   `json:"default"`
	CreatedAt Time   `json:"created_at"`
	UpdatedAt Time   `json:"updated_at"`
}

// GroupInput is a group's fields as a request gives them; nil leaves a field as it is (or at
// its default when the group is created: no description, public, not the default group).
type GroupInput struct {
	Name        *string
	Description *string
	IsPublic    *bool
	Default     *bool
}

// maxGroupName and maxGroupDescription bound a group's text (runes), as the table does.
const (
	maxGroupName        = 255
	maxGroupDescription = 1000
)

// cleanGroupText is s with control characters, line separators and bidirectional overrides
// made spaces and the ends trimmed: a group's name is shown on the wallboard, in refusals and
// in logs.
func cleanGroupText(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return ' '
		}
		return r
	}, s))
}

// check cleans and validates in; creating says that name is required.
func (in *GroupInput) check(creating bool) error {
	if in.Name != nil {
		if !utf8.ValidString(*in.Name) {
			return invalidField("name", "must be valid UTF-8")
		}
		n := cleanGroupText(*in.Name)
		switch {
		case n == "":
			return invalidField("name", "cannot be blank")
		case utf8.RuneCountInString(n) > maxGroupName:
			return invalidField("name", "is longer than %d characters", maxGroupName)
		}
		in.Name = &n
	} else if creating {
		return invalidField("name", "is required")
	}
	if in.Description != nil {
		if !utf8.ValidString(*in.Description) {
			return invalidField("description", "must be valid UTF-8")
		}
		d := cleanGroupText(*in.Description)
		if utf8.RuneCountInString(d) > maxGroupDescription {
			return invalidField("description", "is longer than %d characters", maxGroupDescription)
		}
		in.Description = &d
	}
	return nil
}

const groupCols = `id, name, description, is_default, is_public, created_at, updated_at`

func scanGroup(r pgx.Row) (Group, error) {
	var g Group
	err := r.Scan(&g.ID, &g.Name, &g.Description, &g.Default, &g.IsPublic, &g.CreatedAt, &g.UpdatedAt)
	return g, err
}

func getGroup(ctx context.Context, q querier, id int64, lock bool) (Group, error) {
	sql := `SELECT ` + groupCols + ` FROM groups WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	g, err := scanGroup(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Group{}, notFound("group %d not found", id)
	}
	if err != nil {
		return Group{}, fmt.Errorf("ticketing: get group %d: %w", id, err)
	}
	return g, nil
}

// Group returns group id.
func (s *Store) Group(ctx context.Context, id int64) (Group, error) {
	return getGroup(ctx, s.pool, id, false)
}

// CreateGroup makes a group. A name another group has (case aside) is a 422 DuplicateValue on
// name; default true makes it the account's default group in place of the one before.
func (s *Store) CreateGroup(ctx context.Context, actor Actor, in GroupInput) (Group, error) {
	if err := in.check(true); err != nil {
		return Group{}, err
	}
	var out Group
	err := s.inTx(ctx, actor, "group", func(tx pgx.Tx) error {
		def := in.Default != nil && *in.Default
		if def {
			if _, err := tx.Exec(ctx, `UPDATE groups SET is_default = false, updated_at = clock_timestamp() WHERE is_default`); err != nil {
				return dbError("create group", err)
			}
		}
		desc := ""
		if in.Description != nil {
			desc = *in.Description
		}
		pub := in.IsPublic == nil || *in.IsPublic
		g, err := scanGroup(tx.QueryRow(ctx, `INSERT INTO groups (name, description, is_public, is_default)
			VALUES ($1, $2, $3, $4) RETURNING `+groupCols, *in.Name, desc, pub, def))
		if err != nil {
			return dbError("create group", err)
		}
		out = g
		return nil
	})
	return out, err
}

// UpdateGroup changes group id. A private group cannot be made public (Zendesk's rule: its
// tickets were kept from the other agents): a 422 on is_public.
func (s *Store) UpdateGroup(ctx context.Context, actor Actor, id int64, in GroupInput) (Group, error) {
	if err := in.check(false); err != nil {
		return Group{}, err
	}
	var out Group
	err := s.inTx(ctx, actor, "group", func(tx pgx.Tx) error {
		g, err := getGroup(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if in.IsPublic != nil && *in.IsPublic && !g.IsPublic {
			return invalidField("is_public", "a private group cannot be made public")
		}
		if in.Default != nil && *in.Default && !g.Default {
			if _, err := tx.Exec(ctx, `UPDATE groups SET is_default = false, updated_at = clock_timestamp() WHERE is_default`); err != nil {
				return dbError("update group", err)
			}
		}
		out, err = scanGroup(tx.QueryRow(ctx, `UPDATE groups SET name = coalesce($2, name), description = coalesce($3, description),
			is_public = coalesce($4, is_public), is_default = coalesce($5, is_default), updated_at = clock_timestamp()
			WHERE id = $1 RETURNING `+groupCols, id, in.Name, in.Description, in.IsPublic, in.Default))
		return dbError("update group", err)
	})
	return out, err
}

// DeleteGroup deletes group id with its memberships; its tickets keep no group. A member whose
// default group it was gets their oldest remaining membership as the default.
func (s *Store) DeleteGroup(ctx context.Context, actor Actor, id int64) error {
	return s.inTx(ctx, actor, "group", func(tx pgx.Tx) error {
		if _, err := getGroup(ctx, tx, id, true); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT user_id FROM group_memberships WHERE group_id = $1 AND is_default`, id)
		if err != nil {
			return dbError("delete group", err)
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return dbError("delete group", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM groups WHERE id = $1`, id); err != nil {
			return dbError("delete group", err)
		}
		return promoteDefaults(ctx, tx, users)
	})
}

// promoteDefaults gives each of users without a default membership their oldest one.
func promoteDefaults(ctx context.Context, tx pgx.Tx, users []int64) error {
	if len(users) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE group_memberships SET is_default = true, updated_at = clock_timestamp()
		WHERE id IN (SELECT DISTINCT ON (user_id) id FROM group_memberships m WHERE user_id = ANY($1)
			AND NOT EXISTS (SELECT 1 FROM group_memberships d WHERE d.user_id = m.user_id AND d.is_default)
			ORDER BY user_id, id)`, users)
	return dbError("default group membership", err)
}

// GroupFilter selects groups: those UserID belongs to (0: every group), a page of at most
// Limit (1–100) with ids above AfterID, or just below BeforeID (still in id order).
type GroupFilter struct {
	UserID            int64
	AfterID, BeforeID int64
	Limit             int
}

// ListGroups returns a page of groups in id order and whether more follow (in the direction
// asked). A UserID that is no user is a 404.
func (s *Store) ListGroups(ctx context.Context, f GroupFilter) ([]Group, bool, error) {
	if f.UserID != 0 {
		if err := userExists(ctx, s.pool, f.UserID); err != nil {
			return nil, false, err
		}
	}
	where := `WHERE ($1::bigint = 0 OR id IN (SELECT group_id FROM group_memberships WHERE user_id = $1::bigint))`
	rows, err := s.pool.Query(ctx, `SELECT `+groupCols+` FROM groups `+where+idPageClause(f.AfterID, f.BeforeID),
		f.UserID, idPageBound(f.AfterID, f.BeforeID), idPageLimit(f.Limit)+1)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list groups: %w", err)
	}
	gs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Group, error) { return scanGroup(r) })
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list groups: %w", err)
	}
	gs, more := trimIDPage(gs, f.Limit, f.BeforeID)
	return gs, more, nil
}

// idPageClause, idPageBound, idPageLimit and trimIDPage page a list by id ($2 the bound, $3 the limit + 1).
func idPageClause(after, before int64) string {
	if before > 0 {
		return ` AND id < $2::bigint ORDER BY id DESC LIMIT $3`
	}
	return ` AND id > $2::bigint ORDER BY id LIMIT $3`
}

func idPageBound(after, before int64) int64 {
	if before > 0 {
		return before
	}
	return after
}

func idPageLimit(n int) int {
	if n <= 0 || n > 100 {
		return 100
	}
	return n
}

func trimIDPage[T any](items []T, n int, before int64) ([]T, bool) {
	n = idPageLimit(n)
	more := len(items) > n
	if more {
		items = items[:n]
	}
	if before > 0 {
		slices.Reverse(items)
	}
	return items, more
}

func userExists(ctx context.Context, q querier, id int64) error {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)`, id).Scan(&ok); err != nil {
		return fmt.Errorf("ticketing: user %d: %w", id, err)
	}
	if !ok {
		return notFound("user %d not found", id)
	}
	return nil
}

const membershipCols = `id, user_id, group_id, is_default, created_at, updated_at`

func scanMembership(r pgx.Row) (GroupMembership, error) {
	var m GroupMembership
	err := r.Scan(&m.ID, &m.UserID, &m.GroupID, &m.Default, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// GroupMembershipFilter selects memberships: of a user, of a group (0: any), paged as
// GroupFilter.
type GroupMembershipFilter struct {
	UserID, GroupID   int64
	AfterID, BeforeID int64
	Limit             int
}

// ListGroupMemberships returns a page of memberships in id order and whether more follow. A
// UserID or GroupID that names nothing is a 404.
func (s *Store) ListGroupMemberships(ctx context.Context, f GroupMembershipFilter) ([]GroupMembership, bool, error) {
	if f.UserID != 0 {
		if err := userExists(ctx, s.pool, f.UserID); err != nil {
			return nil, false, err
		}
	}
	if f.GroupID != 0 {
		if _, err := s.Group(ctx, f.GroupID); err != nil {
			return nil, false, err
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+membershipCols+` FROM group_memberships
		WHERE ($1::bigint = 0 OR user_id = $1::bigint) AND ($4::bigint = 0 OR group_id = $4::bigint)`+idPageClause(f.AfterID, f.BeforeID),
		f.UserID, idPageBound(f.AfterID, f.BeforeID), idPageLimit(f.Limit)+1, f.GroupID)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list group memberships: %w", err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (GroupMembership, error) { return scanMembership(r) })
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list group memberships: %w", err)
	}
	ms, more := trimIDPage(ms, f.Limit, f.BeforeID)
	return ms, more, nil
}

// GroupMembership returns membership id; with userID set, only when it is that user's (a 404
// otherwise, as for one that does not exist).
func (s *Store) GroupMembership(ctx context.Context, id, userID int64) (GroupMembership, error) {
	return getMembership(ctx, s.pool, id, userID)
}

func getMembership(ctx context.Context, q querier, id, userID int64) (GroupMembership, error) {
	m, err := scanMembership(q.QueryRow(ctx, `SELECT `+membershipCols+` FROM group_memberships
		WHERE id = $1 AND ($2::bigint = 0 OR user_id = $2::bigint)`, id, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return GroupMembership{}, notFound("group membership %d not found", id)
	}
	if err != nil {
		return GroupMembership{}, fmt.Errorf("ticketing: group membership %d: %w", id, err)
	}
	return m, nil
}

// lockMember locks user id's row (memberships of one user change one at a time, and not while
// the user is made an end user) and checks that the user may belong to a group: 422 on
// user_id for no user or an end user.
func lockMember(ctx context.Context, tx pgx.Tx, id int64) error {
	var role string
	err := tx.QueryRow(ctx, `SELECT role FROM users WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE`, id).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return invalidField("user_id", "no user %d", id)
	}
	if err != nil {
		return fmt.Errorf("ticketing: group member %d: %w", id, err)
	}
	if !isStaffRole(role) {
		return invalidField("user_id", "user %d is an end user: only agents, supervisors and admins belong to groups", id)
	}
	return nil
}

// CreateGroupMembership puts user userID in group groupID: 422 naming user_id (no such user, an
// end user, already a member: DuplicateValue) or group_id (no such group). The user's first
// membership is their default; def true makes this one the default in place of another.
func (s *Store) CreateGroupMembership(ctx context.Context, actor Actor, userID, groupID int64, def *bool) (GroupMembership, error) {
	var out GroupMembership
	err := s.inTx(ctx, actor, "group_membership", func(tx pgx.Tx) error {
		if err := lockMember(ctx, tx, userID); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM groups WHERE id = $1)`, groupID).Scan(&exists); err != nil {
			return dbError("create group membership", err)
		}
		if !exists {
			return invalidField("group_id", "no group %d", groupID)
		}
		if def != nil && *def {
			if _, err := tx.Exec(ctx, `UPDATE group_memberships SET is_default = false, updated_at = clock_timestamp()
				WHERE user_id = $1 AND is_default`, userID); err != nil {
				return dbError("create group membership", err)
			}
		}
		m, err := scanMembership(tx.QueryRow(ctx, `INSERT INTO group_memberships (user_id, group_id, is_default)
			VALUES ($1, $2, coalesce($3, false) OR NOT EXISTS (SELECT 1 FROM group_memberships WHERE user_id = $1 AND is_default))
			RETURNING `+membershipCols, userID, groupID, def))
		if err != nil {
			return dbError("create group membership", err)
		}
		out = m
		return nil
	})
	return out, err
}

// DeleteGroupMembership removes membership id (with userID set, only that user's: a 404
// otherwise). When it was the user's default, their oldest remaining membership becomes it.
func (s *Store) DeleteGroupMembership(ctx context.Context, actor Actor, id, userID int64) error {
	return s.inTx(ctx, actor, "group_membership", func(tx pgx.Tx) error {
		m, err := getMembership(ctx, tx, id, userID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`, m.UserID); err != nil {
			return dbError("delete group membership", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM group_memberships WHERE id = $1`, id)
		if err != nil {
			return dbError("delete group membership", err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("group membership %d not found", id)
		}
		return promoteDefaults(ctx, tx, []int64{m.UserID})
	})
}

// MakeDefaultGroupMembership makes membership id user userID's default and returns the user's
// memberships (Zendesk's answer); another user's membership is a 404.
func (s *Store) MakeDefaultGroupMembership(ctx context.Context, actor Actor, userID, id int64) ([]GroupMembership, error) {
	var out []GroupMembership
	err := s.inTx(ctx, actor, "group_membership", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`, userID); err != nil {
			return dbError("default group membership", err)
		}
		var found bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM group_memberships WHERE id = $1 AND user_id = $2)`, id, userID).Scan(&found); err != nil {
			return dbError("default group membership", err)
		}
		if !found {
			return notFound("group membership %d of user %d not found", id, userID)
		}
		// Two statements: the unique index of defaults is checked row by row.
		if _, err := tx.Exec(ctx, `UPDATE group_memberships SET is_default = false, updated_at = clock_timestamp()
			WHERE user_id = $2 AND is_default AND id <> $1`, id, userID); err != nil {
			return dbError("default group membership", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE group_memberships SET is_default = true, updated_at = clock_timestamp()
			WHERE id = $1 AND NOT is_default`, id); err != nil {
			return dbError("default group membership", err)
		}
		rows, err := tx.Query(ctx, `SELECT `+membershipCols+` FROM group_memberships WHERE user_id = $1 ORDER BY id`, userID)
		if err != nil {
			return dbError("default group membership", err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (GroupMembership, error) { return scanMembership(r) })
		return dbError("default group membership", err)
	})
	return out, err
}

// AgentScope is whom a user supervises (monitor, whisper, barge, set the state of, see on the
// wallboard): every agent, or the agents sharing a group with them.
type AgentScope struct {
	// All: every agent — an admin, or a supervisor who belongs to no group (the behaviour
	// before groups existed, kept so that deployments without groups do not change).
	All bool
	// Agents are the users sharing at least one group with the supervisor (themselves
	// included), when not All.
	Agents map[int64]bool
	// Groups are the names of the supervisor's groups, for a refusal's description.
	Groups []string
}

// Allows reports whether the scope covers agent id.
func (s AgentScope) Allows(id int64) bool { return s.All || s.Agents[id] }

// Refusal says why the scope does not cover agent id, for a 403's description.
func (s AgentScope) Refusal(id int64) string {
	if len(s.Groups) == 0 {
		return fmt.Sprintf("you may not supervise agent %d: only supervisors and admins supervise agents", id)
	}
	return fmt.Sprintf("agent %d is in none of your groups (%s): a supervisor who belongs to groups supervises only the agents of those groups",
		id, strings.Join(s.Groups, ", "))
}

// SupervisionScope returns whom user userID supervises: an admin every agent; a supervisor
// every agent when they belong to no group, else the members of their groups; anyone else
// (an agent, an unknown or deleted user) nobody. It reads the database on every call, so a
// membership change applies to the next request on every node.
func (s *Store) SupervisionScope(ctx context.Context, userID int64) (AgentScope, error) {
	var role string
	var groups []string
	var agents []int64
	err := s.pool.QueryRow(ctx, `SELECT u.role,
			coalesce((SELECT array_agg(g.name ORDER BY g.name) FROM group_memberships m JOIN groups g ON g.id = m.group_id
				WHERE m.user_id = u.id), '{}'),
			coalesce((SELECT array_agg(DISTINCT o.user_id) FROM group_memberships m JOIN group_memberships o ON o.group_id = m.group_id
				WHERE m.user_id = u.id), '{}')
		FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL`, userID).Scan(&role, &groups, &agents)
	if errors.Is(err, pgx.ErrNoRows) {
		return AgentScope{Agents: map[int64]bool{}}, nil
	}
	if err != nil {
		return AgentScope{}, fmt.Errorf("ticketing: supervision scope of user %d: %w", userID, err)
	}
	switch {
	case role == RoleAdmin:
		return AgentScope{All: true, Groups: groups}, nil
	case role == RoleSupervisor && len(groups) == 0:
		return AgentScope{All: true}, nil
	case role != RoleSupervisor:
		return AgentScope{Agents: map[int64]bool{}}, nil
	}
	sc := AgentScope{Agents: make(map[int64]bool, len(agents)), Groups: groups}
	for _, id := range agents {
		sc.Agents[id] = true
	}
	return sc, nil
}
