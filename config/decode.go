package config

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// docIndex maps a YAML document's paths to lines and back. yaml.v3 reports decoding errors
// with a line number only; the index turns that line into the YAML path an operator reads, and
// gives validation problems the line of their key. It also records which keys were written, so
// that a default can tell an omitted key from an explicit zero.
type docIndex struct {
	lines  map[string]int   // path → line of its key or list item
	byLine map[int][]pathAt // line → the keys and values on it, in document order
}

// pathAt is one key or list item: its path, its key (empty for list items) and its value.
type pathAt struct {
	path  string
	key   string
	value *yaml.Node
}

func indexDocument(root *yaml.Node) *docIndex {
	idx := &docIndex{lines: map[string]int{}, byLine: map[int][]pathAt{}}
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		idx.walk(root.Content[0], "")
	}
	return idx
}

// walk records n's children. Aliases are not followed: their content is recorded where its
// anchor is, and following them could blow up (the "billion laughs" document).
func (idx *docIndex) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			idx.add(p, k.Value, k.Line, v)
			idx.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			idx.add(p, "", item.Line, item)
			idx.walk(item, p)
		}
	}
}

func (idx *docIndex) add(path, key string, line int, v *yaml.Node) {
	if _, dup := idx.lines[path]; !dup {
		idx.lines[path] = line
	}
	idx.byLine[line] = append(idx.byLine[line], pathAt{path, key, v})
	if v.Line != line {
		idx.byLine[v.Line] = append(idx.byLine[v.Line], pathAt{path, "", v})
	}
}

// has reports whether the key at path was written in the file.
func (idx *docIndex) has(path string) bool {
	if idx == nil {
		return false
	}
	_, ok := idx.lines[path]
	return ok
}

