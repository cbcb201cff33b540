package sip

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ticketing/phone"
)

// Numbers on the SIP edge. Every number a trunk sends is read once, here, with the trunk's
// region (package ticketing/phone, which the ticketing core reads API numbers with too): the
// dialled number picks the line, the caller's becomes call.started's from. Header text is
// cleaned (clean.go) before it is read.

// lineFor returns the line an INVITE from trunk is for and the dialled number as matched: the
// Request-URI user, else the To user (a proxy may have rewritten the Request-URI), each in
// every form phone.Dialled gives in the trunk's region.
func (s *Server) lineFor(req *sip.Request, trunk Trunk) (Line, string, bool) {
	lines := *s.lines.Load()
	users := []string{req.Recipient.User}
	if to := req.To(); to != nil {
		users = append(users, to.Address.User)
	}
	for _, user := range users {
		user = uriUser(user)
		// Most carriers send the line's E.164 number as it is: no parsing for it. (Line keys are
		// normalised, and Normalize returns its own results unchanged, so this is the same match.)
		if l, ok := lines[user]; ok {
			return l, user, true
		}
		for _, n := range phone.Dialled(user, trunk.Region) {
			if l, ok := lines[n]; ok {
				return l, n, true
			}
		}
	}
	return Line{}, "", false
}

// callerOf returns the caller of an INVITE from trunk: its number (call.started from) and its
// display name (caller_name).
//
//   - Privacy: id, user or header (RFC 3325 §9.3, RFC 3323 §4.2) asks that the caller's identity
//     be withheld: the caller is anonymous, "" and "".
//   - Otherwise the identity is the first P-Asserted-Identity (RFC 3325 §9.1: the trunk's network
//     vouches for it) unless the trunk ignores it, else From.
//   - An anonymous identity — host anonymous.invalid or display name "Anonymous" (RFC 3323
//     §4.1.1.3), a withheld marker such as "restricted" or "unknown", an empty user — is anonymous.
//   - A user part that normalises is the E.164 number; one that does not is kept as received
//     (cleaned), and the ticketing core resolves it as anonymous (PM-3), never as a user.
func callerOf(req *sip.Request, trunk Trunk) (number, name string) {
	for _, h := range req.GetHeaders("Privacy") {
		for _, v := range strings.Split(h.Value(), ";") {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "id", "user", "header":
				return "", ""
			}
		}
	}
	var uri *sip.Uri
	var display string
	if !trunk.IgnoreAssertedIdentity {
		uri, display = assertedIdentity(req)
	}
	if uri == nil {
		f := req.From()
		if f == nil {
			return "", ""
		}
		uri, display = &f.Address, f.DisplayName
	}
	name = displayName(display)
	var user string
	if uri.Scheme == "tel" {
		user = uriUser(uri.Raw())
	} else {
		user = uriUser(uri.User)
	}
	if phone.Withheld(user) || strings.EqualFold(uri.Host, "anonymous.invalid") || strings.EqualFold(name, "anonymous") {
		return "", ""
	}
	if n, ok := phone.Normalize(user, trunk.Region); ok {
		return n, name
	}
	if uri.Scheme == "tel" {
		// Keep a tel: URI's number as the carrier wrote it, without its parameters.
		if i := strings.IndexByte(user, ';'); i >= 0 {
			user = strings.TrimSpace(user[:i])
		}
	}
	return user, name
}

// maxAssertedValues bounds the P-Asserted-Identity values read from one request: RFC 3325 §9.1
// allows two (one sip or sips URI and one tel URI); anything past a few is noise.
const maxAssertedValues = 4

// assertedIdentity returns the URI and display name of the request's P-Asserted-Identity, or nil
// when it has none that parses. Of a sip and a tel value (RFC 3325 §9.1), the first is taken.
func assertedIdentity(req *sip.Request) (*sip.Uri, string) {
	n := 0
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitHeaderList(h.Value()) {
			if n++; n > maxAssertedValues {
				return nil, ""
			}
			var uri sip.Uri
			display, err := sip.ParseAddressValue(v, &uri, nil)
			if err != nil {
				continue
			}
			switch uri.Scheme {
			case "sip", "sips", "tel":
				return &uri, display
			}
		}
	}
	return nil, ""
}

// SetLines replaces the line table at once (the roster's reload goroutine calls it when lines
// change in the database). The new table is built aside and swapped in whole, so the INVITE
// path never waits on a lock and never sees half a table; a call already running keeps the
// Line it matched, and the next INVITE matches the new table. On an error (a number that is
// not E.164, a line without a target, a number twice) nothing changes.
func (s *Server) SetLines(lines []Line) error {
	m := make(map[string]Line, len(lines))
	for i, l := range lines {
		n, ok := phone.Normalize(l.Number, "")
		if !ok {
			return fmt.Errorf("sip: line %d: %q is not an E.164 phone number", i, l.Number)
		}
		if l.Target == nil {
			return fmt.Errorf("sip: line %s: no target", n)
		}
		if _, dup := m[n]; dup {
			return fmt.Errorf("sip: line %s: listed twice", n)
		}
		m[n] = l
	}
	s.lines.Store(&m)
	return nil
}
