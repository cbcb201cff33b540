package ticketing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ResolveOptions tune one caller resolution.
type ResolveOptions struct {
	// Settings are the effective settings of the call's line (LineSettings.Apply); nil means
	// the stored global settings.
	Settings *Settings
	// CallID names the placeholder user of an anonymous call (PM-3).
	CallID string
	// AgentID is the agent who accepted the call, the requester of an anonymous call under
	// agent_as_requester; zero when no agent has accepted yet.
	AgentID int64
}

// Resolution is who a call is about.
type Resolution struct {
	// Number is the normalised caller number; empty for an anonymous caller.
	Number string `json:"number"`
	// Anonymous is set when the caller sent no usable number (PM-3).
	Anonymous bool `json:"anonymous"`
	// Location is where the number was acquired (CD-5); empty when unknown.
	Location string `json:"location"`
	// Requester is the ticket's requester. It is nil with anonymous_caller_policy no_ticket
	// (NoTicket is then set), and with agent_as_requester before an agent accepted the call.
	Requester *User `json:"requester"`
	// Candidates are every user matching the number, the direct owner first and then the
	// shared holders, most recently created first (PM-11).
	Candidates []Holder `json:"candidates"`
	// Ambiguous is set when several users match and none owns the number as a direct line
	// (PM-12): the agent may pick, else Requester (the most recent) stands (TC-9).
	Ambiguous bool `json:"ambiguous"`
	// Created is set when resolution created the requester (PM-2, PM-3, PM-9).
	Created bool `json:"created"`
	// NoTicket is set when the settings say this call gets no ticket (PM-3, no_ticket).
	NoTicket bool `json:"no_ticket"`
	// Rule is the rule that decided: "PM-1", "PM-2", "PM-3" or "PM-9".
	Rule string `json:"rule"`
}

// ResolveCaller finds the requester of a call from number, the caller ID as the carrier sent
// it, under the PM rules: the direct owner (PM-1, PM-5, PM-7); a new end user named after the
// number owning it as a direct line when no one holds it (PM-2); for an anonymous caller, the
// anonymous_caller_policy (PM-3: by default a new placeholder user per call, which never
// matches a later call); when only shared holders remain, the unowned_number_policy (PM-9:
// create_user makes a new owner and removes the number from the holders, audited;
// most_recent_contact picks the most recently created holder). The number is normalised
// (package phone) with the store's default region whatever phone_validation says: a carrier's
// format is not the caller's fault; a number that cannot be read as one is an anonymous caller
// (PM-3), never a user named after it. Two calls racing from a new number end with one new
// user: the loser retries.
func (s *Store) ResolveCaller(ctx context.Context, number string, opts ResolveOptions) (Resolution, error) {
	var st Settings
	if opts.Settings != nil {
		st = *opts.Settings
	} else {
		var err error
		if st, err = s.Settings(ctx); err != nil {
			return Resolution{}, err
		}
	}
	norm, ok := s.callerNumber(number)
	if !ok {
		return s.resolveAnonymous(ctx, st, opts)
	}
	res := Resolution{Number: norm, Location: s.PhoneLocation(norm)}
	// The common case reads only: one query, no transaction.
	hs, err := holders(ctx, s.pool, norm)
	if err != nil {
		return Resolution{}, err
	}
	if len(hs) > 0 && (hs[0].LineType == LineDirect || st.UnownedNumberPolicy == UnownedMostRecentContact) {
		pickHolder(&res, hs)
		return res, nil
	}
	for attempt := 0; ; attempt++ {
		r := res
		err := s.inTx(ctx, SystemActor, "resolve_caller", func(tx pgx.Tx) error {
			return s.resolveNumber(ctx, tx, st, &r)
		})
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= 4 {
			return Resolution{}, fmt.Errorf("ticketing: resolve caller %s: %w", norm, err)
		}
		// Another call created the owner first: read again.
	}
}

