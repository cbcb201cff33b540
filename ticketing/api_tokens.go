package ticketing

import (
	"net/http"
	"strconv"
	"time"
)

// registerTokens mounts GET/POST /tokens and DELETE /tokens/{id}: API tokens are listed,
// made and revoked through the API as well as with "switchboard token".
func (a *API) registerTokens(h func(pattern, role string, fn func(w http.ResponseWriter, r *http.Request, p Principal) error)) {
	h("GET /tokens", RoleAgent, a.listTokens)
	h("POST /tokens", RoleAgent, a.createToken)
	h("DELETE /tokens/{id}", RoleAgent, a.revokeToken)
}

// listTokens lists the caller's own tokens; an admin sees everyone's, or one user's with
// ?user_id=.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request, p Principal) error {
	owner := p.UserID
	if p.IsAdmin() {
		owner = 0
		if v := r.URL.Query().Get("user_id"); v != "" {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				return invalidField("user_id", "must be a positive whole number (a user id), got %q", v)
			}
			owner = id
		}
	}
	toks, err := a.store.APITokens(r.Context(), owner)
	if err != nil {
		return err
	}
	if toks == nil {
		toks = []APIToken{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": toks, "next_page": nil})
	return nil
}

// createToken makes a token for the caller (an admin may name another agent with user_id).
// A Bearer token cannot make tokens: a stolen token must not be able to outlive its expiry
// by minting a successor, so this takes the password (Basic) or the agent page's session.
func (a *API) createToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Via == AuthToken {
		return &Error{Kind: ErrForbidden, Description: "an API token cannot make tokens: authenticate with your email and password"}
	}
	b, err := readBody(r, "token")
	if err != nil {
		return err
	}
	desc := b.str("description")
	ttl := b.count("expires_in", int64(MaxTokenTTL/time.Second))
	uid := b.id("user_id")
	if err := b.err(); err != nil {
		return err
	}
	owner := p.UserID
	if uid != nil && *uid != p.UserID {
		if !p.IsAdmin() {
			return &Error{Kind: ErrForbidden, Description: "only admins make tokens for someone else"}
		}
		owner = *uid
	}
	d, expires := "", time.Duration(0)
	if desc != nil {
		d = *desc
	}
	if ttl != nil {
		if *ttl == 0 {
			return invalidField("expires_in", "must be at least 1 second; leave it out for the default")
		}
		expires = time.Duration(*ttl) * time.Second
	}
	t, tok, err := a.store.NewAPIToken(r.Context(), owner, d, expires)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": struct {
		APIToken
		Token string `json:"token"`
	}{t, tok}})
	return nil
}

// revokeToken deletes one token: the caller's own, or anyone's for an admin. Another agent's
// token is a 404, as if it did not exist.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "API token")
	if err != nil {
		return err
	}
	t, err := a.store.APITokenByID(r.Context(), id)
	if err != nil {
		return err
	}
	if t.UserID != p.UserID && !p.IsAdmin() {
		return notFound("API token %d not found", id)
	}
	if err := a.store.RevokeAPIToken(r.Context(), p.Actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
