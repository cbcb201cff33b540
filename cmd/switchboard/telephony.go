package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/internal/calljournal"
	"github.com/switchboard-voice/switchboard/internal/uring"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ivr/acdpg"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/recordings"
	"github.com/switchboard-voice/switchboard/roster"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
	"github.com/switchboard-voice/switchboard/ticketing/phone"
	"github.com/switchboard-voice/switchboard/web"
)

// telephony is the voice side of the gateway: RTP ports, the SIP B2BUA, the IVR and the queue,
// and the recorder, wired to each other and to the ticketing core's event log.
type telephony struct {
	gw    *gateway
	ports *media.PortAllocator
	sip   *sip.Server
	ivr   *ivr.Engine
	acd   *ivr.ACD
	// acdStore is the ACD's shared state with database.shared_queues (nil otherwise).
	acdStore *acdpg.Store
	// roster keeps the ACD's queues and agents in step with the database (the source of
	// truth since the first start) and serves the admin API.
	roster *roster.Manager
	recs   *recordings.Service
	// agents maps the configured agents' emails to their user ids.
	agents map[string]int64
	web    *web.Server
	rtc    *media.WebRTC
	// pages is t.web for the ACD's OnAgentState: with database.shared_queues the ACD's shared
	// loop runs (and reports agent states) from NewACD on, before startSoftphone has made the
	// web server, so the callback cannot read t.web (a data race -race showed in the cross-node
	// test); startSoftphone stores it here once made.
	pages atomic.Pointer[web.Server]
	// transfers is the page's and the API's transfer checks, made by startSoftphone after the
	// SIP server; an agent phone's REFER (sip.Options.Refer) goes through them.
	transfers atomic.Pointer[web.Transfers]
	// outbound is the page's outbound call checks, made by startSoftphone after the SIP
	// server; an agent phone's own call (sip.Options.PhoneCall) goes through them.
	outbound atomic.Pointer[web.Outbound]
	// outLines are the roster's lines agents call from (setLines), once it has read them.
	outLines atomic.Pointer[web.OutboundLines]
	// states keeps the agents' state history for the reports (nil without a database pool).
	states *ticketing.AgentStateLog

	// wg counts the retention loop; stopRetention ends it. A call's state is sip's (sip.Call):
	// nothing here is per call.
	wg            sync.WaitGroup
	stopRetention context.CancelFunc
}

