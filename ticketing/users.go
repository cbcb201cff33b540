package ticketing

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"
)

// User roles. End users are the people tickets are about and have no login; agents,
// supervisors and admins log in to the API and the softphone. A supervisor is an agent who
// may also supervise calls, read the wallboard and set any agent's state, without the admins'
// settings, roster, webhooks and tokens (docs/supervisors.md).
const (
	RoleEndUser    = "end-user"
	RoleAgent      = "agent"
	RoleSupervisor = "supervisor"
	RoleAdmin      = "admin"
)

// User is an end user, agent or admin, in the shape of the API (docs/api.md): Zendesk's user
// with the phone fields added. Phone is the primary number and SharedPhoneNumber tells whether
// that number is a shared one. ExternalID, Verified, Tags, TimeZone, Locale, UserFields, Notes
// and Details are stored and returned as the client set them. URL is filled in by the API.
type User struct {
	ID                int64          `json:"id"`
	URL               string         `json:"url"`
	Name              string         `json:"name"`
	Email             *string        `json:"email"`
	Role              string         `json:"role"`
	Phone             *string        `json:"phone"`
	SharedPhoneNumber bool           `json:"shared_phone_number"`
	Active            bool           `json:"active"`
	Verified          bool           `json:"verified"`
	ExternalID        *string        `json:"external_id"`
	Tags              []string       `json:"tags"`
	TimeZone          *string        `json:"time_zone"`
	Locale            *string        `json:"locale"`
	UserFields        map[string]any `json:"user_fields"`
	Notes             *string        `json:"notes"`
	Details           *string        `json:"details"`
	Placeholder       bool           `json:"placeholder"`
	MergedIntoID      *int64         `json:"merged_into_id"`
	CreatedAt         Time           `json:"created_at"`
	UpdatedAt         Time           `json:"updated_at"`
}

// IsStaff reports whether u is an agent, a supervisor or an admin.
func (u User) IsStaff() bool { return isStaffRole(u.Role) }

// isStaffRole reports whether role logs in: agent, supervisor or admin.
func isStaffRole(role string) bool {
	return role == RoleAgent || role == RoleSupervisor || role == RoleAdmin
}

// userCols and userFrom read a user (u) and its primary number (p); userSelect is both.
const userCols = `u.id, u.name, u.email, u.role, u.placeholder, u.merged_into_id, u.created_at, u.updated_at,
	p.value, coalesce(p.line_type = 'shared', false), u.deleted_at IS NULL, u.verified, u.external_id, u.tags,
	u.time_zone, u.locale, u.user_fields, u.notes, u.details`

const userFrom = `FROM users u LEFT JOIN LATERAL (
		SELECT value, line_type FROM user_identities i WHERE i.user_id = u.id ORDER BY is_primary DESC, id LIMIT 1
	) p ON true `

const userSelect = `SELECT ` + userCols + ` ` + userFrom

// scanUser reads the columns of userCols, then extra.
func scanUser(r pgx.Row, extra ...any) (User, error) {
	var u User
	dest := append([]any{&u.ID, &u.Name, &u.Email, &u.Role, &u.Placeholder, &u.MergedIntoID, &u.CreatedAt, &u.UpdatedAt,
		&u.Phone, &u.SharedPhoneNumber, &u.Active, &u.Verified, &u.ExternalID, &u.Tags, &u.TimeZone, &u.Locale,
		&u.UserFields, &u.Notes, &u.Details}, extra...)
	err := r.Scan(dest...)
	if u.Tags == nil {
		u.Tags = []string{}
	}
	if u.UserFields == nil {
		u.UserFields = map[string]any{}
	}
	return u, err
}

