// Package apierror writes the error answers of the HTTP API (/api/v2) in their one shape
// (docs/api.md, Conventions):
//
//	{"error":"RecordInvalid","description":"to: is required","details":{"to":[{"description":"is required","error":"InvalidValue"}]}}
//
// Every package that serves part of the API (ticketing, ivr, recordings, web) answers its errors
// through Write, so a client parses one shape whichever package answered. It is a leaf: it
// imports nothing of ours, so that packages which may not import ticketing (ivr, recordings)
// can use it.
package apierror

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Error is one error answer.
type Error struct {
	// Status is the HTTP status (422, 404, 409, 401, 403, 429, 500, …).
	Status int
	// Name is the "error" member ("RecordInvalid", "Forbidden", …); empty takes the name of
	// Status (Name).
	Name string
	// Description says what went wrong and what to do, for a person.
	Description string
	// Details maps a field of the request, as the API names it ("to", "custom_fields.csat"), to
	// messages about it. Each message is written {"description": message, "error": code}, the
	// code being "Conflict" for a 409, "NotFound" for a 404 and "InvalidValue" otherwise.
	Details map[string][]string
	// Codes, when set, overrides the code of a field's messages in details: Zendesk's
	// "DuplicateValue" for a value another record holds (an email, an external_id).
	Codes map[string]string
	// Reason, when set, is a machine-readable cause written as "reason" beside "error" (the
	// toll-fraud refusals of POST /calls: "destination_denied", "rate", …).
	Reason string
	// RetryAfter, when more than 0, is sent as Retry-After in whole seconds, rounded up
	// (RFC 9110 §10.2.3; a 429 per RFC 6585 §4).
	RetryAfter time.Duration
}

// Detail is one message about a field, as written in "details".
type Detail struct {
	Description string `json:"description"`
	Error       string `json:"error"`
}

// Body is the JSON of an error answer.
type Body struct {
	Error       string              `json:"error"`
	Description string              `json:"description"`
	Reason      string              `json:"reason,omitempty"`
	Details     map[string][]Detail `json:"details,omitempty"`
}

// Write answers e: its status, Retry-After when set, and its Body as JSON.
func Write(w http.ResponseWriter, e Error) {
	name := e.Name
	if name == "" {
		name = Name(e.Status)
	}
	body := Body{Error: name, Description: e.Description, Reason: e.Reason}
	if len(e.Details) > 0 {
		code := detailCode(e.Status)
		body.Details = make(map[string][]Detail, len(e.Details))
		for field, msgs := range e.Details {
			c := code
			if fc := e.Codes[field]; fc != "" {
				c = fc
			}
			for _, m := range msgs {
				body.Details[field] = append(body.Details[field], Detail{Description: m, Error: c})
			}
		}
	}
	b, err := json.Marshal(body)
	if err != nil { // cannot happen for strings and maps of strings; answer something parseable
		e.Status, b = http.StatusInternalServerError, []byte(`{"error":"InternalError","description":"cannot encode the error"}`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(RetryAfterSeconds(e.RetryAfter), 10))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

// Name is the "error" name of an HTTP status in the API (docs/api.md).
func Name(status int) string {
	switch status {
	case http.StatusUnprocessableEntity:
		return "RecordInvalid"
	case http.StatusNotFound:
		return "RecordNotFound"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusMisdirectedRequest:
		return "MisdirectedRequest"
	case http.StatusNotImplemented:
		return "NotImplemented"
	case http.StatusServiceUnavailable:
		return "Unavailable"
	}
	return "InternalError"
}

func detailCode(status int) string {
	switch status {
	case http.StatusConflict:
		return "Conflict"
	case http.StatusNotFound:
		return "NotFound"
	}
	return "InvalidValue"
}

// RetryAfterSeconds is d in the whole seconds of Retry-After: rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	return int64(max(time.Second, d+time.Second-1) / time.Second)
}

// ID returns a short random id that ties an internal error a client is told about
// ("internal error (id 3f9c0a1b2c4d)") to the log line holding its cause, which the client
// never sees: internal error strings name files, addresses and SQL.
func ID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