// startTelephony builds and starts the voice side. It runs after startTicketing. With dbUp
// false (degraded mode) what needs the database waits for databaseReturned.
func (gw *gateway) startTelephony(ctx context.Context, mux *http.ServeMux, dbUp bool) error {
	cfg := gw.cfg
	t := &telephony{gw: gw, agents: gw.accountIDs}
	gw.tel = t

	addr, err := netip.ParseAddr(cfg.RTP.Address)
	if err != nil {
		return fmt.Errorf("rtp.address: %w", err)
	}
	if t.ports, err = media.NewPortAllocator(addr, cfg.RTP.PortMin, cfg.RTP.PortMax); err != nil {
		return fmt.Errorf("rtp: %w", err)
	}
	gw.checkFDBudget()
	mediaMetrics, err := media.NewMetrics(gw.reg)
	if err != nil {
		return err
	}

	// The recorder: calls (when recordings are on) and voicemail messages.
	if cfg.Recordings.Dir != "" {
		start := recordings.StartAtAnswer
		if cfg.Recordings.Start == "call_start" {
			start = recordings.StartAtCallStart
		}
		recMetrics, err := recordings.NewMetrics(gw.reg)
		if err != nil {
			return err
		}
		t.recs, err = recordings.New(recordings.Options{
			Dir: cfg.Recordings.Dir, DB: gw.pool, Node: cfg.Node, Metrics: recMetrics, StartPoint: start,
			Logger:     gw.log.With("component", "recordings"),
			Authorizer: recordingsAuth{gw}, Tickets: ticketRecordings{gw.store},
			OnExpired: func(ctx context.Context, ids []string, at time.Time) error {
				return gw.store.MarkRecordingsDeleted(ctx, 0, ids, 0, at)
			},
			// TU-9: playing a voicemail message is reading it, audited on its ticket.
			Played: func(ctx context.Context, rec recordings.Recording, userID int64) error {
				if rec.Kind != "voicemail" {
					return nil
				}
				return gw.store.AuditVoicemailRead(ctx, ticketing.Actor(userID), rec.ID)
			},
		})
		if err != nil {
			return err
		}
		if err := uring.FileRingErr(); err != nil {
			// The recordings' fsyncs and file creation then hold the Go runtime's processor
			// while the disk works: with only one, every call waits behind them.
			lvl := slog.LevelInfo
			if runtime.GOMAXPROCS(0) == 1 {
				lvl = slog.LevelWarn
			}
			gw.log.Log(ctx, lvl, "recordings: fsync and file creation are direct system calls (no io_uring): with one CPU every call waits behind them; allow io_uring_setup and io_uring_enter (seccomp, kernel.io_uring_disabled) or give the gateway two CPUs", "reason", err.Error(), "gomaxprocs", runtime.GOMAXPROCS(0))
		}
		if path, err := media.ReceivePath(); err != nil {
			gw.log.Info("media: receiving with "+path+", not the multishot io_uring (Linux 6.1 or later, unless SWITCHBOARD_MEDIA_RECEIVE=epoll)", "reason", err.Error())
		} else {
			gw.log.Info("media: receiving through a multishot io_uring per poll loop")
		}
		if dbUp {
			if err := t.repairRecordings(ctx); err != nil {
				return err
			}
		}
		t.recs.Register(mux, "/api/v2")
		if days := cfg.Recordings.RetentionDays; days > 0 {
			rctx, cancel := context.WithCancel(gw.bgCtx)
			t.stopRetention = cancel
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				t.recs.RunRetention(rctx, days, time.Hour, func(err error) { gw.log.Error("recordings retention", "err", err) })
			}()
		}
	}

	// The IVR and the queue.
	prompts, err := ivr.NewPrompts(ivr.PromptOptions{Dir: cfg.Prompts.Dir, DefaultLanguage: cfg.Prompts.DefaultLanguage})
	if err != nil {
		return err
	}
	// The agents' state history for the reports (occupancy, wrap-up): written by its own
	// goroutine, never waited on by the ACD.
	t.states = ticketing.NewAgentStateLog(ticketing.AgentStateLogOptions{Pool: gw.pool, Logger: gw.log.With("component", "reports")})
	acdOpts := ivr.ACDOptions{
		Prompts: prompts, Registerer: gw.reg,
		Authorizer: ivrAuth{gw}, Logger: gw.log.With("component", "acd"),
		OnAgentState: func(st ivr.AgentStatus) {
			t.states.Record(ticketing.AgentStateChange{AgentID: st.ID, State: string(st.State), Since: st.Since, CallID: st.CallID})
			if w := t.pages.Load(); w != nil {
				w.AgentStateChanged(st)
			}
		},
	}
	for name, q := range cfg.Queues {
		iq := ivr.Queue{Name: name, RingTimeout: q.RingTimeout.D(), MaxWait: q.MaxWait.D(), WrapUp: q.WrapUp.D(),
			MaxMissedOffers: q.MaxMissedOffers, AnnouncePosition: q.AnnouncePosition, Overflow: q.Overflow.Target,
			Callback: ivr.QueueCallback{Key: q.Callback.Key, Attempts: q.Callback.Attempts, RetryDelay: q.Callback.RetryDelay.D()}}
		if q.Music != "" {
			if iq.Music, err = ivr.LoadWAV(q.Music); err != nil {
				return fmt.Errorf("queues.%s.music: %w", name, err)
			}
		}
		acdOpts.Queues = append(acdOpts.Queues, iq)
	}
	for _, a := range cfg.Agents {
		id := t.agents[a.Email]
		if id == 0 {
			// Started without the database and without a cached id (cachedAccountIDs).
			gw.log.Warn("agent left out of the queues: its user id is unknown until the database answers (the roster then adds it)", "agent", a.Email)
			continue
		}
		acdOpts.Agents = append(acdOpts.Agents, ivr.Agent{ID: id, Email: a.Email, Name: a.Name, Queues: a.Queues})
	}
	// The database is the source of the queues and agents once seeded (roster): with it up, the
	// ACD starts with the database's roster, never even briefly the file's.
	if err := t.newRoster(ctx, dbUp, &acdOpts); err != nil {
		return err
	}
	if cfg.Database.SharedQueues {
		// The queues and agents of every node on this database, in it (ivr/acdpg).
		if t.acdStore, err = acdpg.New(acdpg.Options{Pool: gw.pool, Logger: gw.log.With("component", "acd")}); err != nil {
			return err
		}
		acdOpts.Shared, acdOpts.Node = t.acdStore, cfg.Node
	}
	if t.acd, err = ivr.NewACD(acdOpts); err != nil {
		return err
	}
	if !cfg.Database.SharedQueues {
		// A node of its own starts every agent offline (the ACD tells no change for that):
		// the history must not carry a state from before the restart on.
		for _, st := range t.acd.Agents() {
			t.states.Record(ticketing.AgentStateChange{AgentID: st.ID, State: string(st.State), Since: st.Since})
		}
	}
	if t.acdStore != nil {
		gw.sharedACD.Store(t.acd)
	}
	t.acd.Register(mux, "/api/v2")
	menus := map[string]ivr.Menu{}
	for name, m := range cfg.IVR {
		if menus[name], err = m.IVR(); err != nil {
			return err
		}
	}
	ivrOpts := ivr.Options{
		Menus: menus, Prompts: prompts, ACD: t.acd,
		DefaultLanguage: cfg.Prompts.DefaultLanguage,
		Voicemail: ivr.VoicemailOptions{Prompt: cfg.Voicemail.Prompt, MaxLength: cfg.Voicemail.MaxLength.D(),
			MinLength: cfg.Voicemail.MinLength.D(), NoBeep: !cfg.Voicemail.Beep},
	}
	if t.recs != nil {
		ivrOpts.Recorder = voicemailRecorder{t.recs}
	}
	if t.ivr, err = ivr.New(ivrOpts); err != nil {
		return err
	}

	// The B2BUA: the configuration's knobs (options.go), then the wiring.
	sopts, err := sipOptions(cfg)
	if err != nil {
		return err
	}
	sopts.Ports, sopts.MediaMetrics = t.ports, mediaMetrics
	sopts.Sink = gw.journal.Sink(gw.events.NodeSink())
	sopts.Registerer, sopts.Logger = gw.security.share(gw.reg), gw.log.With("component", "sip")
	// Agents' SIP phones register with the digest username = their email (or its local
	// part) and their configured password; agents with only a bcrypt hash cannot.
	sopts.Agents = t.sipAgent
	if t.acd != nil {
		sopts.AgentStates = t.acd // feature codes (sip.feature_codes) from the agents' phones
		sopts.OwnCalls = t.acd    // agents' own calls: supervisors and conferences reach them
		sopts.Refer = t.refer     // blind transfers from the agents' phones (REFER)
		// attended transfers from the agents' phones (a consult call, then REFER with Replaces)
		sopts.PhoneConsult, sopts.PhoneComplete = t.phoneConsult, t.phoneComplete
		sopts.PhoneHold = t.acd // the phones' hold button: the ACD's hold (music, call.held, hold time)
		sopts.Pickup = t.acd    // call pickup from the phones (INVITE with Replaces, sip.feature_codes.pickup)
		// the phones' own calls to a number: the page's outbound checks, the agent busy meanwhile
		sopts.PhoneCall, sopts.OwnCallBusy = t.phoneCall, t.acd
	}
	switch {
	case gw.journal != nil && gw.dialogs != nil:
		sopts.Journal = dialogJournals{gw.journal, gw.dialogs} // local disk, and the database for the survivor
	case gw.journal != nil:
		sopts.Journal = gw.journal
	case gw.dialogs != nil:
		sopts.Journal = gw.dialogs
	}
	if t.acdStore != nil {
		// An agent's SIP phone registered here is reachable through this node (Offer.Node).
		acd := t.acd
		sopts.Registrar.OnChange = func(id int64, on bool) {
			if on {
				acd.AgentAttached(id, ivr.ViaPhone)
			} else {
				_, _ = acd.AgentDetached(id, ivr.ViaPhone) // queued: never waits on the database
			}
		}
	}
	if len(sopts.Cluster.Secret) > 0 {
		// Agents attached to other nodes: their nodes' internal addresses are in the database
		// (recorded by each node at its start); softphone buttons they press come back here
		// for this node's ACD.
		sopts.Cluster.Resolve = eventlog.NewNodeAddresses(gw.pool, 0, nil).InternalSIP
		sopts.Cluster.Control = t.acd
	}
	if t.recs != nil && cfg.Recordings.Enabled {
		sopts.Recorder = t.recs
		if cfg.Recordings.Start == "call_start" {
			sopts.RecordStart = sip.RecordAtCallStart
		}
	}
	for _, l := range cfg.Lines {
		sopts.Lines = append(sopts.Lines, sip.Line{Number: l.Number, Target: t.lineTarget(l), Trunk: lineTrunk(cfg, l.Number)})
	}
	if t.sip, err = sip.New(sopts); err != nil {
		return err
	}
	// After sip.New: the roster's first reload swaps in the database's lines (SetLines) before
	// SIP listens; degraded, the configuration's lines stand until the database answers.
	t.startRoster(mux, dbUp)
	// RTP from anyone but a call's peer is a security event like a SIP ACL reject.
	mediaMetrics.OnForeignSource(t.sip.RTPSourceRejected)
	if err := t.startSoftphone(mux); err != nil {
		return err
	}
	if err := t.sip.Start(gw.bgCtx); err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	gw.byeSIP.Store(t.sip)
	gw.log.Info("sip listening", "udp", t.sip.Addr("udp").String(), "tcp", t.sip.Addr("tcp").String())
	return nil
}

