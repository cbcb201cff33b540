package sip

import (
	"slices"
	"testing"

	"github.com/switchboard-voice/switchboard/media"
)

// Zero means the same in the options as in the configuration: a limit or timer that can be
// off is off at zero (no default slips in), and DefaultOptions carries every default, which New
// keeps. cmd maps the configuration's 0 straight onto these fields, so a configuration's
// `max_calls: 0` is no limit here too.
func TestOptionsZeroTurnsOffAndDefaultOptionsKeepsTheDefaults(t *testing.T) {
	newServer := func(o Options) *Server {
		t.Helper()
		o.UDPAddr = "127.0.0.1:0"
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	off := newServer(Options{})
	switch {
	case off.opts.MaxCalls != int(^uint(0)>>1):
		t.Errorf("MaxCalls 0: limit %d, want none", off.opts.MaxCalls)
	case off.opts.SessionExpires != 0:
		t.Errorf("SessionExpires 0: %s, want session timers off", off.opts.SessionExpires)
	case off.limiter != nil:
		t.Error("RateLimit.PerSecond 0: a per-source limiter runs")
	case off.opts.Conn != ConnLimits{}:
		t.Errorf("ConnLimits zero: %+v, want every bound off", off.opts.Conn)
	case len(off.scanners) != 0:
		t.Errorf("ScannerUserAgents nil: %v, want none dropped", off.scanners)
	case off.opts.MediaTimeout != 0 || off.opts.HoldTimeout != 0:
		t.Errorf("MediaTimeout/HoldTimeout 0: %s/%s, want off", off.opts.MediaTimeout, off.opts.HoldTimeout)
	case off.reg.opts.MaxBindingsPerAgent != 0 || off.reg.opts.MaxContactsPerRegister != 0:
		t.Errorf("registrar caps 0: %d/%d, want none", off.reg.opts.MaxBindingsPerAgent, off.reg.opts.MaxContactsPerRegister)
	case off.reg.backoff != nil:
		t.Error("AuthBackoffBase 0: REGISTER backoff runs")
	}
	// What cannot be off takes its default at zero.
	if off.opts.T1 != DefaultT1 || off.opts.MinSE != DefaultMinSE || off.opts.RetryAfter != DefaultRetryAfter ||
		off.opts.UserAgent != DefaultUserAgent || off.opts.RateLimit.Burst != DefaultBurst {
		t.Errorf("unset protocol timers: T1 %s MinSE %s RetryAfter %s UA %q Burst %d, want the defaults",
			off.opts.T1, off.opts.MinSE, off.opts.RetryAfter, off.opts.UserAgent, off.opts.RateLimit.Burst)
	}

	def := newServer(DefaultOptions())
	want := DefaultOptions()
	switch {
	case def.opts.MaxCalls != DefaultMaxCalls || def.opts.SessionExpires != DefaultSessionExpires:
		t.Errorf("defaults: MaxCalls %d SessionExpires %s", def.opts.MaxCalls, def.opts.SessionExpires)
	case def.limiter == nil || def.opts.RateLimit.PerSecond != want.RateLimit.PerSecond || def.opts.RateLimit.Burst != want.RateLimit.Burst:
		t.Errorf("defaults: rate limit %+v (limiter %v)", def.opts.RateLimit, def.limiter != nil)
	case def.opts.Conn != DefaultConnLimits():
		t.Errorf("defaults: conn limits %+v", def.opts.Conn)
	case !slices.Equal(def.scanners, DefaultScannerUserAgents()):
		t.Errorf("defaults: scanners %v", def.scanners)
	case def.opts.MediaTimeout != media.DefaultMediaTimeout || def.opts.HoldTimeout != media.DefaultHoldTimeout:
		t.Errorf("defaults: media/hold timeout %s/%s", def.opts.MediaTimeout, def.opts.HoldTimeout)
	case def.reg.backoff == nil || def.reg.opts.MaxBindingsPerAgent != DefaultMaxBindingsPerAgent ||
		def.reg.opts.MaxContactsPerRegister != DefaultMaxContactsPerRegister || def.reg.opts.AuthFailuresFree != DefaultAuthFailuresFree:
		t.Errorf("defaults: registrar %+v (backoff %v)", def.reg.opts, def.reg.backoff != nil)
	case def.opts.AckTimeout != 64*DefaultT1 || def.opts.AnswerAckTimeout != DefaultAnswerAckTimeout:
		t.Errorf("defaults: ack %s answer ack %s", def.opts.AckTimeout, def.opts.AnswerAckTimeout)
	}
}
