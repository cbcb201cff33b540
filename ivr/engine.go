package ivr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// Defaults of Menu, VoicemailOptions and Options.
const (
	DefaultMenuTimeout  = 5 * time.Second
	DefaultMaxLength    = 120 * time.Second
	DefaultMinLength    = time.Second
	DefaultMaxHops      = 32
	defaultDigitBuffer  = 32
	defaultFinishBudget = 10 * time.Second
	// defaultStartBudget bounds starting a voicemail recording: the caller is waiting after the
	// beep, and a recorder that stalls must cost a goodbye, never a frozen IVR goroutine.
	defaultStartBudget = 5 * time.Second
)

// Menu is one IVR menu: a prompt, then digits choose where the call goes.
type Menu struct {
	// Prompt names the prompt played (in the call's language).
	Prompt string
	// Language, when set, becomes the call's language on entering the menu (language
	// selection: "1 for English, 2 pour le français" sends each key to a menu with its
	// language); prompts from then on are played in it.
	Language string
	// Timeout is how long the menu waits for the first digit after the prompt, and between
	// digits of a multi-digit choice. It cannot be off: 0 takes DefaultMenuTimeout (5 s).
	Timeout time.Duration
	// Retries is how many times the menu is played again after no input or an invalid
	// choice before NoInput or Invalid is followed (0: none).
	Retries int
	// Options maps keys to targets. Keys are usually one digit; longer keys ("12") make the
	// menu collect several digits, ended by '#', by a key that no longer option extends, or by
	// Timeout.
	Options map[string]Target
	// NoInput is where the call goes when no choice came after the retries (unset: hang up).
	NoInput Target
	// Invalid is where the call goes after invalid choices and the retries (unset: NoInput).
	Invalid Target
	// Collect, when set, makes the menu a step that collects digits into a variable
	// (collect.go): Prompt and Language serve it as they serve a menu (an empty Prompt plays
	// nothing), and Timeout, Retries, Options, NoInput and Invalid are not used.
	Collect *Collect
}

// Line is an inbound number as ivr runs it.
type Line struct {
	// Number is the line's number (for offers and voicemail metadata).
	Number string
	// Language is the call's starting language (default Options.DefaultLanguage).
	Language string
	// Target is where calls to the line go.
	Target Target
	// Hours, when set, sends calls outside opening hours to Hours.Closed.
	Hours *Hours
}

// VoicemailOptions configure voicemail messages (VM rules).
type VoicemailOptions struct {
	// Prompt names the greeting played before the beep (default "voicemail").
	Prompt string
	// MaxLength ends a message after this long. It cannot be off: 0 takes DefaultMaxLength
	// (120 s).
	MaxLength time.Duration
	// MinLength: a shorter message counts as none, the call as abandoned in voicemail (TC-5).
	// DefaultMinLength (1 s); 0 means any length counts, as the configuration's 0s does.
	MinLength time.Duration
	// NoBeep leaves out the tone before recording (the configuration's beep: false).
	NoBeep bool
}