// databaseReturned does what start-up skipped while the database was away: the recordings a
// crash left unfinished are repaired and announced. It runs on awaitDatabase's goroutine.
func (t *telephony) databaseReturned(ctx context.Context) {
	if t.recs == nil {
		return
	}
	if err := t.repairRecordings(ctx); err != nil {
		t.gw.log.Error("recordings: repair after the database returned", "err", err)
	}
}

// ready reports whether SIP is listening and taking calls.
func (t *telephony) ready() bool { return t != nil && t.sip != nil && t.sip.Ready() }

// stop stops taking calls, lets live ones finish within ctx, then ends everything.
func (t *telephony) stop(ctx context.Context) {
	if t == nil {
		return
	}
	if t.sip != nil {
		t.sip.StopAccepting()
		if err := t.sip.Drain(ctx); err != nil {
			t.gw.log.Warn("sip: calls still live at the end of the grace period; hanging up", "calls", t.sip.ActiveCalls())
		}
		_ = t.sip.Close()
	}
	if t.roster != nil {
		t.roster.Close()
	}
	if t.acd != nil {
		t.acd.Close()
	}
	if t.states != nil {
		t.states.Close() // after the ACD: its last changes are told before acd.Close returns
	}
	if t.acdStore != nil {
		t.acdStore.Close()
	}
	if t.web != nil {
		_ = t.web.Close()
	}
	if t.rtc != nil {
		_ = t.rtc.Close()
	}
	if t.stopRetention != nil {
		t.stopRetention()
	}
	t.wg.Wait() // retention
	if t.recs != nil {
		// The finished recordings' rows: written now if the database answers, else at the
		// next start from the journal.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := t.recs.Flush(fctx); err != nil {
			t.gw.log.Warn("recordings: metadata rows left in the journal for the next start", "err", err)
		}
		cancel()
		t.recs.Close()
	}
}