func getUser(ctx context.Context, q querier, id int64) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, userSelect+`WHERE u.id = $1 AND u.deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, notFound("user %d not found", id)
	}
	if err != nil {
		return User{}, fmt.Errorf("ticketing: get user %d: %w", id, err)
	}
	return u, nil
}

// User returns user id as stored; a merged user comes back as the redirect it is, with
// MergedIntoID set (UM-5). ErrNotFound when unknown or deleted.
func (s *Store) User(ctx context.Context, id int64) (User, error) {
	return getUser(ctx, s.pool, id)
}

// LiveUser returns user id, following merge redirects to the user it now lives in (UM-5).
func (s *Store) LiveUser(ctx context.Context, id int64) (User, error) {
	return liveUser(ctx, s.pool, id, false)
}

// liveUser follows merged_into_id (bounded; merges flatten chains) and optionally locks the row.
func liveUser(ctx context.Context, q querier, id int64, lock bool) (User, error) {
	for range 16 {
		var merged *int64
		sql := `SELECT merged_into_id FROM users WHERE id = $1 AND deleted_at IS NULL`
		if lock {
			sql += ` FOR UPDATE`
		}
		err := q.QueryRow(ctx, sql, id).Scan(&merged)
		if errors.Is(err, pgx.ErrNoRows) {
			return User{}, notFound("user %d not found", id)
		}
		if err != nil {
			return User{}, fmt.Errorf("ticketing: live user %d: %w", id, err)
		}
		if merged == nil {
			return getUser(ctx, q, id)
		}
		id = *merged
	}
	return User{}, fmt.Errorf("ticketing: live user %d: merge chain too long", id)
}

// UserFilter selects users for ListUsers: Role (empty for all), and a page of at most Limit
// (1–100, default 100) users with IDs above AfterID, in ID order.
type UserFilter struct {
	Role    string
	AfterID int64
	// BeforeID, when set, asks for the page just before it (Zendesk's page[before]), in id
	// order; "more" then means more before it.
	BeforeID int64
	Limit    int
}

// ListUsers returns a page of users and whether more follow.
func (s *Store) ListUsers(ctx context.Context, f UserFilter) ([]User, bool, error) {
	if f.Limit <= 0 || f.Limit > 100 {
		f.Limit = 100
	}
	if f.Role != "" && f.Role != RoleEndUser && !isStaffRole(f.Role) {
		return nil, false, invalidField("role", "%q is not a role; use end-user, agent, supervisor or admin", f.Role)
	}
	q, bound := userSelect+`WHERE u.deleted_at IS NULL AND ($1 = '' OR u.role = $1) AND u.id > $2
		ORDER BY u.id LIMIT $3`, f.AfterID
	if f.BeforeID > 0 {
		q, bound = userSelect+`WHERE u.deleted_at IS NULL AND ($1 = '' OR u.role = $1) AND u.id < $2
		ORDER BY u.id DESC LIMIT $3`, f.BeforeID
	}
	rows, err := s.pool.Query(ctx, q, f.Role, bound, f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list users: %w", err)
	}
	more := len(users) > f.Limit
	if more {
		users = users[:f.Limit]
	}
	if f.BeforeID > 0 {
		slices.Reverse(users)
	}
	return users, more, nil
}

// NewUser is what CreateUser takes. Phone, when set, becomes the user's first identity under
// the PM rules (direct when no one else has it, else shared).
type NewUser struct {
	Name     string
	Email    string
	Role     string
	Password string
	Phone    string
	// Zendesk's user fields, stored and returned.
	Zendesk UserExtras
}

// UserExtras are Zendesk's user fields that Switchboard stores and returns: nil leaves a
// field as it is. An empty ExternalID, TimeZone, Locale, Notes or Details clears it.
type UserExtras struct {
	ExternalID *string
	Verified   *bool
	Tags       *[]string
	TimeZone   *string
	Locale     *string
	UserFields map[string]any
	Notes      *string
	Details    *string
}

func (x UserExtras) empty() bool {
	return x.ExternalID == nil && x.Verified == nil && x.Tags == nil && x.TimeZone == nil && x.Locale == nil &&
		x.UserFields == nil && x.Notes == nil && x.Details == nil
}

// write stores x on user id; user_fields are merged into those held (Zendesk's update).
func (x UserExtras) write(ctx context.Context, tx pgx.Tx, id int64) error {
	if x.empty() {
		return nil
	}
	var tags []string
	if x.Tags != nil {
		var err error
		if tags, err = normalizeTags(*x.Tags); err != nil {
			return err
		}
	}
	var fields []byte
	if x.UserFields != nil {
		var err error
		if fields, err = json.Marshal(x.UserFields); err != nil {
			return invalidField("user_fields", "cannot be stored: %v", err)
		}
	}
	_, err := tx.Exec(ctx, `UPDATE users SET
		external_id = CASE WHEN $2::text IS NULL THEN external_id ELSE nullif($2, '') END,
		verified = coalesce($3, verified),
		tags = coalesce($4, tags),
		time_zone = CASE WHEN $5::text IS NULL THEN time_zone ELSE nullif($5, '') END,
		locale = CASE WHEN $6::text IS NULL THEN locale ELSE nullif($6, '') END,
		user_fields = CASE WHEN $7::jsonb IS NULL THEN user_fields ELSE user_fields || $7::jsonb END,
		notes = CASE WHEN $8::text IS NULL THEN notes ELSE nullif($8, '') END,
		details = CASE WHEN $9::text IS NULL THEN details ELSE nullif($9, '') END
		WHERE id = $1`, id, x.ExternalID, x.Verified, tags, x.TimeZone, x.Locale, fields, x.Notes, x.Details)
	return dbError("update user", err)
}

func checkEmail(email string) (*string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return nil, nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email {
		return nil, invalidField("email", "%q is not an email address", email)
	}
	return &email, nil
}

func checkRole(role string) (string, error) {
	switch role {
	case "":
		return RoleEndUser, nil
	case RoleEndUser, RoleAgent, RoleSupervisor, RoleAdmin:
		return role, nil
	}
	return "", invalidField("role", "%q is not a role; use end-user, agent, supervisor or admin", role)
}

func (s *Store) hashPassword(role, password string) (*string, error) {
	if password == "" {
		return nil, nil
	}
	if role == RoleEndUser {
		return nil, invalidField("password", "end users have no login; only agents and admins have a password")
	}
	if len(password) < 8 || len(password) > 72 {
		return nil, invalidField("password", "must be 8 to 72 bytes long")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("ticketing: hash password: %w", err)
	}
	hs := string(h)
	return &hs, nil
}

// CreateUser creates a user; every check and the first identity happen in one transaction.
func (s *Store) CreateUser(ctx context.Context, actor Actor, in NewUser) (User, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return User{}, invalidField("name", "is required")
	}
	email, err := checkEmail(in.Email)
	if err != nil {
		return User{}, err
	}
	role, err := checkRole(in.Role)
	if err != nil {
		return User{}, err
	}
	hash, err := s.hashPassword(role, in.Password)
	if err != nil {
		return User{}, err
	}
	var settings Settings
	if in.Phone != "" {
		if settings, err = s.Settings(ctx); err != nil {
			return User{}, err
		}
	}
	var u User
	err = s.inTx(ctx, actor, "create_user", func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO users (name, email, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING id`,
			name, email, role, hash).Scan(&id); err != nil {
			return dbError("create user", err)
		}
		if in.Phone != "" {
			if _, err := s.addIdentity(ctx, tx, id, in.Phone, settings.PhoneValidation); err != nil {
				return err
			}
		}
		if err := in.Zendesk.write(ctx, tx, id); err != nil {
			return err
		}
		u, err = getUser(ctx, tx, id)
		return err
	})
	return u, err
}