// Options configure an Engine. Zero means what each field says: off where a knob can be off
// (VoicemailOptions.MinLength), the Default* constant where it cannot (timeouts that end a
// wait, MaxHops). The configuration's defaults are these constants.
type Options struct {
	// Menus by name.
	Menus map[string]Menu
	// Prompts to play (default: the built-in set).
	Prompts *Prompts
	// ACD runs the queues; required when any target is a queue.
	ACD *ACD
	// Voicemail configures messages; Recorder records them (required for voicemail targets:
	// without one a voicemail target says goodbye and hangs up, and the call counts as
	// abandoned in voicemail).
	Voicemail VoicemailOptions
	Recorder  VoicemailRecorder
	// Events receives call.ivr_selected, call.voicemail and call.abandoned (the ACD emits its
	// own through ACDOptions.Events); nil discards them.
	Events Events
	// Clock drives menu timeouts and voicemail length (default the real clock).
	Clock Clock
	// DefaultLanguage is the language of calls whose line sets none (default "en").
	DefaultLanguage string
	// MaxHops bounds how many targets one call may pass through (menus looping back on each
	// other); past it the call is hung up (default 32).
	MaxHops int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Engine runs calls through menus, queues and voicemail. One per process; safe for concurrent
// use by many calls.
type Engine struct {
	opts Options
	log  *slog.Logger
}

// New checks that every menu option, no-input and invalid target names a menu or queue that
// exists, and returns the engine.
func New(opts Options) (*Engine, error) {
	if opts.Prompts == nil {
		p, err := NewPrompts(PromptOptions{DefaultLanguage: opts.DefaultLanguage})
		if err != nil {
			return nil, err
		}
		opts.Prompts = p
	}
	if opts.Events == nil {
		opts.Events = noEvents{}
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.DefaultLanguage == "" {
		opts.DefaultLanguage = "en"
	}
	if opts.MaxHops <= 0 {
		opts.MaxHops = DefaultMaxHops
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v := &opts.Voicemail
	if v.Prompt == "" {
		v.Prompt = PromptVoicemail
	}
	if v.MaxLength <= 0 {
		v.MaxLength = DefaultMaxLength
	}
	v.MinLength = max(v.MinLength, 0) // zero: no minimum (VoicemailOptions)
	menus := make(map[string]Menu, len(opts.Menus))
	for name, m := range opts.Menus {
		if m.Collect != nil {
			col := m.Collect.withDefaults()
			if err := col.check(); err != nil {
				return nil, fmt.Errorf("ivr: menu %s: %w", name, err)
			}
			if len(m.Options) > 0 {
				return nil, fmt.Errorf("ivr: menu %s: a collect step takes no options", name)
			}
			m.Collect = &col
			menus[name] = m
			continue
		}
		if m.Timeout <= 0 {
			m.Timeout = DefaultMenuTimeout
		}
		if m.Retries < 0 {
			m.Retries = 0
		}
		if m.Invalid.Kind == TargetNone {
			m.Invalid = m.NoInput
		}
		if m.Prompt == "" {
			m.Prompt = name
		}
		menus[name] = m
	}
	opts.Menus = menus
	e := &Engine{opts: opts, log: opts.Logger}
	for name, m := range menus {
		if col := m.Collect; col != nil {
			for what, t := range map[string]Target{"next": col.Next, "no_input": col.NoInput, "invalid": col.Invalid} {
				if err := e.check(t); err != nil {
					return nil, fmt.Errorf("ivr: menu %s collect %s: %w", name, what, err)
				}
			}
			continue
		}
		for key, t := range m.Options {
			if key == "" || strings.Trim(key, "0123456789*#ABCD") != "" {
				return nil, fmt.Errorf("ivr: menu %s: option %q is not a DTMF key sequence", name, key)
			}
			if err := e.check(t); err != nil {
				return nil, fmt.Errorf("ivr: menu %s option %s: %w", name, key, err)
			}
		}
		if err := e.check(m.NoInput); err != nil {
			return nil, fmt.Errorf("ivr: menu %s no_input: %w", name, err)
		}
		if err := e.check(m.Invalid); err != nil {
			return nil, fmt.Errorf("ivr: menu %s invalid: %w", name, err)
		}
	}
	return e, nil
}

// check reports a target naming a menu or queue that does not exist.
func (e *Engine) check(t Target) error {
	switch t.Kind {
	case TargetMenu:
		if _, ok := e.opts.Menus[t.Name]; !ok {
			return fmt.Errorf("%w: %s", ErrUnknownMenu, t.Name)
		}
	case TargetQueue:
		if e.opts.ACD == nil || !e.opts.ACD.hasQueue(t.Name) {
			return fmt.Errorf("%w: %s", ErrUnknownQueue, t.Name)
		}
	}
	return nil
}

// Call is one call inside ivr. Create it with Engine.NewCall before Run so that sip can feed
// it INFO digits (InjectINFO) from its request handlers while Run is going.
type Call struct {
	e   *Engine
	leg Leg
	id  string // leg.CallID(), read once: the ACD needs it under its lock
	// callbackOf is, for a queue callback's call (callback.go), the call whose caller asked
	// for it: the ACD finds the connected callback under either id.
	callbackOf string
	info       CallInfo
	digits     chan rune

	mu       sync.Mutex
	lang     string
	path     []string
	selected bool // call.ivr_selected emitted
	menuRan  bool
	vars     map[string]string // collected by Collect steps: call.ivr_selected's data
	varsSent bool              // vars unchanged since call.ivr_selected carried them
}

// NewCall prepares leg for Run.
func (e *Engine) NewCall(leg Leg, info CallInfo) *Call {
	return &Call{e: e, leg: leg, id: leg.CallID(), info: info, digits: make(chan rune, defaultDigitBuffer), lang: e.opts.DefaultLanguage}
}

// ID is the call's id (the Leg's CallID, read once by NewCall).
func (c *Call) ID() string { return c.id }

// Language is the call's current language.
func (c *Call) Language() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lang
}

// MenuPath is the trail of menus and choices so far, e.g. "main>1" or "main>2>billing>3";
// "timeout" and "invalid" mark a menu left by its NoInput or Invalid target.
func (c *Call) MenuPath() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.path, ">")
}

