package ticketing

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// SearchResult is one result of GET /search: a ticket or a user with its result_type, as
// Zendesk lists them.
type SearchResult struct {
	Ticket *Ticket
	User   *User
}

// MarshalJSON writes the resource's own fields with "result_type" added.
func (r SearchResult) MarshalJSON() ([]byte, error) {
	var kind string
	var v any
	switch {
	case r.Ticket != nil:
		kind, v = "ticket", r.Ticket
	case r.User != nil:
		kind, v = "user", r.User
	default:
		return []byte("null"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("}"))
	return append(b, []byte(`,"result_type":"`+kind+`"}`)...), nil
}

// SearchQuery is a parsed Zendesk search query, for what Switchboard holds: type (ticket,
// user), status (with <, >, <=, >= in Zendesk's order new < open < pending < hold < solved <
// closed), requester and assignee (an id, an email, or "me"), phone, created and updated
// (a date or an RFC 3339 time, with :, <, >, <=, >=), tags (tag), subject, priority,
// ticket_type, role, email, name, external_id, and free words matched in subjects and first
// comments of tickets, names and emails of users. A leading "-" negates a keyword term.
type SearchQuery struct {
	Types []string // "ticket", "user"; empty: both
	terms []searchTerm
	words []string
}

type searchTerm struct {
	key, op, value string
	neg            bool
}

var statusRank = map[string]int{StatusNew: 0, StatusOpen: 1, StatusPending: 2, StatusHold: 3, StatusSolved: 4, StatusClosed: 5}

// searchKeys are the keywords understood, and the record types each applies to.
var searchKeys = map[string][]string{
	"type": nil, "status": {"ticket"}, "requester": {"ticket"}, "assignee": {"ticket"}, "submitter": {"ticket"},
	"phone": {"ticket", "user"}, "created": {"ticket", "user"}, "updated": {"ticket", "user"},
	"tags": {"ticket", "user"}, "tag": {"ticket", "user"}, "subject": {"ticket"}, "priority": {"ticket"},
	"ticket_type": {"ticket"}, "role": {"user"}, "email": {"user"}, "name": {"user"},
	"external_id": {"ticket", "user"}, "via": {"ticket"}, "description": {"ticket"},
}

// ParseSearchQuery parses q; an unknown keyword or a bad value is a 422 naming "query".
func ParseSearchQuery(q string) (SearchQuery, error) {
	var out SearchQuery
	for _, tok := range splitQuery(q) {
		neg := false
		if strings.HasPrefix(tok, "-") && len(tok) > 1 {
			neg, tok = true, tok[1:]
		}
		i := strings.IndexAny(tok, ":<>")
		if i <= 0 {
			out.words = append(out.words, strings.Trim(tok, `"`))
			continue
		}
		key := strings.ToLower(tok[:i])
		rest := tok[i:]
		op := rest[:1]
		if len(rest) > 1 && rest[1] == '=' {
			op = rest[:2]
		}
		value := strings.Trim(rest[len(op):], `"`)
		if _, ok := searchKeys[key]; !ok {
			return out, invalidField("query", "%q is not a search keyword here; use type, status, requester, assignee, phone, created, updated, tags, subject, priority, ticket_type, role, email, name or external_id", key)
		}
		if value == "" {
			return out, invalidField("query", "%s%s needs a value", key, op)
		}
		if key == "type" {
			if value != "ticket" && value != "user" {
				return out, invalidField("query", "type:%s is not searchable; use type:ticket or type:user", value)
			}
			out.Types = append(out.Types, value)
			continue
		}
		if op != ":" && key != "status" && key != "created" && key != "updated" {
			return out, invalidField("query", "%s takes %s:value, not %s", key, key, op)
		}
		if key == "status" {
			if _, ok := statusRank[strings.ToLower(value)]; !ok {
				return out, invalidField("query", "status %q is not a status", value)
			}
		}
		if key == "created" || key == "updated" {
			if _, _, err := searchTime(value); err != nil {
				return out, invalidField("query", "%s%s%s: %v", key, op, value, err)
			}
		}
		out.terms = append(out.terms, searchTerm{key: key, op: op, value: value, neg: neg})
	}
	return out, nil
}

// splitQuery splits on spaces outside double quotes.
func splitQuery(q string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range q {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case unicode.IsSpace(r) && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// searchTime reads a search date: YYYY-MM-DD (the whole day) or an RFC 3339 time (an instant).
func searchTime(v string) (start, end time.Time, err error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, t.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, t, nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("want a date (2026-01-02) or an RFC 3339 time")
}

func (q SearchQuery) wants(kind string) bool {
	if len(q.Types) > 0 && !slices.Contains(q.Types, kind) {
		return false
	}
	// A keyword that only applies to the other type rules this one out.
	for _, t := range q.terms {
		if kinds := searchKeys[t.key]; kinds != nil && !slices.Contains(kinds, kind) {
			return false
		}
	}
	return true
}

// noScore is the relevance of every match of a query without free words (no ORDER BY term:
// a bare 0 there would name a column by its position).
const noScore = "0"

// searchWhere builds the conditions of q for kind ("ticket": table tickets; "user": users u),
// and the relevance score of a match (searchScore; "0" for a query without free words).
func (s *Store) searchWhere(ctx context.Context, q SearchQuery, kind string, me int64) (where, score string, args []any, err error) {
	var conds, scores []string
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	col := func(name string) string {
		if kind == "user" {
			return "u." + name
		}
		return "tickets." + name
	}
	userRef := func(v string) (int64, error) {
		if v == "me" {
			return me, nil
		}
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			return id, nil
		}
		id, err := s.MatchUser(ctx, "", v)
		if err != nil {
			return 0, err
		}
		if id == 0 {
			return -1, nil // no such user: nothing matches
		}
		return id, nil
	}
	for _, t := range q.terms {
		var c string
		switch t.key {
		case "status":
			rank := statusRank[strings.ToLower(t.value)]
			var set []string
			for st, r := range statusRank {
				if (t.op == ":" && r == rank) || (t.op == "<" && r < rank) || (t.op == ">" && r > rank) ||
					(t.op == "<=" && r <= rank) || (t.op == ">=" && r >= rank) {
					set = append(set, st)
				}
			}
			c = "tickets.status = ANY(" + arg(set) + "::text[])"
		case "requester", "assignee", "submitter":
			id, err := userRef(t.value)
			if err != nil {
				return "", "", nil, err
			}
			c = col(t.key+"_id") + " = " + arg(id)
		case "phone":
			norm, err := s.NormalizePhone(t.value, false)
			if err != nil {
				return "", "", nil, invalidField("query", "phone:%s is not a phone number", t.value)
			}
			p := arg(norm)
			if kind == "user" {
				c = "EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id AND i.value = " + p + ")"
			} else {
				c = "(tickets.origin_phone = " + p + " OR tickets.display_phone = " + p + " OR tickets.caller_number = " + p +
					" OR EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = tickets.requester_id AND i.value = " + p + "))"
			}
		case "created", "updated":
			start, end, _ := searchTime(t.value)
			field := col(t.key + "_at")
			switch t.op {
			case ":":
				if start.Equal(end) {
					c = field + " = " + arg(start)
				} else {
					c = field + " >= " + arg(start) + " AND " + field + " < " + arg(end)
				}
			case ">":
				c = field + " >= " + arg(end)
				if start.Equal(end) {
					c = field + " > " + arg(start)
				}
			case ">=":
				c = field + " >= " + arg(start)
			case "<":
				c = field + " < " + arg(start)
			case "<=":
				c = field + " < " + arg(end)
				if start.Equal(end) {
					c = field + " <= " + arg(start)
				}
			}
		case "tags", "tag":
			c = arg(strings.ToLower(t.value)) + " = ANY(" + col("tags") + ")"
		case "subject":
			c = "tickets.subject ILIKE " + arg(likePattern(t.value))
		case "description":
			c = "EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = tickets.id AND c.body ILIKE " + arg(likePattern(t.value)) + ")"
		case "priority":
			c = "tickets.priority = " + arg(strings.ToLower(t.value))
		case "ticket_type":
			c = "tickets.type = " + arg(strings.ToLower(t.value))
		case "via":
			c = "tickets.via_channel = " + arg(strings.ToLower(t.value))
		case "role":
			c = "u.role = " + arg(strings.ToLower(t.value))
		case "email":
			c = "lower(u.email) = lower(" + arg(t.value) + ")"
		case "name":
			c = "u.name ILIKE " + arg(likePattern(t.value))
		case "external_id":
			c = col("external_id") + " = " + arg(t.value)
		}
		if t.neg {
			c = "NOT coalesce((" + c + "), false)"
		}
		conds = append(conds, "("+c+")")
	}
	for _, w := range q.words {
		p := arg(likePattern(w))
		if kind == "user" {
			c := "(u.name ILIKE " + p + " OR u.email ILIKE " + p
			sc := "(CASE WHEN u.name ILIKE " + p + " THEN 2 ELSE 0 END + CASE WHEN u.email ILIKE " + p + " THEN 1 ELSE 0 END"
			if norm, err := s.NormalizePhone(w, false); err == nil && strings.ContainsAny(w, "0123456789") {
				num := "EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id AND i.value = " + arg(norm) + ")"
				c += " OR " + num
				sc += " + CASE WHEN " + num + " THEN 2 ELSE 0 END"
			}
			conds = append(conds, c+")")
			scores = append(scores, sc+")")
		} else {
			conds = append(conds, "(tickets.subject ILIKE "+p+" OR EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = tickets.id AND c.body ILIKE "+p+"))")
			scores = append(scores, "(CASE WHEN tickets.subject ILIKE "+p+" THEN 2 ELSE 1 END)")
		}
	}
	score = noScore
	if len(scores) > 0 {
		score = "(" + strings.Join(scores, " + ") + ")"
	}
	if kind == "user" {
		conds = append(conds, "u.deleted_at IS NULL")
	}
	if len(conds) == 0 {
		return "true", score, args, nil
	}
	return strings.Join(conds, " AND "), score, args, nil
}

func likePattern(v string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(v) + "%"
}

// MaxSearchResults is how far a search pages, as in Zendesk (1,000 results).
const MaxSearchResults = 1000

// priorityRank orders ticket priorities for sort_by=priority (a ticket without one: 0).
var priorityRank = map[string]int{"low": 1, "normal": 2, "high": 3, "urgent": 4}

// rankSQL is a CASE over column giving each value its rank in ranks (0 for any other).
func rankSQL(column string, ranks map[string]int) string {
	keys := slices.Sorted(maps.Keys(ranks))
	var b strings.Builder
	b.WriteString("(CASE " + column)
	for _, k := range keys {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", k, ranks[k]) // the map's own words, never input
	}
	b.WriteString(" ELSE 0 END)")
	return b.String()
}

// Search runs q for the agent me and returns the results from offset on (at most limit),
// sorted by sortBy in order asc or desc (default desc, Zendesk's), and the number of results
// in all (at most MaxSearchResults+1).
//
// Without sortBy the results come by relevance, as in Zendesk: each free word of the query
// scores 2 where it is in a ticket's subject (1 where it is only in its comments), and for a
// user 2 in the name, 1 in the email and 2 for a number the user holds; ties (and a query of
// keywords only, where every match scores the same) newest first. created_at and updated_at
// sort by that time; priority (low < normal < high < urgent), status (new < open < pending <
// hold < solved < closed) and ticket_type (alphabetical) sort tickets by that field — a
// ticket without one lowest — and put users, who have none, after every ticket; ties by
// creation time in the same order.
func (s *Store) Search(ctx context.Context, q SearchQuery, me int64, sortBy, order string, offset, limit int) ([]SearchResult, int, error) {
	switch sortBy {
	case "", "created_at", "updated_at", "priority", "status", "ticket_type":
	default:
		return nil, 0, invalidField("sort_by", "must be created_at, updated_at, priority, status or ticket_type (none: by relevance), got %q", sortBy)
	}
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		return nil, 0, invalidField("sort_order", "must be asc or desc, got %q", order)
	}
	// A hit's sort keys: score (relevance), rank (priority, status), word (ticket_type).
	type hit struct {
		r     SearchResult
		score int64
		rank  int
		word  string
		at    time.Time
		id    int64
		user  bool
	}
	var hits []hit
	most := MaxSearchResults + 1
	if q.wants("ticket") {
		where, score, args, err := s.searchWhere(ctx, q, "ticket", me)
		if err != nil {
			return nil, 0, err
		}
		var by string
		switch sortBy {
		case "":
			by = "created_at " + order
			if score != noScore {
				by = score + " " + order + ", " + by
			}
		case "created_at", "updated_at":
			by = sortBy + " " + order
		case "priority":
			by = rankSQL("tickets.priority", priorityRank) + " " + order + ", created_at " + order
		case "status":
			by = rankSQL("tickets.status", statusRank) + " " + order + ", created_at " + order
		case "ticket_type":
			by = `coalesce(tickets.type, '') COLLATE "C" ` + order + ", created_at " + order
		}
		rows, err := s.pool.Query(ctx, `SELECT `+ticketCols+`, `+score+`::bigint FROM tickets WHERE `+where+` ORDER BY `+by+`, id `+order+` LIMIT `+strconv.Itoa(most), args...)
		if err != nil {
			return nil, 0, fmt.Errorf("ticketing: search tickets: %w", err)
		}
		var sc int64
		ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hit, error) {
			t, err := scanTicket(r, &sc)
			h := hit{r: SearchResult{Ticket: &t}, score: sc, at: t.CreatedAt.Time, id: t.ID}
			if sortBy == "updated_at" {
				h.at = t.UpdatedAt.Time
			}
			switch {
			case sortBy == "priority" && t.Priority != nil:
				h.rank = priorityRank[*t.Priority]
			case sortBy == "status":
				h.rank = statusRank[t.Status]
			case sortBy == "ticket_type" && t.Type != nil:
				h.word = *t.Type
			}
			return h, err
		})
		if err != nil {
			return nil, 0, fmt.Errorf("ticketing: search tickets: %w", err)
		}
		hits = append(hits, ts...)
	}
	if q.wants("user") {
		where, score, args, err := s.searchWhere(ctx, q, "user", me)
		if err != nil {
			return nil, 0, err
		}
		by := "u.created_at " + order
		switch sortBy {
		case "":
			if score != noScore {
				by = score + " " + order + ", " + by
			}
		case "updated_at":
			by = "u.updated_at " + order
		}
		rows, err := s.pool.Query(ctx, `SELECT `+userCols+`, `+score+`::bigint `+userFrom+`WHERE `+where+` ORDER BY `+by+`, u.id `+order+` LIMIT `+strconv.Itoa(most), args...)
		if err != nil {
			return nil, 0, fmt.Errorf("ticketing: search users: %w", err)
		}
		var sc int64
		us, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hit, error) {
			u, err := scanUser(r, &sc)
			h := hit{r: SearchResult{User: &u}, score: sc, at: u.CreatedAt.Time, id: u.ID, user: true}
			if sortBy == "updated_at" {
				h.at = u.UpdatedAt.Time
			}
			return h, err
		})
		if err != nil {
			return nil, 0, fmt.Errorf("ticketing: search users: %w", err)
		}
		hits = append(hits, us...)
	}
	byField := sortBy == "priority" || sortBy == "status" || sortBy == "ticket_type"
	slices.SortStableFunc(hits, func(a, b hit) int {
		if byField && a.user != b.user {
			if a.user {
				return 1 // users have no such field: after every ticket, either order
			}
			return -1
		}
		var c int
		switch sortBy {
		case "":
			c = cmp.Compare(a.score, b.score)
		case "priority", "status":
			c = cmp.Compare(a.rank, b.rank)
		case "ticket_type":
			c = strings.Compare(a.word, b.word)
		}
		if c == 0 {
			c = a.at.Compare(b.at)
		}
		if c == 0 {
			c = cmp.Compare(a.id, b.id)
		}
		if order == "desc" {
			c = -c
		}
		return c
	})
	total := min(len(hits), most)
	if offset >= len(hits) {
		return []SearchResult{}, total, nil
	}
	hits = hits[offset:min(len(hits), offset+limit)]
	out := make([]SearchResult, len(hits))
	for i, h := range hits {
		out[i] = h.r
	}
	return out, total, nil
}
