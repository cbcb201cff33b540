package sip

import (
	"io"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Our To tag on the request sipgo's server transaction holds (RFC 3261 §8.2.6.2).
//
// Every response to an initial INVITE must carry the tag of our dialog, including the 487 that
// sipgo's transaction layer builds from the request itself when a CANCEL arrives (RFC 3261
// §9.2): so the tag has to go onto the request's To header. But sipgo reads that request on its
// own goroutines: the CANCEL is handled on the goroutine that received it, under the server
// transaction's FSM lock, and builds the 487 from the request there. Writing the tag from the
// INVITE handler raced with that read (found by TestInviteFloodWithRetransmitsAndCancelsHasNoDataRace).
//
// sipgo offers no hook to supply the tag, and runs none of our code under that lock but one:
// it serialises a response we pass to Respond while holding it. So the tag is written by a
// header of our first response (the 100 Trying), while that response is serialised: any CANCEL
// handled later takes the same lock after us and sees the tag; a CANCEL handled earlier moved
// the transaction to Completed, where sipgo sends no 1xx, so nothing is written at all (that
// call ends cancelled with sipgo's 487). After the first write the header only reads (sipgo
// serialises the 100 again for each retransmitted INVITE), so the handler's own later reads of
// the request are safe too: they follow the write on the same goroutine.

// sipgo's own 100 Trying: its server transaction starts a timer when the INVITE arrives and,
// if we have not answered within sip.Timer_1xx (200 ms), builds a 100 from the request on the
// timer's goroutine — cloning the request's To header without any lock, while our first
// response may be writing the tag onto it (the race detector found it under load: a CI run at
// load 16, TestInviteFloodWithRetransmitsAndCancelsHasNoDataRace). We always send our own 100
// Trying as the first thing an admitted INVITE gets (respondTrying; refusals answer with a
// final response at once), so the timer adds nothing but that race: it is pushed out of reach.
// Set once, in init, before any transaction exists: sipgo reads it only when a server
// transaction starts (ServerTx.Init), and stops the timer on our first response, on a
// retransmission or CANCEL, and when the transaction ends.
func init() {
	sip.Timer_1xx = 24 * time.Hour
}

// tagOnSend is the Server header of the first response to an initial INVITE; serialising it
// puts tag on to, the request's To header, once. sipgo serialises a header as Name() then its
// value, so Name is where the write happens: nothing else may call Name on this header before
// the response is handed to Respond (respondTrying sends it without looking at its headers).
type tagOnSend struct {
	sip.Header
	to  *sip.ToHeader
	tag string
}

// Name runs inside sipgo's WriteMsg, under the server transaction's FSM lock.
func (h tagOnSend) Name() string {
	if !h.to.Params.Has("tag") {
		h.to.Params.Add("tag", h.tag)
	}
	return h.Header.Name()
}

// StringWrite writes the header as sipgo's own headers do.
func (h tagOnSend) StringWrite(w io.StringWriter) {
	_, _ = w.WriteString(h.Name())
	_, _ = w.WriteString(": ")
	_, _ = w.WriteString(h.Value())
}

// respondTrying sends the 100 Trying to an initial INVITE; sending it puts tag on the request
// (see above). It is the first response of the transaction (else it writes nothing).
func (s *Server) respondTrying(req *sip.Request, tx sip.ServerTransaction, tag string) {
	res := sip.NewResponseFromRequest(req, 100, "Trying", nil)
	res.AppendHeader(tagOnSend{Header: sip.NewHeader("Server", s.opts.UserAgent), to: req.To(), tag: tag})
	if err := tx.Respond(res); err != nil {
		return
	}
	s.m.responses.WithLabelValues(codeLabel(100)).Inc()
}