// lineTarget is what runs a line's calls: a bridge to a SIP URI, or the IVR (menus, queues,
// voicemail).
func (t *telephony) lineTarget(l config.Line) sip.Target {
	return t.targetOf(l.Number, l.Language, l.Target.Target, l.Hours)
}

func (t *telephony) targetOf(number, language string, target ivr.Target, hours *config.Hours) sip.Target {
	if target.Kind == ivr.TargetSIP {
		return &sip.BridgeTarget{URI: target.URI}
	}
	line := ivr.Line{Number: number, Language: language, Target: target}
	if hours != nil {
		line.Hours = hours.IVR()
	}
	return &sip.IVRTarget{IVR: t.ivr, Line: line}
}

// setLines swaps the SIP server's line table for the database's lines, and the ticketing
// engine's settings per line (roster.Options.Lines, on the roster's loop goroutine, on every
// node). A line's trunk, hours and settings are its own when the database holds them (migration
// 031), else the configuration's line's of the same number, as before 031 (fileLine). A line
// whose target, trunk or hours no longer read (a menu or trunk removed from the file) is left
// out, with a warning: its calls get 404 until it is changed. Settings that no longer read are
// replaced by the file's, with a warning.
func (t *telephony) setLines(ls []roster.Line) error {
	cfg := t.gw.cfg
	parse := rosterTarget(cfg)
	out := make([]sip.Line, 0, len(ls))
	// The queues' default lines stay the file's (queues in the database have none of their own).
	calls := web.OutboundLines{QueueDefaults: outboundLines(cfg).QueueDefaults}
	// The file's lines' settings stand for every number the database does not override: a
	// line of the file used only to call out from (OB-7) keeps its settings as before.
	settings := map[string]ticketing.LineSettings{}
	for _, cl := range cfg.Lines {
		if n, ok := phone.Normalize(cl.Number, ""); ok {
			settings[n] = cl.Settings
		}
	}
	for _, l := range ls {
		target, err := parse(l.Target)
		if err != nil {
			t.gw.log.Warn("roster: a line's target is not valid here; the line is left out", "line", l.Number, "target", l.Target, "err", err)
			continue
		}
		fl := fileLine(cfg, l.Number)
		var hours *config.Hours
		var ls *ticketing.LineSettings
		if fl != nil {
			hours, ls = fl.Hours, &fl.Settings
		}
		trunk := lineTrunk(cfg, l.Number)
		own, ownSettings, ps := cfg.LineParts(l.Trunk, l.Hours, l.Settings)
		if len(ps) > 0 {
			if ps[0].Path == "trunk" || strings.HasPrefix(ps[0].Path, "hours") {
				t.gw.log.Warn("roster: a line's trunk or hours are not valid here; the line is left out", "line", l.Number, "field", ps[0].Path, "err", ps[0].Message)
				continue
			}
			t.gw.log.Warn("roster: a line's settings are not valid here; the file's stand", "line", l.Number, "field", ps[0].Path, "err", ps[0].Message)
			own, ownSettings, ps = cfg.LineParts(l.Trunk, l.Hours, nil)
			if len(ps) > 0 {
				t.gw.log.Warn("roster: a line's trunk or hours are not valid here; the line is left out", "line", l.Number, "field", ps[0].Path, "err", ps[0].Message)
				continue
			}
		}
		if l.Trunk != nil {
			trunk = *l.Trunk
		}
		if own != nil {
			hours = own
		}
		if ownSettings != nil {
			ls = ownSettings
		}
		if ls != nil {
			settings[l.Number] = *ls
		}
		out = append(out, sip.Line{Number: l.Number, Target: t.targetOf(l.Number, l.Language, target, hours), Trunk: trunk})
		if ol, ok := outboundLineOf(cfg, l, trunk); ok {
			calls.Lines = append(calls.Lines, ol)
		}
	}
	if err := t.sip.SetLines(out); err != nil {
		return err
	}
	t.gw.engine.SetLineSettings(settings)
	// The page offers the file's lines in the file's order, then the lines created through the
	// API, by number (the roster's order).
	order := map[string]int{}
	for i, cl := range cfg.Lines {
		if n, ok := phone.Normalize(cl.Number, ""); ok {
			order[n] = i
		}
	}
	rank := func(number string) int {
		if i, ok := order[number]; ok {
			return i
		}
		return len(cfg.Lines)
	}
	sort.SliceStable(calls.Lines, func(i, j int) bool { return rank(calls.Lines[i].Number) < rank(calls.Lines[j].Number) })
	// The lines agents call from (OB-7): the roster's, as its lines reach SIP. Stored first,
	// then handed to the page's Outbound when it exists (softphone.go reads it when it creates
	// one): whichever of the two comes second sees the other's.
	t.outLines.Store(&calls)
	if ob := t.outbound.Load(); ob != nil {
		ob.SetLines(calls)
	}
	return nil
}