func (c *Call) setLang(l string) {
	c.mu.Lock()
	c.lang = l
	c.mu.Unlock()
}

func (c *Call) addPath(s string) {
	c.mu.Lock()
	c.path = append(c.path, s)
	c.mu.Unlock()
}

// InjectDigit feeds a key pressed by other means than RFC 4733 (SIP INFO) into the call's
// digit stream. It reports false when the digit was dropped (buffer full).
func (c *Call) InjectDigit(r rune) bool {
	select {
	case c.digits <- r:
		return true
	default:
		return false
	}
}

// InjectINFO parses a SIP INFO body (ParseINFO) and feeds its key to the call. sip calls it
// for INFO requests in the carrier dialog: answer 200 on nil, 415 Unsupported Media Type when
// the error wraps ErrNotDTMF because of the content type, 400 otherwise.
func (c *Call) InjectINFO(contentType string, body []byte) error {
	r, _, err := ParseINFO(contentType, body)
	if err != nil {
		return err
	}
	c.InjectDigit(r)
	return nil
}

// ResultKind says what sip does with a call when Run returns.
type ResultKind int

const (
	// ResultHangup: ivr is done with the call; sip hangs up (BYE) if the caller is still there.
	ResultHangup ResultKind = iota
	// ResultTransfer: sip bridges the call to Result.URI (dial out, then media.Bridge), as for a
	// line whose target is a SIP URI; the carrier leg is already answered.
	ResultTransfer
)

// Result is how a call left ivr.
type Result struct {
	Kind ResultKind
	// URI is the SIP URI of a ResultTransfer.
	URI string
	// Outcome is answered, abandoned or voicemail when ivr knows it (sip passes it to
	// Call.SetOutcome), "" otherwise.
	Outcome string
	// HoldTime is how long agents kept the caller on hold (ACD.Hold); sip adds it to the
	// hold time of call.ended.
	HoldTime time.Duration
	// Err is set when ivr hit an error it could not route around (logged already).
	Err error
}

// Run takes the call (carrier leg answered) through the line's flow: business hours, menus,
// queues, voicemail, until it ends here or must be transferred to a SIP URI. It returns when
// the caller hangs up (leg.Done or ctx), and never hangs up the leg itself.
func (c *Call) Run(ctx context.Context, line Line) Result {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if line.Language != "" {
		c.setLang(line.Language)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.readDigits(ctx, cancel) }()
	defer wg.Wait()
	defer cancel(nil)

	target := line.Target
	if h := line.Hours; h != nil && !h.Open(c.e.opts.Clock.Now()) {
		if h.ClosedPrompt != "-" {
			name := h.ClosedPrompt
			if name == "" {
				name = PromptClosed
			}
			if err := c.playAll(ctx, name); err != nil {
				return c.abandon(callevent.WhereIVR)
			}
		}
		target = h.Closed
		if target.Kind == TargetNone {
			target = VoicemailTarget()
		}
	}
	for hop := 0; ; hop++ {
		if hop >= c.e.opts.MaxHops {
			c.e.log.Warn("ivr: too many hops; hanging up", "call_id", c.ID(), "menu_path", c.MenuPath())
			c.emitSelected()
			return Result{Kind: ResultHangup, Err: fmt.Errorf("ivr: more than %d targets", c.e.opts.MaxHops)}
		}
		if target.Kind != TargetMenu {
			c.emitSelected()
		}
		switch target.Kind {
		case TargetMenu:
			next, err := c.runMenu(ctx, target.Name)
			if err != nil {
				c.emitSelected()
				return c.abandon(callevent.WhereIVR)
			}
			target = next
		case TargetQueue:
			if c.e.opts.ACD == nil {
				return Result{Kind: ResultHangup, Err: fmt.Errorf("%w: %s (no ACD)", ErrUnknownQueue, target.Name)}
			}
			res, next := c.e.opts.ACD.serve(ctx, c, target.Name)
			if next == nil {
				return res
			}
			target = *next
		case TargetVoicemail:
			return c.voicemail(ctx)
		case TargetSIP:
			return Result{Kind: ResultTransfer, URI: target.URI}
		default: // hangup, or an unset target
			_ = c.playAll(ctx, PromptGoodbye)
			return Result{Kind: ResultHangup}
		}
	}
}

