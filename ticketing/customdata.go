package ticketing

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Types of the ticket field a DataField fills.
const (
	// FieldText is one line of text of at most MaxFieldText characters.
	FieldText = "text"
	// FieldDigits is 1 to 64 ASCII digits, kept as text (account and contract numbers,
	// where a leading zero matters).
	FieldDigits = "digits"
	// FieldInteger is a whole number that fits in 64 bits, kept as a JSON number.
	FieldInteger = "integer"
)

// MaxFieldText bounds a text ticket field, in characters.
const MaxFieldText = 255

// maxDataFields bounds custom_data_fields.
const maxDataFields = 50

// DataKeyMenuPath is the data key under which the IVR menu path of the call (the digits the
// caller chose, call.ivr_selected's menu_path) is offered to the mapping when the call's data
// has no key of that name: what the caller entered in the IVR maps like an integration's data.
const DataKeyMenuPath = "menu_path"

// DataField maps one key of a call's custom data to a ticket field (CF-4).
type DataField struct {
	// Key is the key in the call's data ("account"), or menu_path (DataKeyMenuPath).
	Key string `yaml:"key" json:"key"`
	// Field is the ticket field it fills ("account_number"): a lower-case letter, then
	// lower-case letters, digits and '_', at most 64. The ticket shows it under "fields".
	Field string `yaml:"field" json:"field"`
	// Type is what a value must be: FieldText, FieldDigits or FieldInteger.
	Type string `yaml:"type" json:"type"`
}