// outboundLineOf is a roster line as the page offers it to call from (OB-7), when its trunk —
// the line's own, the file's line's, or the only trunk — takes outbound calls.
func outboundLineOf(cfg *config.Config, l roster.Line, trunk string) (web.OutboundLine, bool) {
	var tr *config.Trunk
	switch {
	case trunk != "":
		tr, _ = cfg.Trunk(trunk)
	case len(cfg.Trunks) == 1:
		tr = &cfg.Trunks[0]
	}
	if tr == nil || tr.Outbound.URI == "" {
		return web.OutboundLine{}, false
	}
	name := l.Name
	if name == "" {
		name = l.Number
	}
	return web.OutboundLine{Number: l.Number, Name: name, Language: l.Language, Trunk: tr.Name}, true
}

// fileLine is the configuration's line numbered number, nil when the file has none.
func fileLine(cfg *config.Config, number string) *config.Line {
	for i := range cfg.Lines {
		if n, ok := phone.Normalize(cfg.Lines[i].Number, ""); ok && n == number {
			return &cfg.Lines[i]
		}
	}
	return nil
}

// checkRosterLine checks a database line's own trunk, hours and settings with the
// configuration's rules (roster.Options.CheckLine) and returns them as they are stored.
func checkRosterLine(cfg *config.Config) func(*string, json.RawMessage, json.RawMessage) (json.RawMessage, json.RawMessage, *roster.LineProblem) {
	return func(trunk *string, hours, settings json.RawMessage) (json.RawMessage, json.RawMessage, *roster.LineProblem) {
		h, s, ps := cfg.LineParts(trunk, hours, settings)
		if len(ps) > 0 {
			return nil, nil, &roster.LineProblem{Field: ps[0].Path, Message: ps[0].Message}
		}
		var hj, sj json.RawMessage
		if h != nil {
			hj = h.HoursJSON()
		}
		if s != nil {
			sj = config.SettingsJSON(*s)
		}
		return hj, sj, nil
	}
}

