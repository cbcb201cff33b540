// Package phone is Switchboard's one reading of phone numbers: the SIP side (caller IDs and
// dialled numbers, with the region of the trunk they came over) and the ticketing core (numbers
// typed into the API, callers of events posted without a region) both normalise through
// Normalize, so a caller on a national trunk and the user holding the same number in E.164
// meet. It wraps libphonenumber (github.com/nyaruka/phonenumbers) and imports nothing of ours.
//
// A region is an ISO 3166 alpha-2 country code in capitals ("US", "FR"): it says how numbers
// written without a country code are read (the national prefix, 0 in France, 1 in North America)
// and which international prefix the carrier dials (011 in North America, 00 in most of the
// world). An empty or unknown region reads only numbers in international form.
package phone

import (
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// maxRaw bounds the text Normalize reads: a SIP user part or an API value longer than this is no
// phone number (libphonenumber itself gives up at 250 characters).
const maxRaw = 128

// maxDigits bounds the digits of a number as written: 15 of E.164 (ITU-T E.164 §6.2.1) plus the
// longest international prefix in use (four digits, e.g. 0011 in Australia) and a spare one.
const maxDigits = 20

// IsE164 reports whether s is written in E.164 form: "+", a country code not starting with 0,
// at most 15 digits in all (ITU-T E.164 §6.2.1), nothing else — the regular expression
// `^\+[1-9][0-9]{1,14}$`, checked by hand (it runs on every caller's number; FuzzIsE164 holds
// it to the expression).
func IsE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	return digits(s[2:])
}

// ValidRegion reports whether region is a region libphonenumber has a numbering plan for: an
// ISO 3166 alpha-2 code in capitals such as US, GB or FR ("ZZ", "001" and "us" are not).
func ValidRegion(region string) bool {
	return phonenumbers.GetCountryCodeForRegion(region) != 0
}

// Normalize returns the E.164 form of raw, a phone number as a carrier or a person wrote it,
// reading a number without a country code in region. It accepts:
//
//   - international form: "+33 6 12 34 56 78", "+1 (202) 555-0123";
//   - the international prefix of region ("011 33 6…" in US, "00 1 202…" in FR), and "00" as
//     the international prefix wherever the region's own reading gives no possible number
//     (ITU-T E.164 Annex A recommends it, and most of the world uses it);
//   - national form in region ("2025550123" or "1 202 555 0123" in US, "06 12 34 56 78" in FR);
//   - a tel: URI or a SIP user part (RFC 3966): "tel:+12025550123", "0612345678;phone-context=+33"
//     (a global phone-context names the country the local number is read in), other URI
//     parameters and headers dropped;
//   - RFC 3966 visual separators ("-", ".", "(", ")"), spaces, "/" and no-break spaces.
//
// Anything else — letters, "*" or "#", an extension, an empty string, a number libphonenumber
// cannot read or one with too few or too many digits for its country — is not a number: ok is
// false and e164 is "". The caller then keeps the raw value as it was received and treats the
// caller as anonymous; it never guesses (putting a "+" in front of national digits is how
// 2025550123, Washington, became +20 25550123, Cairo).
//
// A number is accepted when its length is possible for its country (libphonenumber's
// IsPossibleNumber), not only when its range is allocated: test and newly opened ranges
// (+1 555 …) must still match the users who hold them. The result re-normalises to itself in
// every region.
func Normalize(raw, region string) (e164 string, ok bool) {
	s := strings.TrimSpace(raw)
	if s == "" || len(s) > maxRaw {
		return "", false
	}
	if len(s) > 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
	}
	if i := strings.IndexByte(s, '?'); i >= 0 { // URI headers (RFC 3261 §19.1.1)
		s = s[:i]
	}
	if i := strings.IndexByte(s, ';'); i >= 0 { // URI parameters (RFC 3966 §3)
		if r := contextRegion(s[i+1:]); r != "" {
			region = r
		}
		s = s[:i]
	}
	s = stripSeparators(s)
	if !plausible(s) {
		return "", false
	}
	if s[0] == '+' {
		return parse(s, "ZZ")
	}
	if e, ok := parse(s, region); ok {
		return e, true
	}
	if strings.HasPrefix(s, "00") {
		return parse("+"+s[2:], "ZZ")
	}
	return "", false
}

