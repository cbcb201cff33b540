package ticketing

import (
	"regexp"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

var e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// stripFormatting removes the characters people write between digits.
func stripFormatting(raw string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '(', ')', '.', '/', '\u00a0', '\t':
			return -1
		}
		return r
	}, strings.TrimSpace(raw))
}

// NormalizePhone returns the E.164 form of raw (PM-10). With strict (phone_validation on) raw
// must be an E.164 number, though it may carry formatting ("+1 (555) 555-0123"); otherwise a
// national number is read in the store's default region, and a string phonenumbers cannot
// read is kept as its digits. The error is an *Error naming field "value".
func (s *Store) NormalizePhone(raw string, strict bool) (string, error) {
	return normalizePhone(raw, strict, s.opts.DefaultRegion)
}

func normalizePhone(raw string, strict bool, region string) (string, error) {
	v := stripFormatting(raw)
	if v == "" {
		return "", invalidField("value", "a phone number is required")
	}
	if strict {
		if !e164Pattern.MatchString(v) {
			return "", invalidField("value", "%q is not an E.164 number (want + country code and up to 15 digits, e.g. +15555550123)", raw)
		}
		n, err := phonenumbers.Parse(v, "ZZ")
		if err != nil {
			return "", invalidField("value", "%q is not an E.164 number: %v", raw, err)
		}
		return phonenumbers.Format(n, phonenumbers.E164), nil
	}
	if n, err := phonenumbers.Parse(v, region); err == nil {
		return phonenumbers.Format(n, phonenumbers.E164), nil
	}
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, v)
	if digits == "" {
		return "", invalidField("value", "%q has no digits", raw)
	}
	if strings.HasPrefix(v, "+") {
		return "+" + digits, nil
	}
	return digits, nil
}

// PhoneLocation returns where a number was first acquired (CD-5): the geocoding description
// of phonenumbers ("California", "United Kingdom"), or "" when unknown.
func (s *Store) PhoneLocation(e164 string) string {
	n, err := phonenumbers.Parse(e164, s.opts.DefaultRegion)
	if err != nil {
		return ""
	}
	loc, err := phonenumbers.GetGeocodingForNumber(n, s.opts.Language)
	if err != nil {
		return ""
	}
	return loc
}

// anonymousNumbers are what carriers send for a withheld caller ID (PM-3).
var anonymousNumbers = map[string]bool{
	"": true, "anonymous": true, "unknown": true, "unavailable": true, "restricted": true,
	"withheld": true, "private": true, "blocked": true, "unknown caller": true,
}

// IsAnonymousNumber reports whether a caller number stands for no number at all (PM-3):
// empty, a withheld marker such as "anonymous", or a string without a digit.
func IsAnonymousNumber(raw string) bool {
	v := strings.ToLower(strings.TrimSpace(raw))
	if anonymousNumbers[v] {
		return true
	}
	return !strings.ContainsAny(v, "0123456789")
}