// readDigits forwards RFC 4733 digits from the endpoint into the call's digit stream and ends
// the call's context when the caller hangs up.
func (c *Call) readDigits(ctx context.Context, cancel context.CancelCauseFunc) {
	var dtmf <-chan media.DTMFEvent
	if ep := c.leg.Endpoint(); ep != nil {
		dtmf = ep.DTMF()
	}
	done := c.leg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			cancel(errCallerGone)
			return
		case ev, ok := <-dtmf:
			if !ok {
				dtmf = nil
				continue
			}
			c.InjectDigit(ev.Digit)
		}
	}
}

var errCallerGone = errors.New("ivr: caller hung up")

// emitSelected emits call.ivr_selected with the menu path, the language and the collected
// variables as data (CF-4), once the call leaves the menus. It is emitted again only when a
// collect step stored a variable since (a queue overflowing to a collect step), so that the
// data reaches the call's record.
func (c *Call) emitSelected() {
	c.mu.Lock()
	if (c.selected && (c.varsSent || len(c.vars) == 0)) || len(c.path) == 0 {
		c.mu.Unlock()
		return
	}
	c.selected, c.varsSent = true, true
	ev := callevent.Event{Type: callevent.EventIVRSelected, CallID: c.ID(), MenuPath: strings.Join(c.path, ">"), Language: c.lang,
		Data: callevent.NewData(c.vars)}
	c.mu.Unlock()
	c.emit(ev)
}

func (c *Call) emit(ev callevent.Event) {
	ev.CallID = c.ID()
	ev.At = c.e.opts.Clock.Now()
	if c.info.Events != nil {
		c.info.Events.Emit(ev)
		return
	}
	c.e.opts.Events.Emit(ev)
}

func (c *Call) abandon(where string) Result {
	c.emit(callevent.Event{Type: callevent.EventAbandoned, Where: where})
	return Result{Kind: ResultHangup, Outcome: callevent.OutcomeAbandoned}
}

func (c *Call) codec() media.Codec {
	if cr, ok := c.leg.(CodecReporter); ok {
		if cd := cr.Codec(); cd != media.CodecNone {
			return cd
		}
	}
	return media.PCMU
}

// audio returns the named prompts, in the call's language, as one stream in the leg's codec.
// Missing prompts are logged and skipped.
func (c *Call) audio(names ...string) io.Reader {
	lang, cd := c.Language(), c.codec()
	rs := make([]io.Reader, 0, len(names))
	for _, n := range names {
		p, ok := c.e.opts.Prompts.Get(lang, n)
		if !ok {
			c.e.log.Warn("ivr: prompt missing", "prompt", n, "language", lang, "call_id", c.ID())
			continue
		}
		rs = append(rs, bytes.NewReader(p.Bytes(cd)))
	}
	return io.MultiReader(rs...)
}

// playAll plays the prompts to their end (digits are left for whoever reads next). It returns
// an error only when the call ended.
func (c *Call) playAll(ctx context.Context, names ...string) error {
	ep := c.leg.Endpoint()
	if ep == nil {
		return ctx.Err()
	}
	if err := ep.Play(ctx, c.audio(names...), c.codec()); err != nil && ctx.Err() != nil {
		return err
	}
	return ctx.Err()
}

// playBargeIn plays the prompts until their end or the first digit, which it returns (0 when
// none came). The prompt stops within one 20 ms frame of the digit.
func (c *Call) playBargeIn(ctx context.Context, names ...string) (rune, error) {
	ep := c.leg.Endpoint()
	if ep == nil {
		return 0, ctx.Err()
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- ep.Play(pctx, c.audio(names...), c.codec()) }()
	select {
	case d := <-c.digits:
		stop()
		<-done
		return d, nil
	case <-done:
		return 0, ctx.Err()
	case <-ctx.Done():
		<-done
		return 0, ctx.Err()
	}
}

// drainDigits forgets digits typed ahead.
func (c *Call) drainDigits() {
	for range defaultDigitBuffer {
		select {
		case <-c.digits:
		default:
			return
		}
	}
}

// waitDigit waits up to d for a digit on the engine's clock; 0 means none came.
func (c *Call) waitDigit(ctx context.Context, d time.Duration) (rune, error) {
	select {
	case r := <-c.digits:
		return r, nil
	default:
	}
	t := c.e.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-c.digits:
		return r, nil
	case <-t.C():
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
