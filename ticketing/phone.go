package ticketing

import (
	"strings"

	"github.com/switchboard-voice/switchboard/ticketing/phone"
)

// NormalizePhone returns the E.164 form of raw (PM-10). With strict (phone_validation on) raw
// must be an E.164 number, though it may carry formatting ("+1 (555) 555-0123"); otherwise a
// national number is read in the store's default region. A string that is no phone number in
// either reading is refused: stored as it was written it could never match a call. The error is
// an *Error naming field "value".
func (s *Store) NormalizePhone(raw string, strict bool) (string, error) {
	return normalizePhone(raw, strict, s.opts.DefaultRegion)
}

func normalizePhone(raw string, strict bool, region string) (string, error) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return "", invalidField("value", "a phone number is required")
	}
	if strict {
		if !phone.IsE164(strings.Map(dropSeparator, v)) {
			return "", invalidField("value", "%q is not an E.164 number (want + country code and up to 15 digits, e.g. +15555550123)", raw)
		}
		n, ok := phone.Normalize(v, "")
		if !ok {
			return "", invalidField("value", "%q is not an E.164 number: no such country code, or the wrong length for its country", raw)
		}
		return n, nil
	}
	n, ok := phone.Normalize(v, region)
	if !ok {
		return "", invalidField("value", "%q is not a phone number (write it in E.164, e.g. +15555550123, or as a national number of region %s)", raw, region)
	}
	return n, nil
}

// dropSeparator drops the characters people write between digits.
func dropSeparator(r rune) rune {
	switch r {
	case ' ', '-', '(', ')', '.', '/', '\u00a0', '\t':
		return -1
	}
	return r
}

// callerNumber is how caller resolution reads the number of a call (PM-3, PM-10): the E.164 form
// in the store's default region — a number the gateway sent is E.164 already, read with its
// trunk's region; one posted to /call_events may be national — or ok false for a caller to treat
// as anonymous: no number, a withheld marker, or a string that is no phone number (kept as
// received in the call record, never turned into a user).
func (s *Store) callerNumber(raw string) (string, bool) {
	if phone.Withheld(raw) {
		return "", false
	}
	return phone.Normalize(raw, s.opts.DefaultRegion)
}

// PhoneLocation returns where a number was first acquired (CD-5): the geocoding description
// of phonenumbers ("California", "United Kingdom"), or "" when unknown.
func (s *Store) PhoneLocation(e164 string) string {
	return phone.Location(e164, s.opts.Language)
}