// repairRecordings fixes the recordings a crash left unfinished and announces them. A call the
// journal knew was closed by closeCrashedCalls: its recording comes after that call.ended. A
// call the journal did not know (a journal lost with its disk) is ended here, at the end of its
// audio, when the database shows it never ended. Event ids are deterministic, so a repeat of
// this after another crash stores nothing twice.
func (t *telephony) repairRecordings(ctx context.Context) error {
	repaired, err := t.recs.Repair(ctx)
	if err != nil {
		return fmt.Errorf("recordings: repair: %w", err)
	}
	for _, r := range repaired {
		if !r.WasRecording || r.State != recordings.StateReady || r.CallID == "" {
			continue
		}
		voicemail := r.Kind == recordings.KindVoicemail
		t.gw.log.Info("recording repaired after a crash", "call_id", r.CallID, "recording_id", r.ID, "voicemail", voicemail)
		last, closed := t.gw.crashClosed[r.CallID]
		if !closed {
			var ended bool
			if last, ended, err = t.gw.events.CallState(ctx, r.CallID); err != nil {
				return fmt.Errorf("recordings: repair: %w", err)
			}
			if !ended && last > 0 {
				last++
				outcome := callevent.OutcomeAnswered
				if voicemail {
					outcome = callevent.OutcomeVoicemail
				}
				e := callevent.Event{ID: calljournal.CrashEndedID(r.CallID), CallID: r.CallID, Seq: last, Type: callevent.EventEnded,
					At: r.StartedAt.Add(r.Duration).UTC(), Outcome: outcome, Cause: calljournal.CauseCrash}
				if err := t.gw.events.Emit(ctx, e); err != nil {
					return fmt.Errorf("recordings: repair: end the call: %w", err)
				}
				t.gw.log.Warn("call ended by a crash of the gateway", "call_id", r.CallID, "outcome", e.Outcome, "ended_at", e.At)
			}
		}
		e := callevent.Event{ID: calljournal.RepairedReadyID(r.CallID, r.ID), CallID: r.CallID, Seq: last + 1, Type: callevent.EventRecordingReady,
			At: time.Now().UTC(), RecordingID: r.ID, Seconds: r.Seconds}
		if voicemail {
			// The message the caller was leaving when the process died (or its node was
			// lost): what reached the disk is delivered as the call's voicemail, after the
			// call's end (the rules engine gives it the voicemail ticket, VM-1).
			e.ID, e.Type = calljournal.RepairedVoicemailID(r.CallID, r.ID), callevent.EventVoicemail
			t.gw.log.Warn("voicemail message cut by a crash or a lost node delivered (the part recorded)", "call_id", r.CallID,
				"recording_id", r.ID, "seconds", r.Seconds)
		}
		if err := t.gw.events.Emit(ctx, e); err != nil {
			t.gw.log.Error("emit "+e.Type, "call_id", r.CallID, "err", err)
		}
	}
	return nil
}

