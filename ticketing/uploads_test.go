package ticketing_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// A 1×1 PNG.
var tinyPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

// raw sends one request with a raw body and Content-Type to srv and returns status, headers and
// body.
func raw(t *testing.T, base, method, path, contentType string, body []byte, a auth) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+"/api/v2"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	} else if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// Zendesk's attachment flow end to end: two files uploaded under one token (the second with the
// first's token), a comment naming the token gets both as attachments in Zendesk's shape, the
// comments list and GET /attachments/{id} show them, and content_url serves the very bytes with
// their type, to an authenticated agent only. A token is used once; a deleted upload's token
// attaches nothing. Before issue 20's second wave attachments were always empty.
func TestUploads_CommentTakesTheFilesOfItsToken(t *testing.T) {
	e := newEnv(t)
	tk := e.newTicket(e.newUser("Attach"), nil)
	code, _, b := raw(t, e.srv.URL, "POST", "/uploads?filename=pixel.png&binary=true", "application/binary", tinyPNG, e.asAgent())
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, b)
	}
	up := decode(t, b)
	token := up.str("upload", "token")
	if token == "" || up.get("upload", "expires_at") == nil || up.str("upload", "attachment", "content_type") != "image/png" ||
		up.id("upload", "attachment", "width") != 1 || up.id("upload", "attachment", "size") != int64(len(tinyPNG)) {
		t.Fatalf("upload answer: %s", b)
	}
	log := []byte("line one\nline two\n")
	code, _, b = raw(t, e.srv.URL, "POST", "/uploads?filename=C:%5Cfakepath%5Ccall.log&token="+token, "", log, e.asAgent())
	if code != http.StatusCreated {
		t.Fatalf("second upload: %d %s", code, b)
	}
	up2 := decode(t, b)
	if up2.str("upload", "token") != token || len(up2.get("upload", "attachments").([]any)) != 2 ||
		up2.str("upload", "attachment", "file_name") != "call.log" || !strings.HasPrefix(up2.str("upload", "attachment", "content_type"), "text/") {
		t.Fatalf("second upload under the token: %s", b)
	}
	c := must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/comments", tk),
		map[string]any{"comment": map[string]any{"body": "see the files", "uploads": []string{token}}}), http.StatusCreated)
	atts, _ := c.get("comment", "attachments").([]any)
	if len(atts) != 2 {
		t.Fatalf("comment attachments: %s", c.Raw)
	}
	first := atts[0].(map[string]any)
	for _, k := range []string{"id", "url", "file_name", "content_url", "content_type", "size", "inline", "deleted", "thumbnails", "malware_scan_result"} {
		if _, ok := first[k]; !ok {
			t.Errorf("attachment lacks %s: %v", k, first)
		}
	}
	if first["file_name"] != "pixel.png" || !strings.HasSuffix(first["content_url"].(string), fmt.Sprintf("/api/v2/attachments/%d/content", int64(first["id"].(float64)))) {
		t.Errorf("attachment: %v", first)
	}
	list := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", tk), nil), http.StatusOK).list("comments")
	last := list[len(list)-1]
	if got, _ := last["attachments"].([]any); len(got) != 2 {
		t.Fatalf("comments list: attachments %v", last["attachments"])
	}
	id := int64(first["id"].(float64))
	show := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/attachments/%d", id), nil), http.StatusOK)
	if show.str("attachment", "file_name") != "pixel.png" {
		t.Errorf("show attachment: %s", show.Raw)
	}
	code, h, body := raw(t, e.srv.URL, "GET", fmt.Sprintf("/attachments/%d/content", id), "", nil, e.asAgent())
	if code != http.StatusOK || !bytes.Equal(body, tinyPNG) || h.Get("Content-Type") != "image/png" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("content: %d %v %d bytes", code, h, len(body))
	}
	if code, _, _ := raw(t, e.srv.URL, "GET", fmt.Sprintf("/attachments/%d/content", id), "", nil, auth{}); code != http.StatusUnauthorized {
		t.Errorf("content without credentials: %d, want 401", code)
	}
	// Used once: a second comment naming the token is refused, naming it.
	r := must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", tk),
		map[string]any{"ticket": map[string]any{"comment": map[string]any{"body": "again", "uploads": []string{token}}}}), http.StatusUnprocessableEntity)
	if !r.detail("comment.uploads[0]") {
		t.Errorf("token used twice: %s, want comment.uploads[0] named", r.Raw)
	}
	// A deleted upload attaches nothing, and its file is gone.
	code, _, b = raw(t, e.srv.URL, "POST", "/uploads?filename=gone.txt", "text/plain", []byte("bye"), e.asAgent())
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, b)
	}
	gone := decode(t, b)
	must(t, e.call(e.asAgent(), "DELETE", "/uploads/"+gone.str("upload", "token"), nil), http.StatusNoContent)
	must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/attachments/%d", gone.id("upload", "attachment", "id")), nil), http.StatusNotFound)
	r = must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/comments", tk),
		map[string]any{"comment": map[string]any{"body": "x", "uploads": []string{gone.str("upload", "token")}}}), http.StatusUnprocessableEntity)
	if !r.detail("uploads[0]") {
		t.Errorf("deleted token: %s, want uploads[0] named", r.Raw)
	}
	// A new ticket's first comment takes uploads too.
	code, _, b = raw(t, e.srv.URL, "POST", "/uploads?filename=first.txt", "text/plain", []byte("first"), e.asAgent())
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, b)
	}
	nt := must(t, e.call(e.asAgent(), "POST", "/tickets", map[string]any{"ticket": map[string]any{"requester_id": e.newUser("First"),
		"comment": map[string]any{"body": "with a file", "uploads": []string{decode(t, b).str("upload", "token")}}}}), http.StatusCreated)
	cs := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", nt.id("ticket", "id")), nil), http.StatusOK).list("comments")
	if got, _ := cs[0]["attachments"].([]any); len(got) != 1 {
		t.Errorf("new ticket's comment: %v", cs[0])
	}
}