// Dialled returns what a dialled number (the user part of a Request-URI or To) may stand for,
// most likely first: its Normalize form in region and, when it is digits alone, the same digits
// read as an international number without its "+" (carriers often deliver a DID that way:
// "15550197" for +15550197, "33140000000" for +33 1 40 00 00 00). A gateway looks each form up
// among its own lines, where only a configured line gives the second one any meaning; it is
// never a caller's number. Empty when raw is no number.
func Dialled(raw, region string) []string {
	var out []string
	if e, ok := Normalize(raw, region); ok {
		out = append(out, e)
	}
	s := strings.TrimSpace(raw)
	if i := strings.IndexAny(s, ";?"); i >= 0 {
		s = s[:i]
	}
	if s = stripSeparators(s); plausible(s) && s[0] != '+' {
		if e, ok := parse("+"+s, "ZZ"); ok && (len(out) == 0 || out[0] != e) {
			out = append(out, e)
		}
	}
	return out
}

// parsed remembers parse's recent results: libphonenumber's parse is most of the cost of
// reading a number (regular expressions, tens of allocations), and a gateway reads every
// caller's number at least twice — SIP when the call comes in, the rules engine when it
// resolves the caller — so the second reading of a number (of the same text in the same
// region: an E.164 number is read in "ZZ" by both) is a lookup. Bounded: when it holds
// parsedMax results it is emptied and fills again. parse is a pure function of its two
// arguments (libphonenumber's metadata never changes in a process), so a result never goes
// stale.
var parsed struct {
	mu sync.Mutex
	m  map[parseKey]parseResult
}

const parsedMax = 8192

type parseKey struct{ s, region string }

type parseResult struct {
	e164 string
	ok   bool
}

// parse reads s in region and accepts a number whose length is possible for its country
// (readNumber, remembered in parsed).
func parse(s, region string) (string, bool) {
	k := parseKey{s, region}
	parsed.mu.Lock()
	r, hit := parsed.m[k]
	parsed.mu.Unlock()
	if hit {
		return r.e164, r.ok
	}
	r.e164, r.ok = readNumber(s, region)
	parsed.mu.Lock()
	if parsed.m == nil || len(parsed.m) >= parsedMax {
		parsed.m = make(map[parseKey]parseResult, 256)
	}
	// Copies: s may be a slice of a whole SIP message, which the map must not keep alive.
	parsed.m[parseKey{strings.Clone(s), strings.Clone(region)}] = r
	parsed.mu.Unlock()
	return r.e164, r.ok
}

// readNumber is parse without the memory.
func readNumber(s, region string) (string, bool) {
	n, err := phonenumbers.Parse(s, region)
	if err != nil || n.GetExtension() != "" || !phonenumbers.IsPossibleNumber(n) {
		return "", false
	}
	e := phonenumbers.Format(n, phonenumbers.E164)
	if !IsE164(e) {
		return "", false
	}
	// Reading an E.164 number again may strip what looks like a national prefix after the
	// country code (+358 0…): such a number has no one form, so it is none. A number read
	// from its own E.164 form in "ZZ" (a caller ID in international form) was that reading
	// already: parsing is a pure function, so the second one would give n again.
	again := n
	if s != e || region != "ZZ" {
		if again, err = phonenumbers.Parse(e, "ZZ"); err != nil || phonenumbers.Format(again, phonenumbers.E164) != e {
			return "", false
		}
	}
	rememberNumber(e, again)
	return e, true
}

// numbers remembers the reading of recent E.164 numbers (readNumber's, in "ZZ"), for Location:
// the rules engine locates each new caller right after reading its number, and the geocoding
// needs the reading, not the text. Bounded as parsed; a reading is never changed once made.
var numbers struct {
	mu sync.Mutex
	m  map[string]*phonenumbers.PhoneNumber
}

func rememberNumber(e164 string, n *phonenumbers.PhoneNumber) {
	numbers.mu.Lock()
	if numbers.m == nil || len(numbers.m) >= parsedMax {
		numbers.m = make(map[string]*phonenumbers.PhoneNumber, 256)
	}
	numbers.m[strings.Clone(e164)] = n
	numbers.mu.Unlock()
}

