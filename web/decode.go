package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// decodeWrapped decodes a body {"<wrapper>":{...}} into v (a pointer to a struct) the way the
// ticketing API does: a missing wrapper, another top-level key, a field v does not have, or a
// value of the wrong type is a *ticketing.Error (422) naming the field.
func decodeWrapped(raw []byte, wrapper string, v any) error {
	example := "the body must be {\"" + wrapper + "\":{...}}"
	raw = bytes.TrimSpace(raw)
	var top map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &top) != nil {
		return invalid(wrapper, "%s", example)
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != wrapper {
			return invalid(k, "unknown field; %s", example)
		}
	}
	inner, ok := top[wrapper]
	inner = bytes.TrimSpace(inner)
	if !ok || len(inner) == 0 || inner[0] != '{' {
		return invalid(wrapper, "%s", example)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(inner, &fields); err != nil {
		return invalid(wrapper, "%s", example)
	}
	known := jsonFields(v)
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !slices.Contains(known, k) {
			return invalid(k, "unknown field; allowed here: %s", strings.Join(known, ", "))
		}
	}
	if err := json.Unmarshal(inner, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid(te.Field, "must be %s, not a JSON %s", kindOf(te.Type), te.Value)
		}
		return invalid(wrapper, "%s", example)
	}
	return nil
}

// jsonFields lists the JSON names of the fields of the struct v points to, in order.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	}
	return "a " + t.Kind().String()
}