// UserPatch is what UpdateUser changes; nil fields stay. Phone adds the number (PM rules)
// when the user lacks it and makes it primary.
type UserPatch struct {
	Name     *string
	Email    *string
	Role     *string
	Password *string
	Phone    *string
	Zendesk  UserExtras
}

// UpdateUser changes user id in one transaction. A merged user is a redirect and cannot change
// (409). A user who becomes an end user loses their password and API tokens.
func (s *Store) UpdateUser(ctx context.Context, actor Actor, id int64, p UserPatch) (User, error) {
	var settings Settings
	var err error
	if p.Phone != nil {
		if settings, err = s.Settings(ctx); err != nil {
			return User{}, err
		}
	}
	var u User
	err = s.inTx(ctx, actor, "update_user", func(tx pgx.Tx) error {
		var role string
		var merged *int64
		err := tx.QueryRow(ctx, `SELECT role, merged_into_id FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, id).Scan(&role, &merged)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("user %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("ticketing: update user %d: %w", id, err)
		}
		if merged != nil {
			return conflict("user %d was merged into user %d and cannot change", id, *merged)
		}
		if p.Name != nil {
			n := strings.TrimSpace(*p.Name)
			if n == "" {
				return invalidField("name", "must not be empty")
			}
			if _, err := tx.Exec(ctx, `UPDATE users SET name = $2 WHERE id = $1`, id, n); err != nil {
				return dbError("update user name", err)
			}
		}
		if p.Email != nil {
			email, err := checkEmail(*p.Email)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE users SET email = $2 WHERE id = $1`, id, email); err != nil {
				return dbError("update user email", err)
			}
		}
		if p.Role != nil {
			if role, err = checkRole(*p.Role); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE users SET role = $2 WHERE id = $1`, id, role); err != nil {
				return dbError("update user role", err)
			}
			if role == RoleEndUser {
				// End users have no login.
				if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = NULL WHERE id = $1`, id); err != nil {
					return dbError("update user role", err)
				}
				if _, err := tx.Exec(ctx, `DELETE FROM api_tokens WHERE user_id = $1`, id); err != nil {
					return dbError("update user role", err)
				}
			}
		}
		if p.Password != nil {
			hash, err := s.hashPassword(role, *p.Password)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, id, hash); err != nil {
				return dbError("update user password", err)
			}
		}
		if p.Phone != nil {
			norm, err := normalizePhone(*p.Phone, settings.PhoneValidation, s.opts.DefaultRegion)
			if err != nil {
				return err
			}
			var iid int64
			err = tx.QueryRow(ctx, `SELECT id FROM user_identities WHERE user_id = $1 AND value = $2`, id, norm).Scan(&iid)
			if errors.Is(err, pgx.ErrNoRows) {
				ident, err := s.addIdentity(ctx, tx, id, norm, false)
				if err != nil {
					return err
				}
				iid = ident.ID
			} else if err != nil {
				return fmt.Errorf("ticketing: update user phone: %w", err)
			}
			if err := makePrimary(ctx, tx, id, iid); err != nil {
				return err
			}
		}
		if err := p.Zendesk.write(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET updated_at = clock_timestamp() WHERE id = $1`, id); err != nil {
			return dbError("update user", err)
		}
		u, err = getUser(ctx, tx, id)
		return err
	})
	if err == nil && (p.Password != nil || p.Role != nil) {
		s.credentialsChanged(id)
	}
	return u, err
}

// credentialsChanged tells StoreOptions.CredentialsChanged, after the commit.
func (s *Store) credentialsChanged(id int64) {
	if s.opts.CredentialsChanged != nil {
		s.opts.CredentialsChanged(id)
	}
}

// DeleteUser deletes user id: the record is kept for its tickets (deleted_at), its numbers and
// tokens are removed so that the numbers are free again. An actor cannot delete themself.
func (s *Store) DeleteUser(ctx context.Context, actor Actor, id int64) error {
	if actor != SystemActor && int64(actor) == id {
		return conflict("you cannot delete yourself")
	}
	err := s.inTx(ctx, actor, "delete_user", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET deleted_at = clock_timestamp(), updated_at = clock_timestamp(), password_hash = NULL
			WHERE id = $1 AND deleted_at IS NULL`, id)
		if err != nil {
			return dbError("delete user", err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("user %d not found", id)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_identities WHERE user_id = $1`, id); err != nil {
			return dbError("delete user identities", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM api_tokens WHERE user_id = $1`, id); err != nil {
			return dbError("delete user tokens", err)
		}
		return nil
	})
	if err == nil {
		s.credentialsChanged(id)
	}
	return err
}

