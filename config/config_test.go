package config

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
	"golang.org/x/crypto/bcrypt"
)

// noEnv is a getenv without DATABASE_URL, so that tests do not depend on the caller's
// environment.
func noEnv(string) string { return "" }

// base makes a document valid on its own: only database.url is required.
const base = "database: {url: postgres://u@127.0.0.1/db}\n"

// bcryptOfSecret is bcrypt("secret") at the minimum cost.
const bcryptOfSecret = "$2a$04$yeC.ZdXLyLUpYQNIfBk38eOm3p3zhcfPvnR7mSXZ7vl.oKqh5M8bG"

// wholeDocument starts a case that is the whole document, without base.
const wholeDocument = "# the whole document\n"

// problemCase is one configuration and every problem it must give. Line 1 is base's, so a
// case's own first line is line 2.
type problemCase struct {
	name string
	yaml string
	want []Problem
}

var problemCases = []problemCase{
	// Decoding: unknown keys, types, syntax.
	{"unknown top-level key is an error with the allowed keys", "sipp: {}\n", []Problem{
		{"sipp", `unknown key "sipp"; allowed here: node, shutdown_grace, log, database, http, admin, sip, rtp, webrtc, trunks, lines, prompts, ivr, queues, agents, users, teams, recordings, voicemail, ticketing, cluster`, 2}}},
	{"unknown key inside a list element has its path", "sip:\n  listen: [{transport: udp, adress: 127.0.0.1:5060}]\n", []Problem{
		{"sip.listen[0].adress", `unknown key "adress"; allowed here: transport, address`, 3},
		{"sip.listen[0].address", "is required: write IP:port, e.g. 127.0.0.1:5060", 3}}},
	{"unknown weekday lists the days in week order", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: hangup, hours: {weekly: {mo: [\"09:00-17:00\"], tue: [\"09:00-17:00\"]}, closed_target: hangup}}]\n", []Problem{
		{"lines[0].hours.weekly.mo", `unknown key "mo"; allowed here: mon, tue, wed, thu, fri, sat, sun`, 3}}},
	{"unknown key in ticketing settings", "ticketing:\n  settings:\n    outbound: {allow_new: true}\n", []Problem{
		{"ticketing.settings.outbound.allow_new", `unknown key "allow_new"; allowed here: prompt_ticket_choice, allow_new_ticket, allow_no_ticket, allow_entered_number`, 4}}},
	{"wrong type names what is wanted", "rtp: {port_min: abc}\n", []Problem{
		{"rtp.port_min", `want a whole number, got "abc"`, 2}}},
	{"a list where a value is wanted", "http:\n  listen:\n    - 127.0.0.1:8080\n", []Problem{
		{"http.listen", "want a string, got a list", 4}}},
	{"bad bool in ticketing settings", "ticketing: {settings: {phone_validation: maybe}}\n", []Problem{
		{"ticketing.settings.phone_validation", `want true or false, got "maybe"`, 2}}},
	{"bad duration", "shutdown_grace: 5 minutes\n", []Problem{
		{"shutdown_grace", `want a duration such as "30s" or "2m", got "5 minutes"`, 2}}},
	{"audit retention 0 or at least a day", "ticketing:\n  audit_retention: 12h\n", []Problem{
		{"ticketing.audit_retention", "must be 0s (keep the audit trail forever) or at least 24h0m0s, got 12h0m0s", 3}}},
	{"audit retention not negative", "ticketing: {audit_retention: -8760h}\n", []Problem{
		{"ticketing.audit_retention", "must be 0s (keep the audit trail forever) or at least 24h0m0s, got -8760h0m0s", 2}}},
	{"bad duration in ticketing settings", "ticketing: {settings: {callback_append_window: forever}}\n", []Problem{
		{"ticketing.settings.callback_append_window", `want a duration such as "10s", got "forever"`, 2}}},
	{"repeated key", "log: {level: info}\nlog: {level: debug}\n", []Problem{
		{"log", `key "log" appears twice (first at line 2)`, 3}}},
	{"YAML syntax error has its line", "x: [1\n", []Problem{
		{"", "did not find expected ',' or ']' (YAML syntax)", 1}}},
	{"a document that is not a mapping", wholeDocument + "- a\n", []Problem{
		{"", "want a mapping, got a list", 2}}},
	{"two documents", "log: {level: info}\n---\nlog: {level: debug}\n", []Problem{
		{"", "the file holds more than one YAML document; keep the configuration in one", 3}}},

	// Basics.
	{"log level", "log: {level: loud}\n", []Problem{
		{"log.level", `"loud" is not allowed; use one of debug, info, warn, error`, 2}}},
	{"negative shutdown grace", "shutdown_grace: -1s\n", []Problem{
		{"shutdown_grace", "must not be negative, got -1s", 2}}},
	{"database url is required", "database: {url: \"\"}\n", []Problem{
		{"database.url", "is required (or set DATABASE_URL)", 1}}},
	{"database url must be PostgreSQL", "database: {url: \"mysql://x\"}\n", []Problem{
		{"database.url", `is not a PostgreSQL URL; write postgres://USER@HOST:PORT/DBNAME or key=value pairs such as "host=/run/postgresql dbname=switchboard"`, 1}}},
	{"listen address without port", "http: {listen: localhost}\n", []Problem{
		{"http.listen", `"localhost" is not host:port, e.g. 127.0.0.1:8080 or [::1]:8080`, 2}}},
	{"listen port out of range", "admin: {listen: \"127.0.0.1:70000\"}\n", []Problem{
		{"admin.listen", `"127.0.0.1:70000" has port "70000"; a port is a number from 1 to 65535 (0 picks a free one)`, 2}}},

	// SIP.
	{"SIP listen needs an IP", "sip: {listen: [{transport: udp, address: \"example.com:5060\"}]}\n", []Problem{
		{"sip.listen[0].address", `"example.com:5060" must have an IP address, not a host name (or no host for every interface)`, 2}}},
	{"SIP transport", "sip: {listen: [{transport: ws, address: \"127.0.0.1:5060\"}]}\n", []Problem{
		{"sip.listen[0].transport", `"ws" is not allowed; use one of udp, tcp, tls`, 2}}},
	{"one SIP listener per transport", "sip:\n  listen:\n    - {transport: udp, address: \"127.0.0.1:5060\"}\n    - {transport: udp, address: \"127.0.0.2:5060\"}\n", []Problem{
		{"sip.listen[1]", "is a second udp listener (sip.listen[0] is the first); give one address per transport", 5}}},
	{"SIP external address must be an IP", "sip: {external_address: gw.example.com}\n", []Problem{
		{"sip.external_address", `"gw.example.com" is not an IP address peers can reach (write it without a port, e.g. 203.0.113.7)`, 2}}},
	{"tls listener needs a certificate", "sip: {listen: [{transport: tls, address: \"127.0.0.1:5061\"}]}\n", []Problem{
		{"sip.tls.cert_file", "is required when a listener uses tls", 2},
		{"sip.tls.key_file", "is required when a listener uses tls", 2}}},
	{"every interface needs an external address", "sip: {listen: [{transport: udp, address: \"0.0.0.0:5060\"}]}\n", []Problem{
		{"sip.external_address", "is required when sip.listen[0].address listens on every interface: it is the address peers are told to send to", 2}}},
	{"session timer below RFC 4028 minimum", "sip: {session_expires: 30s}\n", []Problem{
		{"sip.session_expires", "must be 0 (off) or at least 90s, the minimum of RFC 4028 §5, got 30s", 2}}},
	{"rate limit burst", "sip: {rate_limit: {requests_per_second: 10, burst: 0}}\n", []Problem{
		{"sip.rate_limit.burst", "must be at least 1 when requests_per_second is set, got 0", 2}}},
	{"registrar caps", "sip: {registrar: {max_bindings_per_agent: -1, max_contacts_per_register: -2, phone_networks: [10.0.0.1/8]}}\n", []Problem{
		{"sip.registrar.phone_networks[0]", `"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`, 2},
		{"sip.registrar.max_bindings_per_agent", "must not be negative (0 means no limit), got -1", 2},
		{"sip.registrar.max_contacts_per_register", "must not be negative (0 means no limit), got -2", 2}}},
	{"registrar digest algorithms", "sip: {registrar: {digest_algorithms: [md5, SHA-1, MD5]}}\n", []Problem{
		{"sip.registrar.digest_algorithms[1]", `"SHA-1" is not a digest algorithm: want SHA-256 or MD5`, 2},
		{"sip.registrar.digest_algorithms[2]", "MD5 is listed twice", 2}}},
	{"agent sip secrets", "agents:\n  - {email: a@x.org, password: p, sip_secret: s, sip_secret_ha1: {md5: 00}}\n  - {email: b@x.org, password: p, sip_username: \"b c\"}\n  - {email: c@x.org, password: p, sip_username: a@x.org, sip_secret_ha1: {sha256: abc}}\n  - {email: d@x.org, password: p, sip_secret_ha1: {}}\n", []Problem{
		{"agents[0].sip_secret", "give sip_secret or sip_secret_ha1, not both", 3},
		{"agents[0].sip_secret_ha1.md5", "must be 32 hex digits (H(sip_username:switchboard:secret))", 3},
		{"agents[1].sip_username", "needs sip_secret or sip_secret_ha1 (without them the phone registers as the email)", 4},
		{"agents[1].sip_username", "must be at most 128 bytes without spaces, quotes, backslashes or ':'", 4},
		{"agents[2].sip_secret_ha1.sha256", "must be 64 hex digits (H(sip_username:switchboard:secret))", 5},
		{"agents[2].sip_username", `"a@x.org" is already the SIP username of agents[0]`, 5},
		{"agents[3].sip_secret_ha1", "give md5, sha256 or both", 6}}},
	{"registrar backoff", "sip: {registrar: {auth_failures_free: -1, auth_backoff: 10s, auth_backoff_max: 5s}}\n", []Problem{
		{"sip.registrar.auth_failures_free", "must not be negative, got -1", 2},
		{"sip.registrar.auth_backoff_max", "must be at least auth_backoff (10s), got 5s", 2}}},
	{"rate limit exempt CIDR", "sip: {rate_limit: {exempt: [10.0.0.0/8, banana]}}\n", []Problem{
		{"sip.rate_limit.exempt[1]", `"banana" is not a CIDR network; write one such as 192.0.2.0/24, or 192.0.2.7/32 for one address`, 2}}},
	{"trusted fronts are CIDR networks, never every address", "sip: {trusted_fronts: [10.0.0.5/32, front.example.com]}\n", []Problem{
		{"sip.trusted_fronts[1]", `"front.example.com" is not a CIDR network; write one such as 192.0.2.0/24, or 192.0.2.7/32 for one address`, 2}}},
	{"trusted fronts never every address", "sip: {trusted_fronts: [10.0.0.5/32, 127.0.0.0/8, 0.0.0.0/0, \"::/0\"]}\n", []Problem{
		{"sip.trusted_fronts[2]", "0.0.0.0/0 trusts every address, so anyone could forge the source the gateway believes; list the fronts' own addresses (e.g. 10.0.0.5/32)", 2},
		{"sip.trusted_fronts[3]", "::/0 trusts every address, so anyone could forge the source the gateway believes; list the fronts' own addresses (e.g. 10.0.0.5/32)", 2}}},
	{"empty scanner user agent", "sip: {scanner_user_agents: [sipvicious, \"\"]}\n", []Problem{
		{"sip.scanner_user_agents[1]", "must not be empty: it would match every request", 2}}},

	{"feature codes are 2 to 8 keypad keys, one per state", "sip: {feature_codes: {available: \"*6a\", away: \"*\", offline: \"*60*60*60\"}}\n", []Problem{
		{"sip.feature_codes.available", `"*6a" is not a feature code: write 2 to 8 of the keypad's keys 0-9, * and #, e.g. *60`, 2},
		{"sip.feature_codes.away", `"*" is not a feature code: write 2 to 8 of the keypad's keys 0-9, * and #, e.g. *60`, 2},
		{"sip.feature_codes.offline", `"*60*60*60" is not a feature code: write 2 to 8 of the keypad's keys 0-9, * and #, e.g. *60`, 2}}},
	{"feature codes distinct and no line's number", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: hangup}]\nsip:\n  feature_codes:\n    available: \"#71\"\n    away: \"#71\"\n    offline: \"15550100\"\n", []Problem{
		{"sip.feature_codes.away", `"#71" is already sip.feature_codes.available; give each its own code`, 7},
		{"sip.feature_codes.offline", `"15550100" is the number of lines[0]: agents' phones dialling it would use the feature instead of calling the line`, 8}}},

	// RTP port range.
	{"RTP port range inverted", "rtp: {port_min: 20000, port_max: 19000}\n", []Problem{
		{"rtp.port_max", "must be above rtp.port_min (20000) so that the range holds at least one RTP/RTCP port pair, got 19000", 2}}},
	{"RTP port_min odd", "rtp: {port_min: 20001, port_max: 20999}\n", []Problem{
		{"rtp.port_min", "must be even: RTP takes even ports and RTCP the odd one above (RFC 3550 §11), got 20001", 2}}},
	{"RTP ports out of range", "rtp: {port_min: 80, port_max: 70000}\n", []Problem{
		{"rtp.port_min", "must be from 1024 to 65535, got 80", 2},
		{"rtp.port_max", "must be from 1024 to 65535, got 70000", 2}}},
	{"RTP address must be an IP", "rtp: {address: media.example.com}\n", []Problem{
		{"rtp.address", `"media.example.com" is not an IP address; RTP binds to one, e.g. 127.0.0.1`, 2}}},

	// Trunks.
	{"negative trunk limits", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8], calls_per_second: -1, max_calls: -2}}]\n", []Problem{
		{"trunks[0].inbound.calls_per_second", "must not be negative (0 means no limit), got -1", 2},
		{"trunks[0].inbound.max_calls", "must not be negative (0 means only sip.max_calls), got -2", 2}}},
	{"SIP connection limits", "sip: {answer_ack_timeout: 0s, connections: {max: -1, per_source: -1, handshake_timeout: -1s, idle_timeout: -1s}}\n", []Problem{
		{"sip.answer_ack_timeout", "must be positive, got 0s", 2},
		{"sip.connections.max", "must not be negative (0 means no limit), got -1", 2},
		{"sip.connections.per_source", "must not be negative (0 means no limit), got -1", 2},
		{"sip.connections.handshake_timeout", "must not be negative (0 means none), got -1s", 2},
		{"sip.connections.idle_timeout", "must not be negative (0 means none), got -1s", 2}}},
	{"bad CIDR in trunk allow", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8, 10.0.0.0/33]}}]\n", []Problem{
		{"trunks[0].inbound.allow[1]", `"10.0.0.0/33" is not a CIDR network; write one such as 192.0.2.0/24, or 192.0.2.7/32 for one address`, 2}}},
	{"CIDR with host bits", "trunks: [{name: c, inbound: {allow: [10.1.2.3/8]}}]\n", []Problem{
		{"trunks[0].inbound.allow[0]", `"10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?`, 2}}},
	{"bad SIP URI", "trunks: [{name: c, outbound: {uri: \"http://x\"}}]\n", []Problem{
		{"trunks[0].outbound.uri", `"http://x" is not a SIP URI: it must start with sip: or sips:, e.g. sip:192.0.2.10:5060`, 2}}},
	{"SIP URI without host", "trunks: [{name: c, outbound: {uri: \"sip:alice@\"}}]\n", []Problem{
		{"trunks[0].outbound.uri", `"sip:alice@" is not a SIP URI: it has no host`, 2}}},
	{"bad caller ID", "trunks: [{name: c, outbound: {uri: \"sip:127.0.0.1\", caller_id: \"5550100\"}}]\n", []Problem{
		{"trunks[0].outbound.caller_id", `"5550100" is not an E.164 number; write + then the country code and number, digits only, e.g. +15550100`, 2}}},
	{"duplicate trunk names", "trunks:\n  - {name: c, inbound: {allow: [127.0.0.0/8]}}\n  - {name: c, inbound: {allow: [127.0.0.0/8]}}\n", []Problem{
		{"trunks[1].name", `"c" is already the name of trunks[0]`, 4}}},
	{"trunk doing nothing", "trunks: [{name: c}]\n", []Problem{
		{"trunks[0]", "takes no calls and places none: set inbound.allow, inbound.auth or outbound.uri", 2}}},
	{"bad destination prefix", "trunks: [{name: c, outbound: {uri: \"sip:127.0.0.1\", destinations: {allow: [\"+1\"], deny: [\"1900\", \"+44x\"]}}}]\n", []Problem{
		{"trunks[0].outbound.destinations.deny[0]", `"1900" is not an E.164 prefix; write + then digits, e.g. +1900 or +44`, 2},
		{"trunks[0].outbound.destinations.deny[1]", `"+44x" is not an E.164 prefix; write + then digits, e.g. +1900 or +44`, 2}}},
	{"negative agent limit", "trunks: [{name: c, outbound: {uri: \"sip:127.0.0.1\", agent_limits: {calls_per_minute: -1}}}]\n", []Problem{
		{"trunks[0].outbound.agent_limits.calls_per_minute", "must be 0 (no limit) or more", 2}}},
	{"trunk auth incomplete", "trunks: [{name: c, inbound: {auth: {username: u}}}]\n", []Problem{
		{"trunks[0].inbound.auth.password", "is required when auth is set", 2}}},
	{"upload limit too small", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nhttp: {max_upload_bytes: 10}\n", []Problem{
		{"http.max_upload_bytes", "must be from 1024 (1 KiB) to 1073741824 (1 GiB; a file is held in memory while stored), got 10", 3}}},
	{"trunk digest algorithm unknown", "trunks: [{name: c, inbound: {auth: {username: u, password: p, digest_algorithms: [MD5, SHA-512]}}}]\n", []Problem{
		{"trunks[0].inbound.auth.digest_algorithms[1]", `"SHA-512" is not a digest algorithm: want SHA-256 or MD5`, 2}}},
	{"trunk digest algorithms on outbound auth", "trunks: [{name: c, outbound: {uri: \"sip:127.0.0.1\", auth: {username: u, password: p, digest_algorithms: [MD5]}}}]\n", []Problem{
		{"trunks[0].outbound.auth.digest_algorithms", "applies to inbound.auth only (outbound calls answer the algorithm the carrier challenges with)", 2}}},
	{"trunk region not a region code", "trunks: [{name: c, region: France, inbound: {allow: [127.0.0.0/8]}}]\n", []Problem{
		{"trunks[0].region", `"France" is not a region code; use an ISO 3166 code such as US, GB or FR (default ticketing.default_region)`, 2}}},
	{"trunk region in lower case", "trunks: [{name: c, region: fr, inbound: {allow: [127.0.0.0/8]}}]\n", []Problem{
		{"trunks[0].region", `"fr" is not a region code; use an ISO 3166 code such as US, GB or FR (default ticketing.default_region)`, 2}}},

	// Lines and targets.
	{"bad E.164 line number", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: 15550100, target: hangup}]\n", []Problem{
		{"lines[0].number", `"15550100" is not an E.164 number; write + then the country code and number, digits only, e.g. +15550100`, 3}}},
	{"E.164 has at most 15 digits", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+1234567890123456\", target: hangup}]\n", []Problem{
		{"lines[0].number", `"+1234567890123456" is not an E.164 number; write + then the country code and number, digits only, e.g. +15550100`, 3}}},
	{"line number of no country", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+1555\", target: hangup}]\n", []Problem{
		{"lines[0].number", "+1555 is not a number of any country: no such country code, or the wrong length for it", 3}}},
	{"duplicate line numbers", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines:\n  - {number: \"+15550100\", target: hangup}\n  - {number: \"+15550100\", target: voicemail}\nrecordings: {dir: /tmp/r}\n", []Problem{
		{"lines[1].number", "+15550100 is already the number of lines[0]", 5}}},
	{"line to a missing IVR menu", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: ivr:main}]\n", []Problem{
		{"lines[0].target", `"ivr:main" names no IVR menu; no menus under ivr are configured`, 3}}},
	{"line to a missing queue lists the queues", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: queue:suport}]\nqueues: {support: {overflow: hangup}, sales: {overflow: hangup}}\n", []Problem{
		{"lines[0].target", `"queue:suport" names no queue; queues: sales, support`, 3}}},
	{"line to a missing trunk", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", trunk: carier, target: hangup}]\n", []Problem{
		{"lines[0].trunk", `"carier" names no trunk; trunks: c`, 3}}},
	{"line without any trunk", "lines: [{number: \"+15550100\", target: hangup}]\n", []Problem{
		{"lines[0].trunk", "no trunk is configured: add one under trunks so that calls can reach this line", 2}}},
	{"line must name its trunk among several", "trunks:\n  - {name: a, inbound: {allow: [127.0.0.0/8]}}\n  - {name: b, inbound: {allow: [127.0.0.0/8]}}\nlines: [{number: \"+15550100\", target: hangup}]\n", []Problem{
		{"lines[0].trunk", "is required when there are several trunks; use one of a, b", 5}}},
	{"line target is required", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\"}]\n", []Problem{
		{"lines[0].target", "is required; use " + targetForms, 3}}},
	{"unknown target form", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: operator}]\n", []Problem{
		{"lines[0].target", `"operator" is not a target; use ` + targetForms, 3}}},
	{"SIP target without host", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: \"sip:\"}]\n", []Problem{
		{"lines[0].target", `"sip:" is not a SIP URI: it has no host`, 3}}},
	{"line language", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: hangup, language: English}]\n", []Problem{
		{"lines[0].language", `"English" is not a language tag; write one such as en, fr or pt-BR`, 3}}},
	{"opening hours", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines:\n  - number: \"+15550100\"\n    target: hangup\n    hours:\n      time_zone: Mars/Olympus\n      weekly: {mon: [\"17:00-09:00\"]}\n      holidays: [2026-02-30]\n      closed_target: queue:none\n", []Problem{
		{"lines[0].hours.time_zone", `"Mars/Olympus" is not an IANA time zone; write one such as Europe/Paris or America/New_York`, 7},
		{"lines[0].hours.weekly.mon[0]", `"17:00-09:00" ends before it starts; a range cannot cross midnight, split it into two days`, 8},
		{"lines[0].hours.holidays[0]", `"2026-02-30" is not a date; write YYYY-MM-DD, e.g. 2026-12-25`, 9},
		{"lines[0].hours.closed_target", `"queue:none" names no queue; no queues are configured`, 10}}},
	{"opening hours with no open day", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: hangup, hours: {closed_target: hangup}}]\n", []Problem{
		{"lines[0].hours.weekly", `has no opening hours on any day, so the line would always be closed; add ranges such as mon: ["09:00-17:00"] or remove hours`, 3}}},
	{"line settings from ticketing validation", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines:\n  - number: \"+15550100\"\n    target: hangup\n    settings: {ticket_creation_point: on_ring, default_assignee: nobody@example.com}\n", []Problem{
		{"lines[0].settings.ticket_creation_point", `"on_ring" is not allowed; use one of on_accept, on_queue_entry`, 6},
		{"lines[0].settings.default_assignee", `"nobody@example.com" is not an agent or user of this configuration; add it under agents or users, or leave default_assignee empty`, 6}}},

	// IVR and queues.
	{"menu option to a missing queue", "ivr: {main: {options: {\"1\": queue:support}, no_input: hangup}}\n", []Problem{
		{"ivr.main.options.1", `"queue:support" names no queue; no queues are configured`, 2}}},
	{"menu option to a missing menu", "ivr: {main: {options: {\"1\": menu:billing}, no_input: hangup}}\n", []Problem{
		{"ivr.main.options.1", `"menu:billing" names no IVR menu; menus under ivr: main`, 2}}},
	{"menu option key is one DTMF key", "ivr: {main: {options: {\"12\": hangup}, no_input: hangup}}\n", []Problem{
		{"ivr.main.options.12", `"12" is not one DTMF key; use 0-9, "*" or "#" (quote * and #)`, 2}}},
	{"menu option target must be a string", "ivr: {main: {options: {1: [hangup]}, no_input: hangup}}\n", []Problem{
		{"ivr.main.options.1", "want a target (" + targetForms + "), got a list", 2}}},
	{"menu needs no_input", "ivr: {main: {options: {\"1\": hangup}}}\n", []Problem{
		{"ivr.main.no_input", "is required; use " + targetForms, 2}}},
	{"menu timeout and retries bounds", "ivr: {main: {timeout: 0s, retries: 11, no_input: hangup}}\n", []Problem{
		{"ivr.main.timeout", "must be from 1s to 60s, got 0s", 2},
		{"ivr.main.retries", "must be from 0 to 10, got 11", 2}}},
	{"menu name", "ivr: {\"main menu\": {no_input: hangup}}\n", []Problem{
		{"ivr.main menu", `"main menu" is not a menu name: use letters, digits, '_' and '-'`, 2},
		{"ivr.main menu.prompt", `"main menu" is not a prompt name: use letters, digits, '_' and '-' (the file is PROMPTS_DIR/LANGUAGE/NAME.wav)`, 2}}},
	{"empty menu", "ivr: {main: }\n", []Problem{
		{"ivr.main", "is empty: a menu needs at least a no_input target", 2}}},
	{"queue overflow to itself", "queues: {support: {overflow: queue:support}}\n", []Problem{
		{"queues.support.overflow", "cannot be the queue itself", 2}}},
	{"queue timings", "queues: {support: {ring_timeout: 0s, max_wait: -1s, wrap_up: -1s, max_missed_offers: -1, overflow: hangup}}\n", []Problem{
		{"queues.support.ring_timeout", "must be positive, got 0s", 2},
		{"queues.support.max_wait", "must be positive, got -1s", 2},
		{"queues.support.wrap_up", "must not be negative, got -1s", 2},
		{"queues.support.max_missed_offers", "must not be negative (0 means never), got -1", 2}}},
	{"queue outbound line must be a line that calls out (OB-7)", "trunks:\n  - {name: c, inbound: {allow: [127.0.0.0/8]}}\n  - {name: o, outbound: {uri: \"sip:127.0.0.1:5080\"}}\nlines:\n  - {number: \"+15550100\", trunk: c, target: hangup}\n  - {number: \"+15550199\", trunk: o, target: hangup}\nqueues:\n  sales: {overflow: hangup, outbound_line: \"+15550111\"}\n  support: {overflow: hangup, outbound_line: \"+15550100\"}\n  desk: {overflow: hangup, outbound_line: \"+15550199\"}\n", []Problem{
		{"queues.sales.outbound_line", `"+15550111" is not the number of a configured line; lines that can call out: +15550199`, 9},
		{"queues.support.outbound_line", `+15550100 is a line whose trunk "c" takes no outbound calls (no outbound.uri); lines that can call out: +15550199`, 10}}},

	// Accounts.
	{"agent in a missing queue", "queues: {support: {overflow: hangup}}\nagents: [{email: a@example.com, password: x, queues: [support, sales]}]\n", []Problem{
		{"agents[0].queues[1]", `"sales" names no queue; queues: support`, 3}}},
	{"duplicate agent emails, without regard to case", "agents:\n  - {email: a@example.com, password: x}\n  - {email: A@example.com, password: x}\nusers: [{email: a@example.com, password: x, role: admin}]\n", []Problem{
		{"agents[1].email", `"A@example.com" is already the email of agents[0]`, 4},
		{"users[0].email", `"a@example.com" is already the email of agents[0]`, 5}}},
	{"bad email", "agents: [{email: \"Agent <a@example.com>\", password: x}]\n", []Problem{
		{"agents[0].email", `"Agent <a@example.com>" is not an email address`, 2}}},
	{"password and hash both", "agents: [{email: a@example.com, password: x, password_hash: \"" + bcryptOfSecret + "\"}]\n", []Problem{
		{"agents[0].password", "give password or password_hash, not both", 2}}},
	{"password missing", "users: [{email: a@example.com, role: admin}]\n", []Problem{
		{"users[0].password", "password or password_hash is required", 2}}},
	{"password hash not bcrypt", "users: [{email: a@example.com, password_hash: md5stuff, role: admin}]\n", []Problem{
		{"users[0].password_hash", "is not a bcrypt hash (one starts $2a$, $2b$ or $2y$)", 2}}},
	{"user role", "users: [{email: a@example.com, password: x, role: root}]\n", []Problem{
		{"users[0].role", `"root" is not allowed; use one of admin, supervisor, agent`, 2}}},

	// Teams (docs/rules.md, TB): team ticket entry for outbound calls.
	{"team agent must be an account", "agents: [{email: a@example.com, password: x}]\nteams: [{name: t, agents: [a@example.com, ghost@example.com]}]\n", []Problem{
		{"teams[0].agents[1]", `"ghost@example.com" is not an agent or user of this configuration; add it under agents or users`, 3}}},
	{"an agent in two teams, without regard to case", "agents: [{email: a@example.com, password: x}]\nteams:\n  - {name: t1, agents: [a@example.com]}\n  - {name: t2, agents: [A@example.com]}\n", []Problem{
		{"teams[1].agents[0]", `"A@example.com" is already in teams[0]; an agent belongs to one team`, 5}}},
	{"team ticket entry mode", "teams: [{name: t, ticket_entry: {mode: always}}]\n", []Problem{
		{"teams[0].ticket_entry.mode", `"always" is not allowed; use one of off, optional, required`, 2}}},
	{"team number field names a ticket text field", "teams: [{name: t, ticket_entry: {mode: required, number_field: mobile}}]\n", []Problem{
		{"teams[0].ticket_entry.number_field", `"mobile" is not a ticket text field; use one of session_type, caller_number, queue_name, call_id, or leave it empty for the requester's primary number`, 2}}},
	{"team number field cannot be a duration", "teams: [{name: t, ticket_entry: {mode: optional, number_field: call_duration}}]\n", []Problem{
		{"teams[0].ticket_entry.number_field", `"call_duration" is not a ticket text field; use one of session_type, caller_number, queue_name, call_id, or leave it empty for the requester's primary number`, 2}}},
	{"team names are required and unique", "teams:\n  - {name: t}\n  - {name: t}\n  - {agents: []}\n  - {name: \"a b\"}\n", []Problem{
		{"teams[1].name", `"t" is already the name of teams[0]`, 4},
		{"teams[2].name", "is required", 5},
		{"teams[3].name", `"a b" is not a name: use letters, digits, '_' and '-'`, 6}}},
	{"unknown key in ticket_entry", "teams: [{name: t, ticket_entry: {mode: optional, required: true}}]\n", []Problem{
		{"teams[0].ticket_entry.required", `unknown key "required"; allowed here: mode, number_field`, 2}}},

	// Recordings and voicemail.
	{"recordings dir empty while enabled", "recordings: {enabled: true}\n", []Problem{
		{"recordings.dir", "is required when recordings.enabled is true", 2}}},
	{"voicemail needs a directory", "queues: {support: {}}\n", []Problem{
		{"recordings.dir", "is required: voicemail messages are stored there, and queues.support.overflow is voicemail", 0}}},
	{"recording start", "recordings: {start: ring}\n", []Problem{
		{"recordings.start", `"ring" is not allowed; use one of answer, call_start`, 2}}},
	{"voicemail lengths", "voicemail: {max_length: 10s, min_length: 10s}\n", []Problem{
		{"voicemail.min_length", "must be from 0s to below voicemail.max_length (10s), got 10s", 2}}},

	// Ticketing settings (docs/rules.md, "Settings"), checked by the ticketing package and placed at their path.
	{"batch window outside 1-60 s", "ticketing:\n  settings:\n    write_batching: {enabled: true, window: 90s}\n", []Problem{
		{"ticketing.settings.write_batching.window", "must be whole seconds from 1s to 60s, got 1m30s", 4}}},
	{"batched kinds of writes", "ticketing:\n  settings:\n    write_batching: {enabled: true, kinds: [comments, status]}\n", []Problem{
		{"ticketing.settings.write_batching.kinds[1]", `"status" is not allowed; use one of comments, fields, assignment`, 4}}},
	{"ticket subject placeholders", "ticketing:\n  settings:\n    ticket_subject:\n      inbound: \"Call from {{caller}}\"\n", []Problem{
		{"ticketing.settings.ticket_subject.inbound", "{{caller}} is not a placeholder; use {{caller_number}}, {{caller_name}}, {{called_number}}, {{line}}, {{queue}}, {{direction}}, {{agent}}, {{menu_path}}, {{language}}, {{call_id}}, {{data.KEY}}", 5}}},
	{"a line's ticket subject", "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: hangup, settings: {ticket_subject: {voicemail: \"VM {{queue\"}}}]\n", []Problem{
		{"lines[0].settings.ticket_subject.voicemail", "has a {{ without its }}", 3}}},
	{"custom data mapping", "ticketing:\n  settings:\n    custom_data_fields:\n      - {key: account, field: account_number, type: digits}\n      - {key: plan, field: account_number, type: float}\n", []Problem{
		{"ticketing.settings.custom_data_fields[1].field", `"account_number" is already filled by custom_data_fields[0]`, 6},
		{"ticketing.settings.custom_data_fields[1].type", `"float" is not allowed; use one of text, digits, integer`, 6}}},
	{"allow_new_ticket without prompt_ticket_choice", "ticketing:\n  settings:\n    outbound:\n      allow_new_ticket: true\n", []Problem{
		{"ticketing.settings.outbound.allow_new_ticket", "can only be true when outbound.prompt_ticket_choice is true", 5}}},
	{"abandoned calls forced with on_queue_entry", "ticketing: {settings: {ticket_creation_point: on_queue_entry, abandoned_calls_create_tickets: false}}\n", []Problem{
		{"ticketing.settings.abandoned_calls_create_tickets", "cannot be false with ticket_creation_point on_queue_entry: abandoned calls always have a ticket there", 2}}},
	{"default assignee must be an agent or admin here", "ticketing: {settings: {default_assignee: boss@example.com}}\n", []Problem{
		{"ticketing.settings.default_assignee", `"boss@example.com" is not an agent or user of this configuration; add it under agents or users, or leave default_assignee empty`, 2}}},
	{"default region", "ticketing: {default_region: XX}\n", []Problem{
		{"ticketing.default_region", `"XX" is not a region code; use an ISO 3166 code such as US, GB or FR`, 2}}},

	// The cluster's internal leg: the secret is never repeated in a message.
	{"cluster without secret", "cluster: {internal_networks: [10.0.0.0/24], internal_address: 10.0.0.11:5060}\n", []Problem{
		{"cluster.secret", "is required when cluster.internal_networks or cluster.internal_address is set: the nodes authenticate their internal INVITEs with it", 2}}},
	{"cluster secret short, nothing else", "cluster: {secret: tooshort}\n", []Problem{
		{"cluster.secret", "is 8 characters long; use at least 32 random characters (e.g. openssl rand -hex 32), the same on every node", 2},
		{"cluster.internal_networks", "is required with cluster.secret: list the networks the nodes reach each other on, e.g. [10.0.0.0/24]", 2},
		{"cluster.internal_address", "is required with cluster.secret: the IP:port where the other nodes reach this node's SIP UDP listener, e.g. 10.0.0.11:5060", 2}}},
	{"cluster internal address outside its networks", "cluster: {secret: 0123456789abcdef0123456789abcdef, internal_networks: [10.0.0.0/24], internal_address: 192.0.2.1:5060, max_skew: 0s}\n", []Problem{
		{"cluster.internal_address", `"192.0.2.1:5060" is outside cluster.internal_networks: the other nodes would refuse this node's internal INVITEs`, 2},
		{"cluster.max_skew", "must be positive, e.g. 30s; got 0s", 2}}},
	{"cluster internal address host name", "cluster: {secret: 0123456789abcdef0123456789abcdef, internal_networks: [10.0.0.0/24], internal_address: node2:5060}\n", []Problem{
		{"cluster.internal_address", `"node2:5060" must have this node's IP address as the other nodes reach it (no host name, no wildcard)`, 2}}},
}