// sipAgent gives the registrar an agent's SIP phone credentials. An agent with its own SIP
// secret (sip_secret, or sip_secret_ha1 stored as HA1s) registers as its sip_username (default
// the email) with that secret only, so the API password and the phone's secret are separate.
// Otherwise (the dev configuration) the username is the email or its local part and the secret
// the plain password; agents with only a password_hash cannot register.
func (t *telephony) sipAgent(username string) (sip.AgentAccount, bool) {
	if t.roster != nil {
		// The database's credentials first (agents made or changed through the admin API).
		if a, ok := t.roster.SIPAccount(username); ok {
			return sip.AgentAccount{ID: a.UserID, Username: a.SIPUsername, HA1MD5: a.HA1MD5, HA1SHA256: a.HA1SHA256}, true
		}
	}
	for _, a := range t.gw.cfg.Agents {
		id := t.agents[a.Email]
		if t.roster != nil {
			if id == 0 {
				// Started without the database and without a cached id (cachedAccountIDs):
				// the roster knows it once the database answered.
				id, _ = t.roster.IDOf(a.Email)
			}
			// The file's agents register with the file's credentials while they are agents of
			// the roster (or while the roster was never read: the database away since start).
			if known, loaded := t.roster.Known(id); loaded && !known {
				continue
			}
		}
		if id == 0 {
			continue // its user id is not known yet: no binding under a wrong id
		}
		switch {
		case a.SIPSecretHA1 != nil:
			if username == a.SIPUser() {
				return sip.AgentAccount{ID: id, Username: a.SIPUser(), HA1MD5: a.SIPSecretHA1.MD5, HA1SHA256: a.SIPSecretHA1.SHA256}, true
			}
		case a.SIPSecret != "":
			if strings.EqualFold(username, a.SIPUser()) {
				return sip.AgentAccount{ID: id, Username: username, Password: a.SIPSecret}, true
			}
		default:
			local, _, _ := strings.Cut(a.Email, "@")
			if (strings.EqualFold(username, a.Email) || strings.EqualFold(username, local)) && a.Password != "" {
				return sip.AgentAccount{ID: id, Username: username, Password: a.Password}, true
			}
		}
	}
	return sip.AgentAccount{}, false
}

