package ivr

import (
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
)

// maxINFOBody bounds the INFO bodies ParseINFO looks at; DTMF bodies are a few dozen bytes.
const maxINFOBody = 4096

// ParseINFO reads the DTMF key carried by a SIP INFO request body, by its Content-Type:
//
//   - application/dtmf-relay (the de facto Cisco format): lines "Signal=5" and "Duration=160"
//     (milliseconds), in any order, separated by CRLF or LF, blanks around '=' allowed.
//   - application/dtmf: the key alone ("5"), or an event code.
//
// Keys are 0-9, *, #, A-D (case-insensitive); event codes 10-15 (RFC 4733 §3.2: 10 is *, 11 #,
// 12-15 A-D) are accepted too, as some phones send them. Duration is 0 when absent. Any other
// Content-Type or a body without a key is ErrNotDTMF (sip answers 415 or 400 accordingly).
func ParseINFO(contentType string, body []byte) (digit rune, d time.Duration, err error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: content type %q: %v", ErrNotDTMF, contentType, err)
	}
	if len(body) > maxINFOBody {
		return 0, 0, fmt.Errorf("%w: body of %d bytes", ErrNotDTMF, len(body))
	}
	switch mt {
	case "application/dtmf-relay":
		var sig string
		var have bool
		for _, line := range strings.Split(string(body), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "signal":
				sig, have = strings.TrimSpace(v), true
			case "duration":
				ms, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || ms < 0 || ms > 60000 {
					return 0, 0, fmt.Errorf("%w: Duration %q", ErrNotDTMF, strings.TrimSpace(v))
				}
				d = time.Duration(ms) * time.Millisecond
			}
		}
		if !have {
			return 0, 0, fmt.Errorf("%w: no Signal line", ErrNotDTMF)
		}
		r, ok := keyOf(sig)
		if !ok {
			return 0, 0, fmt.Errorf("%w: Signal %q", ErrNotDTMF, sig)
		}
		return r, d, nil
	case "application/dtmf":
		s := strings.TrimSpace(string(body))
		r, ok := keyOf(s)
		if !ok {
			return 0, 0, fmt.Errorf("%w: body %q", ErrNotDTMF, s)
		}
		return r, 0, nil
	}
	return 0, 0, fmt.Errorf("%w: content type %s", ErrNotDTMF, mt)
}

// keyOf reads one key or an RFC 4733 event code (0-15).
func keyOf(s string) (rune, bool) {
	if len(s) == 1 {
		c := rune(s[0])
		switch {
		case c >= '0' && c <= '9', c == '*', c == '#':
			return c, true
		case c >= 'A' && c <= 'D':
			return c, true
		case c >= 'a' && c <= 'd':
			return c - 'a' + 'A', true
		}
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 10 || n > 15 {
		return 0, false
	}
	return rune("*#ABCD"[n-10]), true
}