// Poison uploads get a precise answer naming what is wrong: too large (413 naming file, before
// the body is read when Content-Length says so), empty, no name, a Content-Type that does not
// parse, an unknown token; a name with directories and control characters is cleaned; a file
// that a browser would run (HTML) is served as a download with a sandbox policy.
func TestUploads_RefusesOrCleansPoisonInput(t *testing.T) {
	e := newEnv(t)
	api := ticketing.NewAPI(e.store, ticketing.APIOptions{MaxUploadBytes: 1024})
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a := e.asAgent()
	for _, c := range []struct {
		name, path, ct string
		body           []byte
		status         int
		field          string
	}{
		{"too large", "/uploads?filename=big.bin", "application/octet-stream", bytes.Repeat([]byte("x"), 1025), http.StatusRequestEntityTooLarge, "file"},
		{"empty", "/uploads?filename=empty.txt", "text/plain", nil, http.StatusUnprocessableEntity, "file"},
		{"no name", "/uploads", "text/plain", []byte("x"), http.StatusUnprocessableEntity, "filename"},
		{"only a directory", "/uploads?filename=..%2F..%2F", "text/plain", []byte("x"), http.StatusUnprocessableEntity, "filename"},
		{"bad content type", "/uploads?filename=a.txt", "text/", []byte("x"), http.StatusUnprocessableEntity, "Content-Type"},
		{"unknown token", "/uploads?filename=a.txt&token=abcdefghijklmnopqrstuvwx", "text/plain", []byte("x"), http.StatusNotFound, "token"},
		{"unknown parameter", "/uploads?filename=a.txt&colour=red", "text/plain", []byte("x"), http.StatusUnprocessableEntity, "colour"},
	} {
		code, _, b := raw(t, srv.URL, "POST", c.path, c.ct, c.body, a)
		r := decode(t, b)
		if code != c.status || !r.detail(c.field) {
			t.Errorf("%s: %d %s, want %d naming %s", c.name, code, b, c.status, c.field)
		}
	}
	// A body larger than the limit without Content-Length (chunked) is cut at the limit.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(bytes.Repeat([]byte("y"), 4096))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v2/uploads?filename=chunked.bin", pr)
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: %d, want 413", res.StatusCode)
	}

	code, _, b := raw(t, srv.URL, "POST", "/uploads?filename=..%2F..%2Fetc%2F%E2%80%AEevil%01.html", "", []byte("<script>alert(1)</script>"), a)
	if code != http.StatusCreated {
		t.Fatalf("html upload: %d %s", code, b)
	}
	up := decode(t, b)
	if n := up.str("upload", "attachment", "file_name"); n != "evil.html" {
		t.Errorf("file name %q, want evil.html (directories, control and bidi characters removed)", n)
	}
	if ct := up.str("upload", "attachment", "content_type"); ct != "text/html; charset=utf-8" {
		t.Errorf("content type %q, want text/html from the extension", ct)
	}
	code, h, _ := raw(t, srv.URL, "GET", fmt.Sprintf("/attachments/%d/content", up.id("upload", "attachment", "id")), "", nil, a)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment;") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "sandbox") || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("HTML served as %d %v, want a download with a sandbox policy", code, h)
	}
	// node-zendesk sends a file path's contents as application/json: not JSON, so sniffed.
	code, _, b = raw(t, srv.URL, "POST", "/uploads?filename=notes", "application/json", []byte("plain words"), a)
	if code != http.StatusCreated || decode(t, b).str("upload", "attachment", "content_type") != "text/plain; charset=utf-8" {
		t.Errorf("application/json that is not JSON: %d %s, want text/plain sniffed", code, b)
	}
}