func TestParseReportsEachProblemWithPathAndLine(t *testing.T) {
	for _, tc := range problemCases {
		t.Run(tc.name, func(t *testing.T) {
			doc := base + tc.yaml
			if strings.HasPrefix(tc.yaml, "database:") || strings.HasPrefix(tc.yaml, wholeDocument) {
				doc = tc.yaml // the case is about database or the document itself
			}
			_, err := parse([]byte(doc), noEnv)
			var got Problems
			if !errors.As(err, &got) {
				t.Fatalf("parse: got error %v (%T), want Problems", err, err)
			}
			if !reflect.DeepEqual([]Problem(got), tc.want) {
				t.Errorf("problems:\n got: %s\nwant: %s", fmtProblems(got), fmtProblems(tc.want))
			}
		})
	}
}

func fmtProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

func TestParseReportsAllProblemsAtOnceInFileOrder(t *testing.T) {
	doc := `database: {url: postgres://u@127.0.0.1/db}
log: {level: loud}
sip:
  listen: [{transport: udp, address: "127.0.0.1:5060", tls: yes}]
rtp: {port_min: 20001, port_max: 20000}
trunks:
  - {name: carrier, inbound: {allow: [127.0.0.0/33]}}
lines:
  - {number: "5550100", trunk: carrier, target: ivr:main}
queues:
  support: {ring_timeout: soon}
agents:
  - {email: a@example.com, password: x, queues: [sales]}
ticketing:
  settings:
    outbound: {allow_new_ticket: true}
`
	_, err := parse([]byte(doc), noEnv)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("parse: %v", err)
	}
	want := []string{
		"log.level (line 2)",
		"sip.listen[0].tls (line 4)",
		"rtp.port_min (line 5)",
		"rtp.port_max (line 5)",
		"trunks[0].inbound.allow[0] (line 7)",
		"lines[0].number (line 9)",
		"lines[0].target (line 9)",
		"queues.support.ring_timeout (line 11)",
		"agents[0].queues[0] (line 13)",
		"ticketing.settings.outbound.allow_new_ticket (line 16)",
		"recordings.dir",
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:%s", len(ps), len(want), fmtProblems(ps))
	}
	for i, p := range ps {
		if !strings.HasPrefix(p.String(), want[i]+": ") {
			t.Errorf("problem %d = %q, want it to start %q", i, p, want[i])
		}
	}
	// Problems.Error is what check-config prints: one problem a line.
	if n := strings.Count(ps.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d", n, len(want))
	}
}

