// Package bencode is the encoding of rtpengine's ng control protocol: BitTorrent's bencode
// (BEP 3) — byte strings "4:spam", integers "i42e", lists "l…e" and dictionaries "d…e" whose
// keys are byte strings written in sorted order. It is a small codec of the four types the ng
// protocol uses, written here rather than taken from a module because the benchmark needs
// only these forty lines and nothing outside the Go module proxy should be needed to read them.
//
// Go values map as: string and []byte ↔ byte string (decoded as string), int and int64 ↔
// integer (decoded as int64), []any and []string ↔ list (decoded as []any), map[string]any
// ↔ dictionary.
package bencode

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// maxDepth bounds nesting, so a hostile reply cannot exhaust the stack.
const maxDepth = 32

// Marshal encodes v.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encode(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case string:
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		b.WriteString(x)
	case []byte:
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		b.Write(x)
	case int:
		fmt.Fprintf(b, "i%de", x)
	case int64:
		fmt.Fprintf(b, "i%de", x)
	case []string:
		b.WriteByte('l')
		for _, e := range x {
			_ = encode(b, e)
		}
		b.WriteByte('e')
	case []any:
		b.WriteByte('l')
		for _, e := range x {
			if err := encode(b, e); err != nil {
				return err
			}
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // BEP 3: keys in sorted order (raw bytes)
		b.WriteByte('d')
		for _, k := range keys {
			_ = encode(b, k)
			if err := encode(b, x[k]); err != nil {
				return fmt.Errorf("bencode: key %q: %w", k, err)
			}
		}
		b.WriteByte('e')
	default:
		return fmt.Errorf("bencode: cannot encode %T", v)
	}
	return nil
}

// Unmarshal decodes one value that must fill data entirely.
func Unmarshal(data []byte) (any, error) {
	d := decoder{data: data}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.pos != len(data) {
		return nil, fmt.Errorf("bencode: %d bytes after the value", len(data)-d.pos)
	}
	return v, nil
}

type decoder struct {
	data []byte
	pos  int
}

var errShort = errors.New("bencode: unexpected end of input")

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("bencode: nested deeper than %d", maxDepth)
	}
	if d.pos >= len(d.data) {
		return nil, errShort
	}
	switch c := d.data[d.pos]; {
	case c == 'i':
		end := bytes.IndexByte(d.data[d.pos:], 'e')
		if end < 0 {
			return nil, errShort
		}
		s := string(d.data[d.pos+1 : d.pos+end])
		n, err := strconv.ParseInt(s, 10, 64)
		// BEP 3: no leading zeros, no "-0".
		if err != nil || s == "-0" || (len(s) > 1 && s[0] == '0') || (len(s) > 2 && s[:2] == "-0") {
			return nil, fmt.Errorf("bencode: bad integer %q at %d", s, d.pos)
		}
		d.pos += end + 1
		return n, nil
	case c >= '0' && c <= '9':
		return d.str()
	case c == 'l':
		d.pos++
		list := []any{}
		for {
			if d.pos >= len(d.data) {
				return nil, errShort
			}
			if d.data[d.pos] == 'e' {
				d.pos++
				return list, nil
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	case c == 'd':
		d.pos++
		m := map[string]any{}
		for {
			if d.pos >= len(d.data) {
				return nil, errShort
			}
			if d.data[d.pos] == 'e' {
				d.pos++
				return m, nil
			}
			if c := d.data[d.pos]; c < '0' || c > '9' {
				return nil, fmt.Errorf("bencode: dictionary key at %d is not a string", d.pos)
			}
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
	default:
		return nil, fmt.Errorf("bencode: unexpected %q at %d", c, d.pos)
	}
}

func (d *decoder) str() (string, error) {
	colon := bytes.IndexByte(d.data[d.pos:], ':')
	if colon < 0 {
		return "", errShort
	}
	n, err := strconv.Atoi(string(d.data[d.pos : d.pos+colon]))
	if err != nil || n < 0 {
		return "", fmt.Errorf("bencode: bad string length at %d", d.pos)
	}
	start := d.pos + colon + 1
	if n > len(d.data)-start {
		return "", errShort
	}
	d.pos = start + n
	return string(d.data[start:d.pos]), nil
}