func validFieldName(s string) bool {
	if s == "" || len(s) > 64 || !('a' <= s[0] && s[0] <= 'z') {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func validDataKey(k string) bool { return callevent.ValidDataKey(k) }

// callFieldNames are the JSON names of the call fields the engine sets itself (CF-1, CF-2):
// a mapping may not name them.
func callFieldNames() map[string]bool {
	names := map[string]bool{}
	t := reflect.TypeFor[CustomFields]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	return names
}

// validateDataFields returns every problem with the mapping, each naming its entry
// ("custom_data_fields[1].type").
func validateDataFields(fs []DataField) []FieldError {
	var errs []FieldError
	if len(fs) > maxDataFields {
		return []FieldError{{"custom_data_fields", fmt.Sprintf("has %d entries; at most %d", len(fs), maxDataFields)}}
	}
	builtin := callFieldNames()
	byField := map[string]int{}
	for i, f := range fs {
		p := fmt.Sprintf("custom_data_fields[%d].", i)
		if !validDataKey(f.Key) {
			errs = append(errs, FieldError{p + "key", fmt.Sprintf("%q is not a data key: 1 to %d characters of letters, digits, '_', '-' and '.'", f.Key, callevent.MaxDataKey)})
		}
		switch {
		case !validFieldName(f.Field):
			errs = append(errs, FieldError{p + "field", fmt.Sprintf("%q is not a field name: a lower-case letter, then lower-case letters, digits and '_', at most 64", f.Field)})
		case builtin[f.Field]:
			errs = append(errs, FieldError{p + "field", fmt.Sprintf("%q is a call field the engine sets itself (CF-1, CF-2); name another field", f.Field)})
		default:
			if j, ok := byField[f.Field]; ok {
				errs = append(errs, FieldError{p + "field", fmt.Sprintf("%q is already filled by custom_data_fields[%d]", f.Field, j)})
			} else {
				byField[f.Field] = i
			}
		}
		if f.Type == "" {
			errs = append(errs, FieldError{p + "type", fmt.Sprintf("is required; use one of %s, %s, %s", FieldText, FieldDigits, FieldInteger)})
		} else {
			errs = append(errs, oneOf(p+"type", f.Type, FieldText, FieldDigits, FieldInteger)...)
		}
	}
	return errs
}

// fieldValue checks value against the field's type and returns what the ticket stores, or
// why the value does not fit.
func (f DataField) fieldValue(value string) (any, string) {
	switch f.Type {
	case FieldDigits:
		if len(value) > 64 || strings.IndexFunc(value, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return nil, "is not 1 to 64 digits"
		}
		return value, ""
	case FieldInteger:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil, "is not a whole number"
		}
		return n, ""
	default:
		if utf8.RuneCountInString(value) > MaxFieldText {
			return nil, fmt.Sprintf("is longer than %d characters", MaxFieldText)
		}
		return value, ""
	}
}

// mergeData adds an event's data to the call's, later keys winning.
func (c *callRow) mergeData(data map[string]string) {
	if len(data) == 0 {
		return
	}
	if c.Data == nil {
		c.Data = map[string]string{}
	}
	maps.Copy(c.Data, data)
}

// applyCustomData fills the ticket fields that settings.custom_data_fields maps from the call's
// custom data (CF-4), when the call gets its ticket. A value that is missing or does not fit
// its field leaves that field as it was; one private note on the ticket names each such field,
// the data key and the value received, so an agent sees what the integration failed to send.
func (e *Engine) applyCustomData(ctx context.Context, tx *applyTx, c *callRow, st Settings, ticketID int64) error {
	if len(st.CustomDataFields) == 0 {
		return nil
	}
	data := map[string]string{}
	if c.MenuPath != nil {
		data[DataKeyMenuPath] = *c.MenuPath
	}
	maps.Copy(data, c.Data)
	return mapCustomData(ctx, tx, c.ID, st, ticketID, data, false)
}

// lateData returns what an event brings to the custom data of a call that already has its
// ticket (CF-4): the keys of the event's data that are new to the call or carry another value,
// and the IVR menu path when it changed (and no data names the key menu_path). Read before
// the event is merged into the call. The IVR sends call.ivr_selected again with all its
// variables when a later collect step adds one (docs/ivr.md): what did not change was mapped
// already and is not mapped, or noted, twice.
func (c *callRow) lateData(ev callevent.Event) map[string]string {
	if c.TicketID == nil {
		return nil // the mapping runs when the call gets its ticket, with all the data so far
	}
	data := ev.Data.Map()
	late := map[string]string{}
	if _, named := c.Data[DataKeyMenuPath]; !named && ev.MenuPath != "" && ev.MenuPath != deref(c.MenuPath) {
		late[DataKeyMenuPath] = ev.MenuPath
	}
	for k, v := range data {
		if old, ok := c.Data[k]; !ok || old != v {
			late[k] = v
		}
	}
	return late
}

// applyLateCustomData maps the custom data that reached a call which already has its ticket
// (lateData: a call.ivr_selected from an IVR collect step after a queue's overflow, an
// integration posting data on a later event). Only the keys it carries are mapped and
// checked: a mapped key it does not carry was noted when the ticket was made (or by an
// earlier event) and is not noted again, so an event that brings one key does not fill the
// ticket with notes about the others. The write follows merges and skips a closed ticket
// (withLiveTicket). Each event is applied once (its id), so a replayed event adds no second
// note.
func (e *Engine) applyLateCustomData(ctx context.Context, tx *applyTx, c *callRow, late map[string]string) error {
	if len(late) == 0 || c.TicketID == nil {
		return nil
	}
	st, err := e.settingsFor(ctx, deref(c.Line))
	if err != nil || len(st.CustomDataFields) == 0 {
		return err
	}
	return e.withLiveTicket(ctx, tx, c, func(id int64) error {
		return mapCustomData(ctx, tx, c.ID, st, id, late, true)
	})
}

// mapCustomData writes the mapped fields of data to the ticket and one private note listing
// the mapped values that are missing or invalid. With onlyPresent (data that came after the
// ticket), a mapped key absent from data is left alone rather than noted. The writes are the
// batch's held-back ones (setTicket, addComment): many calls' fields and notes go out in one
// statement each.
func mapCustomData(ctx context.Context, tx *applyTx, callID string, st Settings, ticketID int64, data map[string]string, onlyPresent bool) error {
	set := map[string]any{}
	var problems []string
	for _, f := range st.CustomDataFields {
		raw, ok := data[f.Key]
		if !ok && onlyPresent {
			continue
		}
		v := strings.TrimSpace(raw)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("- %s: no value; the call's data has no %q", f.Field, f.Key))
			continue
		case v == "":
			problems = append(problems, fmt.Sprintf("- %s: no value; %q came empty", f.Field, f.Key))
			continue
		}
		val, why := f.fieldValue(v)
		if why != "" {
			problems = append(problems, fmt.Sprintf("- %s: the value %s of %q %s (%s field)", f.Field, quoteShort(v), f.Key, why, f.Type))
			continue
		}
		set[f.Field] = val
	}
	if len(set) > 0 {
		if err := tx.setTicket(ctx, ticketID, "fields", set); err != nil {
			return err
		}
	}
	if len(problems) == 0 {
		return nil
	}
	when := ""
	if onlyPresent {
		when = " (data received after the ticket was made)"
	}
	body := fmt.Sprintf("Call %s%s: custom data not written to ticket fields (the fields keep their values):\n%s",
		callID, when, strings.Join(problems, "\n"))
	return tx.addComment(ctx, pendingComment{TicketID: ticketID, Type: TypeComment, Body: body, CallID: callID})
}

// quoteShort quotes a value from outside for a note: Go quoting escapes anything invisible,
// and a long value is cut.
func quoteShort(s string) string {
	if utf8.RuneCountInString(s) > 80 {
		s = string([]rune(s)[:80]) + "…"
	}
	return strconv.Quote(s)
}

// noteValue is a data value as a note shows it unquoted: one clean line, cut at 200 characters.
func noteValue(s string) string {
	s = subjectClean(s)
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200]) + "…"
	}
	return s
}
