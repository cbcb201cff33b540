package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// An agent's SIP phone transfers its call with REFER (RFC 3515): blind, and attended. The
// gateway is the phone's peer in the call's dialog (the leg PhoneDialer placed), so the REFER
// arrives on that leg; the gateway accepts it (202), carries the transfer out through
// Options.Refer — the same rules as the page's and the API's transfers: the call must be the
// agent's, a number must be a destination the trunk allows — and reports the outcome with
// NOTIFYs of the implicit subscription (RFC 3515 §2.4.4: message/sipfrag, 100 Trying then the
// final status, Subscription-State terminated). An attended transfer (Refer-To with Replaces,
// RFC 3891, RFC 5589 §7) completes the consult the phone placed through the gateway
// (phoneconsult.go).

// ReferTarget is where an agent's REFER sends the call: an agent (AgentID) or a number as the
// phone wrote it (Number: "+" and digits, or digits; the receiver of Options.Refer reads it
// as a phone number and checks it against the dial plan).
type ReferTarget struct {
	AgentID int64
	Number  string
}

// referBudget bounds a REFER's transfer: a number rings for at most the ring timeout.
const referBudget = 3 * time.Minute

// handleRefer answers a REFER on a leg (see the file's comment).
func (l *leg) handleRefer(req *sip.Request, tx sip.ServerTransaction) {
	s := l.s
	agent := l.referAgent.Load()
	c := l.call
	if s.opts.Refer == nil {
		// Allow lists REFER (agents' phones transfer with it): without transfers wired it is
		// a policy refusal, not an unknown method.
		s.reply(req, tx, 403, "Forbidden (transfers are off)")
		return
	}
	if c == nil || agent == 0 || !l.phoneSide() || l.internal {
		// Only an agent's phone transfers its call: never the carrier, an outside number or
		// a desk phone (no open relay).
		s.security(secReferRefused, req, "REFER on a leg that is no agent's phone")
		s.reply(req, tx, 403, "Forbidden")
		return
	}
	rts := req.GetHeaders("Refer-To")
	if len(rts) != 1 { // RFC 3515 §2.4.1: exactly one Refer-To
		s.reply(req, tx, 400, "Bad Request (one Refer-To)")
		return
	}
	if r, has, status, reason := referReplaces(rts[0].Value()); has || status != 0 {
		// An attended transfer (phoneconsult.go).
		switch {
		case status != 0:
			s.reply(req, tx, status, reason)
		case s.opts.PhoneComplete == nil:
			s.reply(req, tx, 603, "Declined (attended transfer is off: use a consult transfer)")
		default:
			s.respond(tx, l.response(req, 202, "Accepted", nil))
			go l.referReplace(r, agent)
		}
		return
	}
	to, status, reason := referTarget(rts[0].Value(), s.opts.Agents)
	if status != 0 {
		s.reply(req, tx, status, reason)
		return
	}
	s.respond(tx, l.response(req, 202, "Accepted", nil))
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), referBudget)
		defer cancel()
		l.notifyRefer(ctx, "SIP/2.0 100 Trying", false)
		final := "SIP/2.0 200 OK"
		if err := s.opts.Refer(ctx, c.id, agent, to); err != nil {
			s.log.Info("sip: REFER transfer refused or failed", "call_id", c.id, "agent_id", agent, "error", err)
			final = "SIP/2.0 603 Declined"
		}
		l.notifyRefer(ctx, final, true)
	}()
}

// referTarget reads a Refer-To value: an agent's SIP username (agents) or a number; a status
// and reason when it is refused.
func referTarget(v string, agents func(string) (AgentAccount, bool)) (ReferTarget, int, string) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ReferTarget{}, 400, "Bad Request (Refer-To)"
		}
		v = v[i+1 : i+j]
	}
	v, _, _ = strings.Cut(v, "?") // URI headers: a Replaces is read by referReplaces
	var u sip.Uri
	if err := sip.ParseUri(v, &u); err != nil || u.User == "" || len(u.User) > 64 {
		return ReferTarget{}, 400, "Bad Request (Refer-To)"
	}
	user := u.User
	digits := strings.TrimPrefix(user, "+")
	if digits != "" && strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		return ReferTarget{Number: user}, 0, ""
	}
	if agents != nil {
		if a, ok := agents(user); ok && a.ID > 0 {
			return ReferTarget{AgentID: a.ID}, 0, ""
		}
	}
	return ReferTarget{}, 404, "Not Found"
}

// notifyRefer sends the REFER's implicit subscription a NOTIFY carrying frag (RFC 3515 §2.4.5).
// Errors are logged only: the transfer has happened or not regardless.
func (l *leg) notifyRefer(ctx context.Context, frag string, final bool) {
	if l.isEnded() {
		return
	}
	req := l.newRequest(sip.NOTIFY, 0)
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte(frag + "\r\n"))
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := l.do(nctx, req); err != nil && !errors.Is(err, context.Canceled) {
		l.s.log.Debug("sip: REFER NOTIFY", "call_id", l.callID, "error", fmt.Sprint(err))
	}
}