// looksLikeBcrypt reports whether v is a bcrypt hash rather than a password.
func looksLikeBcrypt(v string) bool {
	if !strings.HasPrefix(v, "$2a$") && !strings.HasPrefix(v, "$2b$") && !strings.HasPrefix(v, "$2y$") {
		return false
	}
	_, err := bcrypt.Cost([]byte(v))
	return err == nil
}

// EnsureUser makes sure an agent or admin of the configuration exists, for cmd/switchboard at
// start: it creates the user when no one has the email, and otherwise brings name, role and
// password in line with the configuration (the configuration wins). passwordOrHash is a
// password or a bcrypt hash ("$2a$..."). Idempotent: running it twice changes nothing.
func (s *Store) EnsureUser(ctx context.Context, email, name, role, passwordOrHash string) (User, error) {
	e, err := checkEmail(email)
	if err != nil {
		return User{}, err
	}
	if e == nil {
		return User{}, invalidField("email", "is required")
	}
	if role, err = checkRole(role); err != nil {
		return User{}, err
	}
	if strings.TrimSpace(name) == "" {
		name = email
	}
	var id int64
	var hash *string
	err = s.pool.QueryRow(ctx, `SELECT id, password_hash FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`, email).Scan(&id, &hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		var h *string
		if passwordOrHash != "" {
			if looksLikeBcrypt(passwordOrHash) {
				h = &passwordOrHash
			} else if h, err = s.hashPassword(role, passwordOrHash); err != nil {
				return User{}, err
			}
		}
		_, err := s.pool.Exec(ctx, `INSERT INTO users (name, email, role, password_hash) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, name, email, role, h)
		if err != nil {
			return User{}, dbError("ensure user", err)
		}
		return s.EnsureUser(ctx, email, name, role, passwordOrHash)
	case err != nil:
		return User{}, fmt.Errorf("ticketing: ensure user %s: %w", email, err)
	}
	newHash := hash
	switch {
	case passwordOrHash == "":
	case looksLikeBcrypt(passwordOrHash):
		newHash = &passwordOrHash
	case hash == nil || bcrypt.CompareHashAndPassword([]byte(*hash), []byte(passwordOrHash)) != nil:
		if newHash, err = s.hashPassword(role, passwordOrHash); err != nil {
			return User{}, err
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE users SET name = $2, role = $3, password_hash = $4,
		updated_at = CASE WHEN (name, role, password_hash) IS DISTINCT FROM ($2, $3, $4) THEN clock_timestamp() ELSE updated_at END
		WHERE id = $1`, id, name, role, newHash); err != nil {
		return User{}, dbError("ensure user", err)
	}
	return getUser(ctx, s.pool, id)
}

// StaffByEmail returns the agent or admin with this email (compared without regard to case),
// or an ErrNotFound error when no live agent or admin has it: an end user is not staff.
func (s *Store) StaffByEmail(ctx context.Context, email string) (User, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL
		AND role IN ('agent', 'supervisor', 'admin')`, email).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, notFound("no agent or admin with email %s", email)
	}
	if err != nil {
		return User{}, fmt.Errorf("ticketing: staff by email: %w", err)
	}
	return getUser(ctx, s.pool, id)
}

// CheckPassword returns the agent or admin with this email when password is theirs; any
// mismatch is ErrUnauthorized, without telling which part was wrong. When every bcrypt slot
// (StoreOptions.BcryptConcurrency) is busy it returns ErrTooManyRequests at once, without
// checking: the caller answers 429.
func (s *Store) CheckPassword(ctx context.Context, email, password string) (User, error) {
	var id int64
	var hash *string
	err := s.pool.QueryRow(ctx, `SELECT id, password_hash FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL
		AND role IN ('agent', 'supervisor', 'admin')`, email).Scan(&id, &hash)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && hash == nil) {
		// Spend the time a real check takes, so that timing does not tell which emails exist.
		if err := s.compareHash(s.dummyHash(), password); errors.Is(err, ErrTooManyRequests) {
			return User{}, err
		}
		return User{}, &Error{Kind: ErrUnauthorized, Description: "wrong email or password"}
	}
	if err != nil {
		return User{}, fmt.Errorf("ticketing: check password: %w", err)
	}
	if !s.verified.ok(*hash, password) {
		if err := s.compareHash([]byte(*hash), password); err != nil {
			if errors.Is(err, ErrTooManyRequests) {
				return User{}, err
			}
			return User{}, &Error{Kind: ErrUnauthorized, Description: "wrong email or password"}
		}
		s.verified.add(*hash, password)
	}
	return getUser(ctx, s.pool, id)
}

// errBcryptBusy is CheckPassword's answer when every bcrypt slot is taken.
func errBcryptBusy() error {
	return &Error{Kind: ErrTooManyRequests, RetryAfter: time.Second, Description: "too many logins at once: try again in a second"}
}

// compareHash runs one bcrypt comparison in a free slot, or returns errBcryptBusy at once.
func (s *Store) compareHash(hash []byte, password string) error {
	select {
	case s.bcryptSlots <- struct{}{}:
	default:
		return errBcryptBusy()
	}
	defer func() { <-s.bcryptSlots }()
	return s.opts.CompareHash(hash, []byte(password))
}

// SearchUsers returns users whose name or email contains query (case-insensitive), and the
// holders of query when it reads as a phone number; at most 100, live users only.
func (s *Store) SearchUsers(ctx context.Context, query string) ([]User, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, invalidField("query", "is required")
	}
	phone := ""
	if strings.ContainsAny(query, "0123456789") {
		if n, err := normalizePhone(query, false, s.opts.DefaultRegion); err == nil {
			phone = n
		}
	}
	like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query) + "%"
	rows, err := s.pool.Query(ctx, userSelect+`WHERE u.deleted_at IS NULL AND u.merged_into_id IS NULL AND (
		u.name ILIKE $1 OR u.email ILIKE $1 OR ($2 <> '' AND EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id AND i.value = $2)))
		ORDER BY u.id LIMIT 100`, like, phone)
	if err != nil {
		return nil, fmt.Errorf("ticketing: search users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: search users: %w", err)
	}
	return users, nil
}

// dummyHash is a bcrypt hash at the store's cost that matches no password, made once.
func (s *Store) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		var b [16]byte
		_, _ = rand.Read(b[:])
		s.dummy, _ = bcrypt.GenerateFromPassword([]byte(base64.RawURLEncoding.EncodeToString(b[:])), s.opts.BcryptCost)
	})
	return s.dummy
}

// FindOrCreateRequester returns the user a new ticket's inline requester names (Zendesk's
// requester: {name, email, phone}): the live user with this email, else the direct owner of
// this phone number (or its one shared holder), else a new end user with them. A racing
// request that created the same email first wins and its user is returned.
func (s *Store) FindOrCreateRequester(ctx context.Context, actor Actor, name, email, phone string) (int64, error) {
	email = strings.TrimSpace(email)
	for attempt := 0; attempt < 2; attempt++ {
		if email != "" {
			if _, err := checkEmail(email); err != nil {
				return 0, renameField(err, "email", "requester.email")
			}
			var id int64
			err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`, email).Scan(&id)
			if err == nil {
				u, err := s.LiveUser(ctx, id)
				return u.ID, err
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return 0, fmt.Errorf("ticketing: find requester: %w", err)
			}
		}
		if phone != "" {
			hs, err := s.UsersByPhone(ctx, phone)
			if err != nil {
				return 0, renameField(err, "value", "requester.phone")
			}
			if len(hs) > 0 && (hs[0].LineType == LineDirect || len(hs) == 1) {
				return hs[0].User.ID, nil
			}
		}
		if strings.TrimSpace(name) == "" {
			name = email
			if name == "" {
				name = phone
			}
		}
		u, err := s.CreateUser(ctx, actor, NewUser{Name: name, Email: email, Phone: phone})
		if err == nil {
			return u.ID, nil
		}
		var e *Error
		if errors.As(err, &e) && e.Details["email"] != nil && attempt == 0 {
			continue // created concurrently: find it
		}
		return 0, renameField(renameField(renameField(err, "email", "requester.email"), "value", "requester.phone"), "name", "requester.name")
	}
	return 0, conflict("the requester changed concurrently; retry")
}