// lineOf returns the line of path, or of its nearest written ancestor, or 0.
func (idx *docIndex) lineOf(path string) int {
	if idx == nil {
		return 0
	}
	for path != "" {
		if l, ok := idx.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// coverage is the part of a document that failed to decode. A value that failed to decode is
// left empty, and validating it, or what holds it (a trunk whose only network failed to decode
// "takes no calls"), would only add noise.
type coverage struct {
	all       bool            // nothing was decoded
	covered   map[string]bool // paths that failed to decode
	ancestors map[string]bool // what holds them
}

func newCoverage(ds []decoded) *coverage {
	cv := &coverage{covered: map[string]bool{}, ancestors: map[string]bool{}}
	for _, d := range ds {
		if !d.covers {
			continue
		}
		if d.cover == "" {
			cv.all = true
		}
		cv.covered[d.cover] = true
		for p := parentPath(d.cover); p != ""; p = parentPath(p) {
			cv.ancestors[p] = true
		}
	}
	return cv
}

// has reports whether a decoding problem already speaks for path.
func (cv *coverage) has(path string) bool {
	if cv.all || cv.ancestors[path] {
		return true
	}
	for p := path; p != ""; p = parentPath(p) {
		if cv.covered[p] {
			return true
		}
	}
	return false
}

// decoded is a decoding problem and the part of the document it leaves undecoded: cover and
// everything below it, the whole document when cover is "" (covers false: nothing).
type decoded struct {
	Problem
	cover  string
	covers bool
}

var (
	lineRE      = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRE   = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	dupKeyRE    = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	dupFieldRE  = regexp.MustCompile(`^field (\S+) already set in type \S+$`)
	unmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
	gotKindRE   = regexp.MustCompile(`got a (list|mapping|alias)$`)
)

// decodeProblems turns yaml's errors into Problems with a path (when the index can tell it),
// a line, and a message that says what is allowed.
func decodeProblems(err error, idx *docIndex) []decoded {
	keys := knownKeys()
	var msgs []string
	if te, ok := err.(*yaml.TypeError); ok {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	ds := make([]decoded, 0, len(msgs))
	for _, m := range msgs {
		p := decodeProblem(strings.TrimPrefix(m, "yaml: "), idx, keys)
		d := decoded{Problem: p, cover: p.Path, covers: p.Path != ""}
		raw := lineRE.ReplaceAllString(strings.TrimPrefix(m, "yaml: "), "$2")
		if dupKeyRE.MatchString(raw) {
			// yaml.v3 skips the whole mapping holding a repeated key.
			d.cover, d.covers = parentPath(p.Path), true
		}
		if u := unmarshalRE.FindStringSubmatch(raw); u != nil && strings.TrimPrefix(u[3], "*") == "config.Config" {
			// The document itself is not a mapping: nothing was decoded.
			d.cover, d.covers = "", true
		}
		ds = append(ds, d)
	}
	return ds
}

func problemsOf(ds []decoded) Problems {
	ps := make(Problems, len(ds))
	for i, d := range ds {
		ps[i] = d.Problem
	}
	return ps
}

func decodeProblem(msg string, idx *docIndex, keys map[string][]string) Problem {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Message: msg}
	}
	line, _ := strconv.Atoi(m[1])
	msg = m[2]
	p := Problem{Line: line, Message: msg}
	if idx == nil {
		p.Message += " (YAML syntax)"
		return p
	}
	here := idx.byLine[line]
	if u := unknownRE.FindStringSubmatch(msg); u != nil {
		p.Path = keyPath(here, u[1])
		p.Message = "unknown key " + strconv.Quote(u[1])
		if allowed := keys[strings.TrimPrefix(u[2], "*")]; len(allowed) > 0 {
			p.Message += "; allowed here: " + strings.Join(allowed, ", ")
		}
		return p
	}
	if d := dupKeyRE.FindStringSubmatch(msg); d != nil {
		p.Path = keyPath(here, d[1])
		p.Message = "key " + strconv.Quote(d[1]) + " appears twice (first at line " + d[2] + ")"
		return p
	}
	if d := dupFieldRE.FindStringSubmatch(msg); d != nil {
		p.Path = keyPath(here, d[1])
		p.Message = "key " + strconv.Quote(d[1]) + " appears twice"
		return p
	}
	if u := unmarshalRE.FindStringSubmatch(msg); u != nil {
		tag, val, into := u[1], u[2], u[3]
		kind := yaml.ScalarNode
		got := strconv.Quote(strings.TrimSuffix(val, "..."))
		switch tag {
		case "map":
			kind, got = yaml.MappingNode, "a mapping"
		case "seq":
			kind, got = yaml.SequenceNode, "a list"
		case "null":
			got = "nothing"
		}
		p.Path = valuePath(here, kind, func(v string) bool {
			return val == "" || v == val || (strings.HasSuffix(val, "...") && strings.HasPrefix(v, strings.TrimSuffix(val, "...")))
		})
		p.Message = "want " + goTypeWant(into) + ", got " + got
		return p
	}
	// The scalar types' own messages (values.go) quote the bad value or name its kind.
	kind := yaml.ScalarNode
	if g := gotKindRE.FindStringSubmatch(msg); g != nil {
		kind = map[string]yaml.Kind{"list": yaml.SequenceNode, "mapping": yaml.MappingNode, "alias": yaml.AliasNode}[g[1]]
	}
	p.Path = valuePath(here, kind, func(v string) bool { return strings.Contains(msg, strconv.Quote(v)) })
	return p
}

// keyPath finds the key named key on a line.
func keyPath(here []pathAt, key string) string {
	for _, e := range here {
		if e.key == key {
			return e.path
		}
	}
	return ""
}

// valuePath finds the value a decoding error on a line is about: of the right kind, and the
// one whose text the message quotes when several are on the line (a flow list).
func valuePath(here []pathAt, kind yaml.Kind, quoted func(string) bool) string {
	var cands []pathAt
	for _, e := range here {
		if e.value.Kind == kind {
			cands = append(cands, e)
		}
	}
	for _, e := range cands {
		if kind == yaml.ScalarNode && quoted(e.value.Value) {
			return e.path
		}
	}
	if len(cands) == 1 || (len(cands) > 0 && kind != yaml.ScalarNode) {
		return cands[len(cands)-1].path
	}
	return ""
}

// goTypeWant names what a Go type takes, in an operator's words.
func goTypeWant(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case t == "float32" || t == "float64":
		return "a number"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.Contains(t, "."):
		return "a mapping"
	}
	return t
}

// knownKeys returns, for every struct type of the schema (named as yaml.v3 names it,
// "config.SIP"), its keys in the order docs/configuration.md lists them.
func knownKeys() map[string][]string {
	out := map[string][]string{}
	seen := map[reflect.Type]bool{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || tag == "-" || tag == "" {
				continue
			}
			keys = append(keys, tag)
			visit(f.Type)
		}
		out[t.String()] = keys
	}
	visit(reflect.TypeOf(Config{}))
	return out
}