func TestValueThatFailedToDecodeIsReportedOnce(t *testing.T) {
	// The bad target leaves lines[0].target empty; "is required" would only add noise.
	doc := base + "trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]\nlines: [{number: \"+15550100\", target: \"queue support\"}]\n"
	_, err := parse([]byte(doc), noEnv)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "lines[0].target" {
		t.Fatalf("got %v, want one problem at lines[0].target", err)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{"a.b", "bad", 3}, "a.b (line 3): bad"},
		{Problem{"a.b", "bad", 0}, "a.b: bad"},
		{Problem{"", "bad", 3}, "line 3: bad"},
		{Problem{"", "bad", 0}, "bad"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestDatabaseURLFromEnvironmentOverridesTheFile(t *testing.T) {
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return "postgres://env@127.0.0.1/envdb"
		}
		return ""
	}
	c, err := parse([]byte(base), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != "postgres://env@127.0.0.1/envdb" {
		t.Errorf("database.url = %q, want DATABASE_URL's", c.Database.URL)
	}
	// And DATABASE_URL alone satisfies the requirement.
	if _, err := parse([]byte("log: {level: info}\n"), env); err != nil {
		t.Errorf("config without database.url but with DATABASE_URL: %v", err)
	}
}

// The cluster secret may come from SWITCHBOARD_CLUSTER_SECRET instead of the file; a valid
// cluster section is taken as written, and max_skew defaults to sip's.
func TestClusterSecretFromEnvironment(t *testing.T) {
	env := func(k string) string {
		if k == "SWITCHBOARD_CLUSTER_SECRET" {
			return "env-secret-0123456789abcdef0123456789"
		}
		return ""
	}
	doc := base + "cluster: {internal_networks: [127.0.0.0/8], internal_address: 127.0.0.1:5061}\n"
	c, err := parse([]byte(doc), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Secret != "env-secret-0123456789abcdef0123456789" || !c.Cluster.On() {
		t.Errorf("cluster.secret not taken from SWITCHBOARD_CLUSTER_SECRET")
	}
	if c.Cluster.MaxSkew.D() != DefaultClusterMaxSkew {
		t.Errorf("cluster.max_skew = %s, want the default %s", c.Cluster.MaxSkew, DefaultClusterMaxSkew)
	}
	if c, err := parse([]byte(base), noEnv); err != nil || c.Cluster.On() {
		t.Errorf("no cluster section: err %v, on %v (want off)", err, c != nil && c.Cluster.On())
	}
}

func TestLoadMissingFileWrapsTheError(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load: %v, want an os.ErrNotExist", err)
	}
}

func TestOmittedKeysKeepTheirDefaults(t *testing.T) {
	doc := base + `trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]
lines: [{number: "+15550100", target: ivr:main}]
ivr:
  main: {no_input: queue:support}
  quiet: {retries: 0, timeout: 3s, no_input: hangup}
queues:
  support:
  picky: {max_missed_offers: 0}
recordings: {dir: /tmp/rec}
ticketing:
  settings:
    outbound: {allow_no_ticket: true}
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	wantSettings := ticketing.DefaultSettings()
	wantSettings.Outbound.AllowNoTicket = true
	if !reflect.DeepEqual(c.Ticketing.Settings, wantSettings) {
		t.Errorf("ticketing.settings = %+v, want the defaults with allow_no_ticket", c.Ticketing.Settings)
	}
	if c.Ticketing.DefaultRegion != "US" || c.HTTP.Listen != "127.0.0.1:8080" || c.ShutdownGrace.D() != 30*time.Second {
		t.Errorf("defaults not applied: region %q, http %q, grace %s", c.Ticketing.DefaultRegion, c.HTTP.Listen, c.ShutdownGrace)
	}
	if r := c.SIP.Registrar; r.MaxBindingsPerAgent != 5 || r.MaxContactsPerRegister != 5 || len(r.PhoneNetworks) != 0 ||
		!reflect.DeepEqual(r.DigestAlgorithms, []string{"SHA-256", "MD5"}) || r.AuthFailuresFree != 3 || r.AuthBackoff.D() != time.Second || r.AuthBackoffMax.D() != 5*time.Minute {
		t.Errorf("sip.registrar defaults: %+v", r)
	}
	if c.Ticketing.AuditRetention != 0 {
		t.Errorf("ticketing.audit_retention default %s, want 0s (kept forever)", c.Ticketing.AuditRetention)
	}
	if f := c.SIP.FeatureCodes; f.Available != "*60" || f.Away != "*61" || f.Offline != "*62" {
		t.Errorf("sip.feature_codes defaults: %+v", f)
	}
	if !reflect.DeepEqual(c.SIP.ScannerUserAgents, DefaultScannerUserAgents()) || len(c.SIP.Listen) != 2 {
		t.Errorf("sip defaults: %+v", c.SIP)
	}
	if c.Node == "" || !*c.Database.MigrateOnStart || c.Log.Level != "info" {
		t.Errorf("node %q, migrate_on_start %v, log.level %q", c.Node, *c.Database.MigrateOnStart, c.Log.Level)
	}
	main, _ := c.Menu("main")
	if main.Prompt != "main" || main.Timeout.D() != 5*time.Second || main.Retries != 1 || main.Invalid != main.NoInput {
		t.Errorf("menu main defaults: %+v", main)
	}
	quiet, _ := c.Menu("quiet")
	if quiet.Retries != 0 || quiet.Timeout.D() != 3*time.Second {
		t.Errorf("menu quiet: explicit retries 0 / timeout 3s became %d / %s", quiet.Retries, quiet.Timeout)
	}
	support, _ := c.Queue("support")
	if support.RingTimeout.D() != 15*time.Second || support.MaxWait.D() != 120*time.Second ||
		support.Overflow.Kind != ivr.TargetVoicemail || support.MaxMissedOffers != 3 {
		t.Errorf("queue support defaults: %+v", support)
	}
	if picky, _ := c.Queue("picky"); picky.MaxMissedOffers != 0 {
		t.Errorf("queue picky: explicit max_missed_offers 0 became %d", picky.MaxMissedOffers)
	}
	l, ok := c.Line("+15550100")
	if !ok || l.Name != "+15550100" || l.Language != "en" {
		t.Errorf("line defaults: %+v", l)
	}
	if tr, ok := c.LineTrunk(l); !ok || tr.Name != "c" {
		t.Errorf("LineTrunk = %v, %v; want the only trunk", tr, ok)
	}
}

// Toll fraud (issue 14 item 7): a trunk that says nothing about destinations or agent limits
// denies the well-known premium-rate prefixes and limits each agent; explicit empty and zero
// values turn them off.
func TestTrunkOutboundFraudDefaultsAndExplicitOff(t *testing.T) {
	doc := base + `trunks:
  - {name: c, outbound: {uri: "sip:127.0.0.1"}}
  - name: open
    outbound:
      uri: "sip:127.0.0.2"
      destinations: {allow: ["+1"], deny: []}
      agent_limits: {calls_per_minute: 0, max_calls: 0}
lines: [{number: "+15550100", trunk: c, target: ivr:main}]
ivr:
  main: {no_input: hangup}
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Trunks[0].Outbound
	if !reflect.DeepEqual(d.Destinations.Deny, DefaultDenyPrefixes()) || len(d.Destinations.Allow) != 0 ||
		d.AgentLimits != (AgentLimits{CallsPerMinute: DefaultAgentCallsPerMinute, MaxCalls: DefaultAgentMaxCalls}) {
		t.Errorf("defaults: %+v", d)
	}
	o := c.Trunks[1].Outbound
	if len(o.Destinations.Deny) != 0 || !reflect.DeepEqual(o.Destinations.Allow, []string{"+1"}) || o.AgentLimits != (AgentLimits{}) {
		t.Errorf("explicit: %+v", o)
	}
}

// A trunk's region defaults to ticketing.default_region (national caller IDs are read in it,
// issue 15), and P-Asserted-Identity is trusted unless a trunk says otherwise.
func TestTrunkRegionAndAssertedIdentityDefaults(t *testing.T) {
	doc := base + `trunks:
  - {name: us, inbound: {allow: [127.0.0.1/32]}}
  - {name: fr, region: FR, inbound: {allow: [127.0.0.3/32], trust_asserted_identity: false}}
lines: [{number: "+15550100", trunk: us, target: ivr:main}]
ivr:
  main: {no_input: hangup}
ticketing: {default_region: GB}
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if us := c.Trunks[0]; us.Region != "GB" || !us.Inbound.TrustAssertedIdentity {
		t.Errorf("omitted: region %q trust_asserted_identity %v; want GB (ticketing.default_region) and true", us.Region, us.Inbound.TrustAssertedIdentity)
	}
	if fr := c.Trunks[1]; fr.Region != "FR" || fr.Inbound.TrustAssertedIdentity {
		t.Errorf("explicit: region %q trust_asserted_identity %v; want FR and false", fr.Region, fr.Inbound.TrustAssertedIdentity)
	}
}

func TestLineSettingsOverrideTheGlobalOnes(t *testing.T) {
	doc := base + `trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]
lines:
  - number: "+15550100"
    target: hangup
    settings: {ticket_creation_point: on_queue_entry, default_assignee: boss@example.com}
  - {number: "+15550101", target: hangup}
users: [{email: boss@example.com, password: x, role: admin}]
ticketing: {settings: {abandoned_calls_create_tickets: false}}
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	l0, _ := c.Line("+15550100")
	s := c.LineSettings(l0)
	if s.TicketCreationPoint != ticketing.CreateOnQueueEntry || !s.AbandonedCallsCreateTickets || s.DefaultAssignee != "boss@example.com" {
		t.Errorf("line settings = %+v", s)
	}
	l1, _ := c.Line("+15550101")
	if s := c.LineSettings(l1); s.AbandonedCallsCreateTickets || s.TicketCreationPoint != ticketing.CreateOnAccept {
		t.Errorf("line without overrides = %+v, want the global settings", s)
	}
	if _, ok := c.Line("+15550199"); ok {
		t.Error("Line found a number that is not configured")
	}
}

