package ticketing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// body is a JSON object being read field by field, so that every mistake names its field:
// a wrong type, an unknown field, a missing wrapper. Problems pile up in errs and come back
// together from err.
type body struct {
	prefix  string
	fields  map[string]json.RawMessage
	used    map[string]bool
	ignored map[string]bool
	errs    map[string][]string
}

// readBody reads r's body as {"<wrapper>": {...}} (or the bare object when wrapper is empty).
func readBody(r *http.Request, wrapper string) (*body, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, invalidField("body", "is larger than %d bytes", mbe.Limit)
		}
		return nil, invalidField("body", "cannot be read: %v", err)
	}
	return parseBody(raw, wrapper)
}

func parseBody(raw []byte, wrapper string) (*body, error) {
	top, err := parseObject(raw, "body")
	if err != nil {
		return nil, err
	}
	if wrapper == "" {
		return &body{fields: top, used: map[string]bool{}, ignored: map[string]bool{}, errs: map[string][]string{}}, nil
	}
	inner, ok := top[wrapper]
	if !ok {
		keys := make([]string, 0, len(top))
		for k := range top {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, invalidField(wrapper, "is required: wrap the body as {%q: {...}} (got keys %s)", wrapper, strings.Join(keys, ", "))
	}
	for k := range top {
		if k != wrapper {
			return nil, invalidField(k, "unknown field; the body is {%q: {...}}", wrapper)
		}
	}
	fields, err := parseObject(inner, wrapper)
	if err != nil {
		return nil, err
	}
	return &body{prefix: "", fields: fields, used: map[string]bool{}, ignored: map[string]bool{}, errs: map[string][]string{}}, nil
}

func parseObject(raw []byte, field string) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, invalidField(field, "is empty; send a JSON object")
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return nil, invalidField(field, "is not valid JSON: %v", err)
	}
	if raw[0] != '{' {
		return nil, invalidField(field, "must be a JSON object, got %s", jsonKind(raw))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalidField(field, "is not a JSON object: %v", err)
	}
	return m, nil
}

func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func (b *body) fail(name, format string, args ...any) {
	b.errs[b.prefix+name] = append(b.errs[b.prefix+name], fmt.Sprintf(format, args...))
}

// take returns the raw value of name and marks it used; absent is nil.
func (b *body) take(name string) json.RawMessage {
	b.used[name] = true
	return b.fields[name]
}

// ignore marks read-only fields that a client may send back unchanged (id, created_at...).
func (b *body) ignore(names ...string) {
	for _, n := range names {
		b.ignored[n] = true
	}
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func (b *body) str(name string) *string {
	raw := b.take(name)
	if raw == nil {
		return nil
	}
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		b.fail(name, "must be a string, got %s", jsonKind(raw))
		return nil
	}
	return &s
}

// nullableStr returns (value, present); JSON null is present with a nil value.
func (b *body) nullableStr(name string) (*string, bool) {
	raw := b.take(name)
	if raw == nil {
		return nil, false
	}
	if isNull(raw) {
		return nil, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		b.fail(name, "must be a string or null, got %s", jsonKind(raw))
		return nil, false
	}
	return &s, true
}

func (b *body) boolean(name string) *bool {
	raw := b.take(name)
	if raw == nil {
		return nil
	}
	var v bool
	if isNull(raw) || json.Unmarshal(raw, &v) != nil {
		b.fail(name, "must be true or false, got %s", jsonKind(raw))
		return nil
	}
	return &v
}

func parseID(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false // a JSON number, not a string holding one
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&n) != nil {
		return 0, false
	}
	v, err := n.Int64()
	return v, err == nil
}

// id reads a positive integer id.
func (b *body) id(name string) *int64 {
	raw := b.take(name)
	if raw == nil {
		return nil
	}
	v, ok := parseID(raw)
	if !ok || v <= 0 {
		b.fail(name, "must be a positive whole number (an id), got %s", strings.TrimSpace(string(raw)))
		return nil
	}
	return &v
}

// nullableID returns (value, present); JSON null is present with a nil value.
func (b *body) nullableID(name string) (*int64, bool) {
	raw := b.take(name)
	if raw == nil {
		return nil, false
	}
	if isNull(raw) {
		return nil, true
	}
	v, ok := parseID(raw)
	if !ok || v <= 0 {
		b.fail(name, "must be a positive whole number (an id) or null, got %s", strings.TrimSpace(string(raw)))
		return nil, false
	}
	return &v, true
}

// count reads a whole number >= 0 (seconds, scores).
func (b *body) count(name string, max int64) *int64 {
	raw := b.take(name)
	if raw == nil || isNull(raw) {
		return nil
	}
	v, ok := parseID(raw)
	if !ok || v < 0 || v > max {
		b.fail(name, "must be a whole number from 0 to %d, got %s", max, strings.TrimSpace(string(raw)))
		return nil
	}
	return &v
}

func (b *body) strs(name string) *[]string {
	raw := b.take(name)
	if raw == nil {
		return nil
	}
	var v []string
	if isNull(raw) || json.Unmarshal(raw, &v) != nil {
		b.fail(name, "must be an array of strings, got %s", jsonKind(raw))
		return nil
	}
	if v == nil {
		v = []string{}
	}
	return &v
}

func (b *body) ids(name string) []int64 {
	raw := b.take(name)
	if raw == nil {
		b.fail(name, "is required")
		return nil
	}
	var items []json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &items) != nil {
		b.fail(name, "must be an array of ticket ids, got %s", jsonKind(raw))
		return nil
	}
	out := make([]int64, 0, len(items))
	for i, it := range items {
		v, ok := parseID(it)
		if !ok || v <= 0 {
			b.fail(name, "item %d must be a positive whole number (an id), got %s", i, strings.TrimSpace(string(it)))
			return nil
		}
		out = append(out, v)
	}
	return out
}

// object reads a nested object as its own body, whose errors are prefixed "name.".
func (b *body) object(name string) *body {
	raw := b.take(name)
	if raw == nil || isNull(raw) {
		return nil
	}
	m, err := parseObject(raw, name)
	if err != nil {
		b.fail(name, "must be an object, got %s", jsonKind(raw))
		return nil
	}
	return &body{prefix: b.prefix + name + ".", fields: m, used: map[string]bool{}, ignored: map[string]bool{}, errs: b.errs}
}

// err reports unknown fields and every problem found, or nil.
func (b *body) err() error {
	for k := range b.fields {
		if !b.used[k] && !b.ignored[k] {
			b.fail(k, "unknown field")
		}
	}
	if len(b.errs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(b.errs))
	for k := range b.errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(b.errs[k], "; "))
	}
	return &Error{Kind: ErrInvalid, Description: strings.Join(parts, "; "), Details: b.errs}
}

// check runs err on nested bodies too (they share errs but track their own unknown fields).
func (b *body) check(nested ...*body) error {
	for _, n := range nested {
		if n == nil {
			continue
		}
		for k := range n.fields {
			if !n.used[k] && !n.ignored[k] {
				n.fail(k, "unknown field")
			}
		}
	}
	return b.err()
}
