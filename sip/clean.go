package sip

import (
	"strings"
	"unicode/utf8"
)

// Length bounds of the strings taken from SIP into events and log lines. A display name or a
// user part longer than this is cut (on a rune boundary); it is never refused: the call matters
// more than the label.
const (
	maxNameLen  = 128 // display names (call.started caller_name)
	maxUserLen  = 128 // URI user parts (call.started from)
	maxLogValue = 256 // header values in log lines (User-Agent, Call-ID, contacts)
)

// cleanText is the one function every string from the SIP edge goes through before it reaches
// a call event (callevent.Event) or a log line. PostgreSQL refuses NUL in text and jsonb and
// invalid UTF-8 anywhere, and one refused event must never reach the event log; control bytes
// in a log line mislead whoever reads it. So cleanText:
//
//   - replaces invalid UTF-8 with U+FFFD,
//   - turns tab, CR, LF, VT and FF into a space and drops every other C0 control (NUL
//     included), DEL and the C1 controls U+0080–U+009F,
//   - trims surrounding white space and cuts the result to at most max bytes on a rune
//     boundary.
//
// Printable ASCII within max comes back unchanged without allocating.
func cleanText(s string, max int) string {
	clean := len(s) <= max
	for i := 0; clean && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
		}
	}
	if clean {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	b.Grow(min(len(s), max))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			r = ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			continue
		}
		// r == utf8.RuneError with size 1 is an invalid byte: WriteRune writes U+FFFD.
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// displayName returns the display name of a From/To/P-Asserted-Identity header as sipgo parsed
// it (the raw text between the quotes, quoted-pairs still escaped) unescaped (RFC 3261 §25.1:
// quoted-pair = "\" CHAR) and cleaned.
func displayName(raw string) string {
	if strings.IndexByte(raw, '\\') >= 0 {
		var b strings.Builder
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\\' && i+1 < len(raw) {
				i++
			}
			b.WriteByte(raw[i])
		}
		raw = b.String()
	}
	return cleanText(raw, maxNameLen)
}

// quoteDisplayName escapes a display name for a quoted-string (RFC 3261 §25.1): sipgo writes
// DisplayName between quotes as it is.
func quoteDisplayName(name string) string {
	if !strings.ContainsAny(name, `"\`) {
		return name
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return r.Replace(name)
}

// uriUser returns a SIP URI's user part unescaped (RFC 3261 §19.1.2, §19.1.4: "%2B1555" is
// "+1555"; sipgo keeps the escapes) and cleaned: an escaped NUL ("%00") is dropped like a raw
// one. A malformed escape is kept as it is.
func uriUser(raw string) string {
	if strings.IndexByte(raw, '%') >= 0 {
		var b strings.Builder
		for i := 0; i < len(raw); i++ {
			if raw[i] == '%' && i+2 < len(raw) {
				if hi, lo := unhex(raw[i+1]), unhex(raw[i+2]); hi >= 0 && lo >= 0 {
					b.WriteByte(byte(hi<<4 | lo))
					i += 2
					continue
				}
			}
			b.WriteByte(raw[i])
		}
		raw = b.String()
	}
	return cleanText(raw, maxUserLen)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// logValue cleans a header value (User-Agent, Call-ID, a contact) for a log line.
func logValue(s string) string { return cleanText(s, maxLogValue) }

// escapeUser %-escapes what may not stand as it is in a SIP URI user part (RFC 3261 §25.1:
// user = 1*( unreserved / escaped / user-unreserved )): a caller ID taken from a carrier's From
// (unescaped by uriUser) goes back into the From of a leg we place.
func escapeUser(u string) string {
	const hexDigits = "0123456789ABCDEF"
	ok := func(c byte) bool {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			return true
		}
		return strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0
	}
	n := 0
	for i := 0; i < len(u); i++ {
		if !ok(u[i]) {
			n++
		}
	}
	if n == 0 {
		return u
	}
	b := make([]byte, 0, len(u)+2*n)
	for i := 0; i < len(u); i++ {
		if c := u[i]; ok(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}