// newRoster makes the database the source of the ACD's queues and agents (roster.Manager):
// the configuration seeds them on the first start, and with the database up the ACD is built
// with the database's roster (acdOpts' queues and agents replaced). Degraded, the
// configuration's roster stands until the database answers; the manager applies the
// database's then.
func (t *telephony) newRoster(ctx context.Context, dbUp bool, acdOpts *ivr.ACDOptions) error {
	gw, cfg := t.gw, t.gw.cfg
	seed := rosterSeed(cfg)
	m, err := roster.New(roster.Options{Pool: gw.pool, ParseTarget: rosterTarget(cfg), Seed: &seed,
		Lines: t.setLines, CheckLine: checkRosterLine(cfg), Logger: gw.log.With("component", "roster")})
	if err != nil {
		return err
	}
	t.roster = m
	gw.roster.Store(m)
	if !dbUp {
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	qs, as, err := m.Initial(ictx)
	if err != nil {
		gw.log.Warn("roster: the database's queues and agents could not be read at start; the configuration's stand until they can", "err", err)
		return nil
	}
	acdOpts.Queues, acdOpts.Agents = qs, as
	return nil
}

// startRoster applies every later roster change at once (LISTEN/NOTIFY, and a periodic
// re-read) and mounts the admin API under /api/v2.
func (t *telephony) startRoster(mux *http.ServeMux, dbUp bool) {
	gw, cfg := t.gw, t.gw.cfg
	first := time.Duration(0) // degraded: the loop applies the roster once the database answers
	if dbUp {
		first = 5 * time.Second
	}
	t.roster.Start(t.acd, first)
	refs := map[string]string{} // the configuration's call flow never changes while it runs
	for name := range cfg.Queues {
		if r := cfg.QueueReferences(name); len(r) > 0 {
			refs[name] = r[0]
		}
	}
	t.roster.NewAPI(roster.APIOptions{Auth: gw.api, Users: gw.store, InUse: func(q string) string { return refs[q] }}).
		Register(mux, "/api/v2")
}

// voicemailRecorder records voicemail messages with the recordings package.
type voicemailRecorder struct{ svc *recordings.Service }

func (v voicemailRecorder) StartVoicemail(ctx context.Context, m ivr.VoicemailMeta, ep *media.Endpoint) (ivr.VoicemailRecording, error) {
	w, err := v.svc.StartVoicemail(ctx, m.CallID)
	if err != nil {
		return nil, err
	}
	return &voicemailMessage{w: w, untap: ep.AddTap(w.Tap(recordings.Mono, recordings.None))}, nil
}

// voicemailMessage is a message being recorded. Neither starting nor finishing it waits on
// the database (the IVR goroutine runs both): its row follows in the background.
type voicemailMessage struct {
	w     *recordings.Writer
	untap func()
}

func (m *voicemailMessage) Finish(ctx context.Context, keep bool) (string, error) {
	m.untap()
	if !keep {
		_, err := m.w.Discard() // too short: the file goes, the row says deleted (by the system)
		return "", err
	}
	res, err := m.w.Finish(ctx)
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// ivrAuth authenticates the queue and agent API with the ticketing core's users: supervisors
// and admins may set any agent's state (ivr's "admin" flag), an agent only their own.
type ivrAuth struct{ gw *gateway }

func (a ivrAuth) Authorize(r *http.Request) (int64, bool, error) {
	p, err := a.gw.api.Authenticate(r)
	if err != nil {
		return 0, false, err
	}
	return p.UserID, p.IsSupervisor(), nil
}

// MayManage narrows a supervisor who belongs to groups to the agents of those groups
// (ticketing.Store.SupervisionScope); an admin, or a supervisor in no group, sets anyone's state.
func (a ivrAuth) MayManage(ctx context.Context, userID, agentID int64) (string, error) {
	sc, err := a.gw.store.SupervisionScope(ctx, userID)
	if err != nil {
		return "", err
	}
	if sc.Allows(agentID) {
		return "", nil
	}
	return sc.Refusal(agentID), nil
}

// recordingsAuth authenticates recording downloads and applies recordings.agents_can_access:
// every recording is the admins' only (a supervisor reads recordings as an agent does).
type recordingsAuth struct{ gw *gateway }

func (a recordingsAuth) Authorize(r *http.Request) (int64, bool, error) {
	p, err := a.gw.api.Authenticate(r)
	if err != nil {
		return 0, false, err
	}
	return p.UserID, p.IsAdmin(), nil
}

func (a recordingsAuth) AgentsCanAccess(ctx context.Context) (bool, error) {
	st, err := a.gw.store.Settings(ctx)
	if err != nil {
		return false, err
	}
	return st.Recordings.AgentsCanAccess, nil
}

// ticketRecordings lets the recorder delete a ticket's recordings (CD-6).
type ticketRecordings struct{ store *ticketing.Store }

func (t ticketRecordings) RecordingIDs(ctx context.Context, ticketID int64) ([]string, error) {
	ids, err := t.store.RecordingIDs(ctx, ticketID)
	if errors.Is(err, ticketing.ErrNotFound) {
		return nil, fmt.Errorf("ticket %d: %w", ticketID, recordings.ErrNotFound)
	}
	return ids, err
}

func (t ticketRecordings) MarkDeleted(ctx context.Context, ticketID int64, ids []string, by int64, at time.Time) error {
	return t.store.MarkRecordingsDeleted(ctx, ticketID, ids, by, at)
}

// lineTrunk is the trunk the configuration gives the line numbered number (its own, or the
// only trunk); "" for a line only the database holds (queue callbacks then go through the first
// outbound trunk).
func lineTrunk(cfg *config.Config, number string) string {
	n, ok := phone.Normalize(number, "")
	for i := range cfg.Lines {
		if cn, cok := phone.Normalize(cfg.Lines[i].Number, ""); ok && cok && cn == n {
			if tr, ok := cfg.LineTrunk(&cfg.Lines[i]); ok {
				return tr.Name
			}
		}
	}
	return ""
}

// dialogJournals hands each answered leg's dialog state to every journal in turn (the node's
// call journal on disk, the cluster's DialogStore); neither blocks on the database.
type dialogJournals []sip.DialogJournal

func (js dialogJournals) Leg(callID string, dialog json.RawMessage) error {
	var errs []error
	for _, j := range js {
		errs = append(errs, j.Leg(callID, dialog))
	}
	return errors.Join(errs...)
}