func decode(t *testing.T, b []byte) resp {
	t.Helper()
	r := resp{Raw: b}
	if err := json.Unmarshal(b, &r.Body); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return r
}

// Two comments naming one upload token at once: exactly one takes the files, the other is
// refused naming the token, and the files end on one comment only — the token's row lock
// (FOR UPDATE) serialises them. Looped so that -race sees the interleavings.
func TestUploads_OneTokenRacedByTwoCommentsAttachesOnce(t *testing.T) {
	e := newEnv(t)
	tk := e.newTicket(e.newUser("Racer"), nil)
	for round := range 5 {
		code, _, b := raw(t, e.srv.URL, "POST", "/uploads?filename=race.txt", "text/plain", []byte("race"), e.asAgent())
		if code != http.StatusCreated {
			t.Fatalf("upload: %d %s", code, b)
		}
		token := decode(t, b).str("upload", "token")
		results := make(chan resp, 2)
		for range 2 {
			go func() {
				results <- e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/comments", tk),
					map[string]any{"comment": map[string]any{"body": "mine", "uploads": []string{token}}})
			}()
		}
		statuses := map[int]int{}
		for range 2 {
			select {
			case r := <-results:
				statuses[r.Status]++
				if r.Status == http.StatusUnprocessableEntity && !r.detail("uploads[0]") {
					t.Errorf("round %d: refusal %s does not name uploads[0]", round, r.Raw)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a comment did not answer")
			}
		}
		if statuses[http.StatusCreated] != 1 || statuses[http.StatusUnprocessableEntity] != 1 {
			t.Fatalf("round %d: statuses %v, want one 201 and one 422", round, statuses)
		}
	}
	cs := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", tk), nil), http.StatusOK).list("comments")
	files := 0
	for _, c := range cs {
		files += len(c["attachments"].([]any))
	}
	if files != 5 {
		t.Errorf("%d files on the ticket's comments, want 5 (one per round)", files)
	}
}

// FuzzCleanFileName: whatever a client sends as filename, a stored name has no directory
// separator, no control or bidirectional-override character, is valid UTF-8, at most 255
// runes, and is not empty (or the name is refused).
func FuzzCleanFileName(f *testing.F) {
	for _, s := range []string{"a.png", "../../etc/passwd", `C:\x\y.txt`, "\u202eevil.html", " . ", "a\x00b", strings.Repeat("é", 300) + ".png", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ticketing.CleanFileName("filename", in)
		if err != nil {
			return
		}
		if out == "" || strings.ContainsAny(out, `/\`) || !utf8.ValidString(out) || utf8.RuneCountInString(out) > 255 {
			t.Fatalf("CleanFileName(%q) = %q", in, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u2028' || r == '\u2029' {
				t.Fatalf("CleanFileName(%q) = %q keeps %U", in, out, r)
			}
		}
	})
}