// UsersByIDs returns the live users among ids (merged ones as their redirect), in id order.
func (s *Store) UsersByIDs(ctx context.Context, ids []int64) ([]User, error) {
	rows, err := s.pool.Query(ctx, userSelect+`WHERE u.id = ANY($1) AND u.deleted_at IS NULL ORDER BY u.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("ticketing: users by ids: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: users by ids: %w", err)
	}
	return users, nil
}

// UsersByExternalIDs returns the live users holding these external ids, in id order.
func (s *Store) UsersByExternalIDs(ctx context.Context, ext []string) ([]User, error) {
	rows, err := s.pool.Query(ctx, userSelect+`WHERE u.external_id = ANY($1) AND u.deleted_at IS NULL ORDER BY u.id`, ext)
	if err != nil {
		return nil, fmt.Errorf("ticketing: users by external ids: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: users by external ids: %w", err)
	}
	return users, nil
}

// MatchUser returns the live user create_or_update updates: the one with externalID when
// given, else the one with email (compared without regard to case); 0 when none.
func (s *Store) MatchUser(ctx context.Context, externalID, email string) (int64, error) {
	var id int64
	var err error
	switch {
	case externalID != "":
		err = s.pool.QueryRow(ctx, `SELECT id FROM users WHERE external_id = $1 AND deleted_at IS NULL`, externalID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) && email != "" {
			return s.MatchUser(ctx, "", email)
		}
	case email != "":
		err = s.pool.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`, strings.TrimSpace(email)).Scan(&id)
	default:
		return 0, nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ticketing: match user: %w", err)
	}
	u, err := s.LiveUser(ctx, id)
	return u.ID, err
}
