package ivr

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
)

// builtin holds the default prompts made by scripts/prompts.sh: LANGUAGE/NAME.wav for spoken
// prompts (en, fr) and NAME.wav for language-neutral sounds (beep, music).
//
//go:embed prompts
var builtin embed.FS

// Names of the prompts ivr itself plays. Menus name theirs in the configuration.
const (
	PromptPleaseHold   = "please_hold"
	PromptVoicemail    = "voicemail"
	PromptBeep         = "beep"
	PromptGoodbye      = "goodbye"
	PromptClosed       = "closed"
	PromptMusic        = "music"
	PromptPosition     = "position"      // "you are caller number", followed by num_N
	PromptPositionMany = "position_many" // more callers ahead than there are number prompts
	PromptTransfer     = "transfer"
	PromptInvalid      = "invalid"
	promptNumber       = "num_" // num_1 … num_20
)

// PromptOptions configures NewPrompts.
type PromptOptions struct {
	// Dir holds prompts as DIR/LANGUAGE/NAME.wav and language-neutral ones as DIR/NAME.wav;
	// they replace or add to the built-in set. Empty: the built-in prompts only.
	Dir string
	// DefaultLanguage is tried when a prompt is missing in the call's language (default "en").
	DefaultLanguage string
	// NoBuiltin leaves the built-in prompts out (tests that want a small, known set).
	NoBuiltin bool
}

// Prompts is the set of prompts by language and name, loaded once. Lookups fall back from
// "fr-CA" to "fr", then to the default language, then to the language-neutral set. Safe for
// concurrent use.
type Prompts struct {
	defLang string
	mu      sync.RWMutex
	m       map[string]*Prompt // "lang/name" or "/name"
}

// NewPrompts loads the built-in prompts and then opts.Dir. A file that does not parse is an
// error naming it, so a bad prompt is found at start, not during a call.
func NewPrompts(opts PromptOptions) (*Prompts, error) {
	if opts.DefaultLanguage == "" {
		opts.DefaultLanguage = "en"
	}
	p := &Prompts{defLang: strings.ToLower(opts.DefaultLanguage), m: map[string]*Prompt{}}
	if !opts.NoBuiltin {
		sub, _ := fs.Sub(builtin, "prompts")
		if err := p.loadFS(sub); err != nil {
			return nil, fmt.Errorf("ivr: built-in prompts: %w", err)
		}
	}
	if opts.Dir != "" {
		if err := p.loadFS(os.DirFS(opts.Dir)); err != nil {
			return nil, fmt.Errorf("ivr: prompts in %s: %w", opts.Dir, err)
		}
	}
	return p, nil
}

func (p *Prompts) loadFS(fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && name == "." {
				return fmt.Errorf("prompt directory: %w", err)
			}
			return err
		}
		if d.IsDir() || !strings.EqualFold(path.Ext(name), ".wav") {
			return nil
		}
		dir, file := path.Split(name)
		dir = strings.Trim(dir, "/")
		if strings.Contains(dir, "/") {
			return nil // deeper folders are not prompts
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		pr, err := ParseWAV(b)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		p.Set(dir, strings.TrimSuffix(file, path.Ext(file)), pr)
		return nil
	})
}

// Set adds or replaces a prompt; lang "" is the language-neutral set.
func (p *Prompts) Set(lang, name string, pr *Prompt) {
	p.mu.Lock()
	p.m[strings.ToLower(lang)+"/"+name] = pr
	p.mu.Unlock()
}

// Get returns the prompt name in language lang, falling back to the base language, the
// default language, then the language-neutral set.
func (p *Prompts) Get(lang, name string) (*Prompt, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	lang = strings.ToLower(lang)
	tries := []string{lang}
	if base, _, ok := strings.Cut(lang, "-"); ok {
		tries = append(tries, base)
	}
	tries = append(tries, p.defLang, "")
	for _, l := range tries {
		if pr, ok := p.m[l+"/"+name]; ok {
			return pr, true
		}
	}
	return nil, false
}

// Names lists the loaded prompts as "lang/name" ("/name" for language-neutral ones), sorted.
func (p *Prompts) Names() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.m))
	for k := range p.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