func (s *Store) resolveNumber(ctx context.Context, tx pgx.Tx, st Settings, r *Resolution) error {
	hs, err := holders(ctx, tx, r.Number)
	if err != nil {
		return err
	}
	if len(hs) > 0 && (hs[0].LineType == LineDirect || st.UnownedNumberPolicy == UnownedMostRecentContact) {
		pickHolder(r, hs)
		return nil
	}
	// PM-2 (nobody holds it) or PM-9 create_user (only shared holders).
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO users (name) VALUES ($1) RETURNING id`, r.Number).Scan(&id); err != nil {
		return dbError("create caller", err)
	}
	r.Rule = "PM-2"
	if len(hs) > 0 {
		r.Rule = "PM-9"
		// The shared holders lose the number, which the new user now owns.
		rows, err := tx.Query(ctx, `DELETE FROM user_identities WHERE value = $1 AND line_type = 'shared'
			RETURNING id, user_id, is_primary`, r.Number)
		if err != nil {
			return dbError("pm-9 remove shared", err)
		}
		type removed struct {
			id, user int64
			primary  bool
		}
		var rs []removed
		for rows.Next() {
			var x removed
			if err := rows.Scan(&x.id, &x.user, &x.primary); err != nil {
				rows.Close()
				return fmt.Errorf("ticketing: pm-9 remove shared: %w", err)
			}
			rs = append(rs, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbError("pm-9 remove shared", err)
		}
		for _, x := range rs {
			if x.primary {
				if _, err := tx.Exec(ctx, `UPDATE user_identities SET is_primary = true WHERE id =
					(SELECT id FROM user_identities WHERE user_id = $1 ORDER BY id LIMIT 1)`, x.user); err != nil {
					return dbError("pm-9 promote primary", err)
				}
			}
			uid := x.user
			if err := audit(ctx, tx, SystemActor, AuditIdentityRemoved, &uid, nil, map[string]any{
				"rule": "PM-9", "identity_id": x.id, "value": r.Number, "line_type": LineShared, "new_owner_id": id,
			}); err != nil {
				return err
			}
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO user_identities (user_id, value, line_type, is_primary) VALUES ($1, $2, 'direct', true)`,
		id, r.Number); err != nil {
		return dbError("create caller identity", err)
	}
	u, err := getUser(ctx, tx, id)
	if err != nil {
		return err
	}
	r.Requester, r.Created = &u, true
	r.Candidates = []Holder{{User: u, LineType: LineDirect}}
	return nil
}

// pickHolder resolves to the direct owner (PM-1, PM-7) or, with no owner under
// most_recent_contact, to the most recently created holder (PM-9, PM-12): holders come owner
// first, then most recently created first.
func pickHolder(r *Resolution, hs []Holder) {
	r.Requester, r.Candidates = &hs[0].User, hs
	if hs[0].LineType == LineDirect {
		r.Rule = "PM-1"
		return
	}
	r.Rule, r.Ambiguous = "PM-9", len(hs) > 1
}

func (s *Store) resolveAnonymous(ctx context.Context, st Settings, opts ResolveOptions) (Resolution, error) {
	r := Resolution{Anonymous: true, Rule: "PM-3", Candidates: []Holder{}}
	switch st.AnonymousCallerPolicy {
	case AnonymousNoTicket:
		r.NoTicket = true
		return r, nil
	case AnonymousAgentAsRequester:
		if opts.AgentID == 0 {
			return r, nil
		}
		u, err := s.LiveUser(ctx, opts.AgentID)
		if err != nil {
			return Resolution{}, fmt.Errorf("ticketing: resolve anonymous caller: agent: %w", err)
		}
		r.Requester = &u
		return r, nil
	}
	name := "Anonymous caller"
	if id := strings.TrimSpace(opts.CallID); id != "" {
		name += " (call " + id + ")"
	}
	var id int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO users (name, placeholder) VALUES ($1, true) RETURNING id`, name).Scan(&id); err != nil {
		return Resolution{}, dbError("create placeholder caller", err)
	}
	u, err := getUser(ctx, s.pool, id)
	if err != nil {
		return Resolution{}, err
	}
	r.Requester, r.Created = &u, true
	return r, nil
}