func TestAccountHash(t *testing.T) {
	plain := Account{Password: "agentpass"}
	h, err := plain.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(h, []byte("agentpass")) != nil {
		t.Error("Hash of a plain password does not verify")
	}
	given := Account{PasswordHash: bcryptOfSecret}
	if h, _ := given.Hash(); string(h) != bcryptOfSecret {
		t.Errorf("Hash = %q, want password_hash as given", h)
	}
}

// TestEveryKeyIsDocumented keeps docs/configuration.md true: each key of the schema appears
// there in backquotes (alone or in a dotted path).
func TestEveryKeyIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for typ, keys := range knownKeys() {
		for _, key := range keys {
			if !regexp.MustCompile("[`.]" + regexp.QuoteMeta(key) + "[`.]").MatchString(doc) {
				t.Errorf("docs/configuration.md does not document %s key %q", typ, key)
			}
		}
	}
}

// Rule TB-1 (configuration): an agent's ticket entry is their team's; an agent in no team,
// or a team without ticket_entry, has it off.
func TestTeamsTicketEntryOf(t *testing.T) {
	doc := base + `agents:
  - {email: a@example.com, password: x}
  - {email: b@example.com, password: x}
  - {email: c@example.com, password: x}
users: [{email: boss@example.com, password: x, role: admin}]
teams:
  - {name: collections, agents: [A@example.com, boss@example.com], ticket_entry: {mode: required, number_field: caller_number}}
  - {name: sales, agents: [b@example.com]}
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		email string
		want  ticketing.TicketEntry
	}{
		{"a@example.com", ticketing.TicketEntry{Mode: ticketing.TicketEntryRequired, NumberField: "caller_number"}},
		{"BOSS@example.com", ticketing.TicketEntry{Mode: ticketing.TicketEntryRequired, NumberField: "caller_number"}},
		{"b@example.com", ticketing.TicketEntry{Mode: ticketing.TicketEntryOff}},
		{"c@example.com", ticketing.TicketEntry{Mode: ticketing.TicketEntryOff}},
	} {
		if got := c.TicketEntryOf(tc.email); got != tc.want {
			t.Errorf("TicketEntryOf(%s) = %+v, want %+v", tc.email, got, tc.want)
		}
	}
	if c.TicketEntryOf("a@example.com").On() != true || c.TicketEntryOf("b@example.com").On() {
		t.Error("On")
	}
}

// Trunks are no longer exempt from every limit: an omitted calls_per_second takes the default,
// an explicit 0 turns it off; limit_trunks and the connection caps have their defaults.
func TestTrunkAndConnectionLimitsDefaults(t *testing.T) {
	doc := base + `trunks:
  - {name: a, inbound: {allow: [127.0.0.0/8]}}
  - {name: b, inbound: {allow: [10.0.0.0/8], calls_per_second: 0, max_calls: 5}}
  - {name: c, inbound: {auth: {username: u, password: p}}, outbound: {uri: "sip:127.0.0.1:5080"}}
sip: {rate_limit: {limit_trunks: true}}
`
	c, err := parse([]byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Trunks[0].Inbound; got.CallsPerSecond != DefaultTrunkCallsPerSecond || got.MaxCalls != 0 {
		t.Errorf("trunk a: %+v, want calls_per_second %d and max_calls 0", got, DefaultTrunkCallsPerSecond)
	}
	if got := c.Trunks[1].Inbound; got.CallsPerSecond != 0 || got.MaxCalls != 5 {
		t.Errorf("trunk b: explicit calls_per_second 0 / max_calls 5 became %g / %d", got.CallsPerSecond, got.MaxCalls)
	}
	if !c.SIP.RateLimit.LimitTrunks {
		t.Error("sip.rate_limit.limit_trunks: true was not read")
	}
	cn := c.SIP.Connections
	if cn.Max != 1024 || cn.PerSource != 32 || cn.HandshakeTimeout.D() != 10*time.Second || cn.IdleTimeout.D() != 5*time.Minute ||
		c.SIP.AnswerAckTimeout.D() != DefaultAnswerAckTimeout {
		t.Errorf("sip connection defaults: %+v, answer_ack_timeout %s", cn, c.SIP.AnswerAckTimeout)
	}
}

// Rule OB-7: the lines outbound calls may be placed from are those whose trunk (named, or the
// only one) takes outbound calls, in configuration order, each with that trunk.
func TestOutboundLinesAreTheLinesWhoseTrunkCallsOut(t *testing.T) {
	c, err := parse([]byte(base+`trunks:
  - {name: in, inbound: {allow: [127.0.0.0/8]}}
  - {name: out, outbound: {uri: "sip:127.0.0.1:5080", caller_id: "+15550100"}}
lines:
  - {number: "+15550100", trunk: out, language: fr, target: hangup}
  - {number: "+15550101", trunk: in, target: hangup}
  - {number: "+15550102", trunk: out, target: hangup}
queues:
  support: {overflow: hangup, outbound_line: "+15550102"}
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ol := range c.OutboundLines() {
		got = append(got, ol.Line.Number+"/"+ol.Trunk.Name+"/"+ol.Line.Language)
	}
	if want := []string{"+15550100/out/fr", "+15550102/out/en"}; !reflect.DeepEqual(got, want) {
		t.Errorf("OutboundLines = %v, want %v", got, want)
	}
	if q, _ := c.Queue("support"); q.OutboundLine != "+15550102" {
		t.Errorf("queues.support.outbound_line = %q", q.OutboundLine)
	}
}
