// Package recordings writes calls' RTP to WAV files that survive a crash, keeps their metadata
// in PostgreSQL, serves them over HTTP with access per role, deletes them from tickets (CD-6)
// and by retention, and repairs them at start-up.
//
// # Recording a call
//
// One Service per process (New with Options: directory, pgx pool, metrics, and for HTTP the
// Authorizer and TicketRecordings that cmd/switchboard wires to ticketing). At the moment
// Service.StartPoint says (answer by default, or call start to include the IVR and the queue)
// the gateway starts a Writer and taps both legs:
//
//	w, err := rec.Start(ctx, callID)        // file + journaled metadata row (state recording)
//	stopC := carrier.AddTap(w.CallerTap())  // caller → left channel
//	stopA := agent.AddTap(w.AgentTap())     // agent or far end → right channel
//	…
//	w.Pause(ctx, agentID); w.Resume(ctx, agentID)  // e.g. while a card number is read
//	…
//	stopC(); stopA()
//	res, err := w.Finish(ctx)               // emit call.recording_ready {res.ID, res.Seconds}
//
// A voicemail message is StartVoicemail (mono, Tap(Mono, None)). The file is 8 kHz 16-bit PCM
// (G.711 μ-law and A-law decoded by payload type; telephone-event and comfort noise ignored),
// stereo for calls, at Dir/YYYY/MM/DD/<call id>.wav (…-voicemail.wav).
//
// Taps run on the RTP goroutines and never block or wake anyone: they copy the packet into the
// Writer's queue (pooled chunks, bounded by Options.Buffer); beyond the bound the packet is
// dropped and counted. A Writer has no goroutine or timer of its own: the Service's clock
// (clock.go), one timer for all recordings, visits each every 100 ms, takes its queue and
// places audio by RTP timestamp per SSRC, anchored and re-anchored on arrival time
// (timeline.go), so lost packets, holds and silence become silence of the right length, both
// channels stay aligned, and the file lasts the wall time recorded. A recording holds about a
// second of audio in memory (the delay, half a second between writes and 200 ms of slack in
// a ring of G.711 codes: 18 KB; one queue chunk).
//
// # The database is not on the path
//
// Start, Pause, Resume, Finish and Discard never wait on PostgreSQL: the id is a UUID chosen
// here, and each change of the metadata row is made durable in the node's journal on disk — a
// line of this process's log, Dir/.pending/<node>/<time>-<pid>.log (journallog.go), written
// and fsynced once for all the changes of the same moment (group commit: the first caller to
// find no write in progress writes everyone's lines with one write(2) and one fsync) — and
// handed in memory to one background goroutine, which upserts the rows — the rows of
// recordings changing within Options.MetadataWindow together, one statement and one commit
// for up to Options.MetadataBatch of them —, retries with a backoff while the database does
// not answer, and removes the log's file once every row it holds is in the database. Memory
// stays bounded whatever the outage: beyond Options.MetadataQueue queued changes the log is
// rescanned instead (an id per waiting recording is kept, for Pending). Flush waits for the
// rows (tests, a clean shutdown); Close stops the goroutine (the journal keeps the rest for
// the next start). Until session 12 each change was a file of its own, fsynced and renamed,
// read back and removed: about twenty file system calls and two fsyncs a call.
// Only the HTTP side (GET, DELETE), Retention and Repair need the database.
//
// # Crash safety
//
// Every half second a recording appends what is older than Options.Delay, so after SIGKILL
// the file holds the audio up to about a second before (Delay + half a second + a visit of the
// clock); every Options.SyncInterval (5 s) it rewrites the header's sizes and the Service's
// sync worker — goroutines started on demand, off the clock, so a slow disk never stalls the
// writing — fsyncs it, and Finish fsyncs it before its final row is journaled, so after a
// power loss it holds what the last fsync made durable: at most about SyncInterval + a second
// lost. Either way the file is a valid WAV whose header declares what the last fsync covered
// (the audio written since follows it in the file); a live file is never served. A new file is
// not fsynced at its creation (session 12): the start's journal line is written only after its
// directory was fsynced (once for all the files of one group commit), so a row never names a
// file a power loss can take away, and a file that lost its header with the power (created,
// never fsynced since) is given it back by Repair — a recording of what the last fsync kept,
// that is nothing. At start-up, before recording, the gateway calls Repair: recordings this
// node left in state recording — in the journal (the logs of dead processes) or in the
// database — get their header made exact and their row completed, once (returned, for
// call.recording_ready), the journal's finished rows are written, stray files with stale
// headers are fixed. A torn last line of a log (a power loss during an append that never
// returned) is skipped. A write error or a full disk fails the recording, never the call: the
// taps stop, switchboard_recording_errors_total counts it, the row says failed, and Finish
// returns an error wrapping ErrWrite and the cause for the gateway to note on the ticket.
//
// # HTTP
//
// Register mounts GET {prefix}/recordings/{id} (audio/wav, Range) and DELETE
// {prefix}/tickets/{id}/recordings. Admins always; agents only while
// recordings.agents_can_access is on (403); anonymous 401; unknown or deleted 404.
//
// # Not built here yet
//
// The end-to-end tone test through SIP (SIPp rtp_stream as carrier and far end, a 5 s hold by
// re-INVITE, SIGKILL of the gateway binary) comes when the B2BUA wires the Writer to its legs;
// the tests here drive two bridged media.Endpoints from raw UDP peers instead. The recording
// benchmark (CPU and bytes per call-second, BENCHMARKS.md) is not written. Clock drift between a
// sender and this host is corrected by re-anchoring (a jump of Options.Delay/2 when it
// accumulates), not by resampling.
package recordings
