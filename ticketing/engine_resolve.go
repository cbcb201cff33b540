package ticketing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// resolveIn is ResolveCaller inside the engine's transaction, so that the requester it creates
// commits with the event that needed it, exactly once. Each attempt runs in a savepoint: when
// a concurrent call or request created the owner first, the attempt is rolled back and read
// again.
func (s *Store) resolveIn(ctx context.Context, tx pgx.Tx, number string, opts ResolveOptions) (Resolution, error) {
	st := *opts.Settings
	norm, ok := s.callerNumber(number)
	if !ok {
		return s.resolveAnonymousIn(ctx, tx, st, opts)
	}
	res := Resolution{Number: norm, Location: s.PhoneLocation(norm)}
	for attempt := 0; ; attempt++ {
		r := res
		sp, err := tx.Begin(ctx)
		if err != nil {
			return Resolution{}, fmt.Errorf("ticketing: savepoint: %w", err)
		}
		err = s.resolveNumber(ctx, sp, st, &r)
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return Resolution{}, dbError("release savepoint", err)
			}
			return r, nil
		}
		_ = sp.Rollback(ctx)
		if !errors.Is(err, ErrConflict) || attempt >= 4 {
			return Resolution{}, fmt.Errorf("ticketing: resolve caller %s: %w", norm, err)
		}
	}
}

func (s *Store) resolveAnonymousIn(ctx context.Context, tx pgx.Tx, st Settings, opts ResolveOptions) (Resolution, error) {
	r := Resolution{Anonymous: true, Rule: "PM-3", Candidates: []Holder{}}
	switch st.AnonymousCallerPolicy {
	case AnonymousNoTicket:
		r.NoTicket = true
		return r, nil
	case AnonymousAgentAsRequester:
		if opts.AgentID != 0 {
			u, err := getUser(ctx, tx, opts.AgentID)
			if err != nil {
				return Resolution{}, err
			}
			r.Requester = &u
		}
		return r, nil
	}
	name := "Anonymous caller"
	if id := strings.TrimSpace(opts.CallID); id != "" {
		name += " (call " + id + ")"
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO users (name, placeholder) VALUES ($1, true) RETURNING id`, name).Scan(&id); err != nil {
		return Resolution{}, dbError("create placeholder caller", err)
	}
	u, err := getUser(ctx, tx, id)
	if err != nil {
		return Resolution{}, err
	}
	r.Requester, r.Created = &u, true
	return r, nil
}