// readE164 is phonenumbers.Parse(e164, "ZZ"), from numbers when it holds the reading.
func readE164(e164 string) (*phonenumbers.PhoneNumber, error) {
	numbers.mu.Lock()
	n := numbers.m[e164]
	numbers.mu.Unlock()
	if n != nil {
		return n, nil
	}
	return phonenumbers.Parse(e164, "ZZ")
}

// stripSeparators drops the characters people and carriers write between digits: RFC 3966's
// visual separators "-", ".", "(" and ")", white space, "/" and the no-break space.
func stripSeparators(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '/', '\t', '\u00a0':
			return -1
		}
		return r
	}, s)
}

// plausible reports whether s is an optional "+" and then between 2 and maxDigits ASCII digits:
// what a phone number is once its separators are gone. libphonenumber would also read letters
// (vanity numbers) and skip leading text ("alice2025550123"); a caller ID is neither.
func plausible(s string) bool {
	d := strings.TrimPrefix(s, "+")
	return len(d) >= 2 && len(d) <= maxDigits && digits(d)
}

// contextRegion returns the region a global phone-context parameter names (RFC 3966 §5.1.5:
// "phone-context=+33" reads the local number in France), or "" when params hold none or it is a
// domain name (whose numbering plan we cannot know).
func contextRegion(params string) string {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "phone-context") {
			continue
		}
		v = stripSeparators(strings.TrimSpace(v))
		if len(v) < 2 || v[0] != '+' || !digits(v[1:]) {
			return ""
		}
		// Country codes are prefix-free (ITU-T E.164 §6.2.1): the first of 1, 2 or 3 digits that
		// is one names the country. A code shared by several regions (+1) gives its main one.
		for l := 1; l <= 3 && l < len(v); l++ {
			if r := phonenumbers.GetRegionCodeForCountryCode(atoi(v[1 : 1+l])); ValidRegion(r) {
				return r
			}
		}
		return ""
	}
	return ""
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// Location returns where e164 was allocated, in language (a BCP 47 tag such as "en" or "fr";
// libphonenumber's geocoding data): a city or state for a fixed line ("Washington D.C.",
// "London"), the country for a mobile ("France"), "" when unknown or e164 is not a number.
//
// Results are remembered (located, like parsed): the geocoding reads the number again with
// libphonenumber and searches its prefix tables, once per new caller in the rules engine.
func Location(e164, language string) string {
	if !IsE164(e164) {
		return ""
	}
	k := parseKey{e164, language}
	located.mu.Lock()
	loc, hit := located.m[k]
	located.mu.Unlock()
	if hit {
		return loc
	}
	loc = geocode(e164, language)
	located.mu.Lock()
	if located.m == nil || len(located.m) >= parsedMax {
		located.m = make(map[parseKey]string, 256)
	}
	located.m[parseKey{strings.Clone(e164), strings.Clone(language)}] = loc
	located.mu.Unlock()
	return loc
}

// located remembers Location's recent results, bounded as parsed is; libphonenumber's
// geocoding data never changes in a process, so a result never goes stale.
var located struct {
	mu sync.Mutex
	m  map[parseKey]string
}

// geocode is Location without the memory.
func geocode(e164, language string) string {
	n, err := readE164(e164)
	if err != nil {
		return ""
	}
	loc, err := phonenumbers.GetGeocodingForNumber(n, language)
	if err != nil {
		return ""
	}
	return loc
}

// withheld are what carriers and phones send in place of a withheld caller ID: RFC 3323 §4.1.1.3
// recommends "anonymous" (in sip:anonymous@anonymous.invalid); the others are in common use.
var withheld = map[string]bool{
	"anonymous": true, "unknown": true, "unavailable": true, "restricted": true,
	"withheld": true, "private": true, "blocked": true, "unknown caller": true, "anonymous caller": true,
}

// Withheld reports whether raw says there is no caller number to show: empty, or a marker such
// as "anonymous", "restricted" or "unknown" (any case). Such a caller is anonymous (rule PM-3).
// A string that is merely no number ("desk") is not a marker: it is kept as received.
func Withheld(raw string) bool {
	v := strings.ToLower(strings.TrimSpace(raw))
	return v == "" || withheld[v]
}
