package ticketing

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/apierror"
)

// registerUploads mounts Zendesk's uploads and attachments API (docs/api.md, Attachments).
func (a *API) registerUploads(h func(string, string, func(http.ResponseWriter, *http.Request, Principal) error), mux *http.ServeMux) {
	// The file is the raw request body: its own limit, not MaxBodyBytes.
	mux.Handle("POST "+a.prefix+"/uploads", a.handleLimit(RoleAgent, a.opts.MaxUploadBytes+1, a.upload))
	h("DELETE /uploads/{token}", RoleAgent, a.deleteUpload)
	h("GET /attachments/{id}", RoleAgent, a.getAttachment)
	h("GET /attachments/{id}/content", RoleAgent, a.attachmentContent)
}

// upload is POST /uploads?filename=NAME[&token=TOKEN]: the body is the file's bytes, its
// Content-Type the file's type (or generic, then found from the name and the bytes). 201
// {"upload": {token, expires_at, attachment, attachments}}.
func (a *API) upload(w http.ResponseWriter, r *http.Request, p Principal) error {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "filename", "token", "binary", "inline":
		default:
			return invalidField(cleanAudit(k), "unknown parameter: POST /uploads takes filename, token (and binary, ignored)")
		}
	}
	name, err := CleanFileName("filename", q.Get("filename"))
	if err != nil {
		return err
	}
	token := q.Get("token")
	if token != "" && !uploadToken.MatchString(token) {
		return &Error{Kind: ErrNotFound, Description: "upload token not found or expired: upload without a token to get a new one",
			Details: map[string][]string{"token": {"is not an upload token, or it expired"}}}
	}
	limit := a.opts.MaxUploadBytes
	if r.ContentLength > limit {
		return a.tooLarge(w, r.ContentLength)
	}
	content, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || int64(len(content)) > limit {
		return a.tooLarge(w, -1)
	}
	if err != nil {
		return invalidField("file", "the request body could not be read: %v", err)
	}
	if len(content) == 0 {
		return invalidField("file", "is empty: send the file's bytes as the request body")
	}
	ct, err := FileType(r.Header.Get("Content-Type"), name, content)
	if err != nil {
		return err
	}
	up, err := a.store.CreateUpload(r.Context(), p.Actor(), NewFile{Token: token, FileName: name, ContentType: ct, Content: content})
	if err != nil {
		return err
	}
	a.linkAttachments(up.Attachments)
	for _, att := range up.Attachments {
		if att.ID == up.Attachment.ID {
			*up.Attachment = att
		}
	}
	a.write(w, http.StatusCreated, map[string]any{"upload": up})
	return nil
}

// tooLarge answers 413 naming the file and the limit (n: the size announced, -1 unknown).
func (a *API) tooLarge(w http.ResponseWriter, n int64) error {
	size := "is larger than"
	if n >= 0 {
		size = "is " + strconv.FormatInt(n, 10) + " bytes, more than"
	}
	msg := fmt.Sprintf("%s the %d bytes an upload may be", size, a.opts.MaxUploadBytes)
	// The rest of the body is not read: the connection closes after the answer.
	w.Header().Set("Connection", "close")
	apierror.Write(w, apierror.Error{Status: http.StatusRequestEntityTooLarge, Name: "RecordInvalid",
		Description: "file: " + msg, Details: map[string][]string{"file": {msg}}})
	return nil
}

func (a *API) deleteUpload(w http.ResponseWriter, r *http.Request, p Principal) error {
	token := r.PathValue("token")
	if !uploadToken.MatchString(token) {
		return notFound("upload %q not found (or expired)", cleanAudit(token))
	}
	if err := a.store.DeleteUpload(r.Context(), p.Actor(), token); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) getAttachment(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "attachment")
	if err != nil {
		return err
	}
	att, err := a.store.Attachment(r.Context(), id)
	if err != nil {
		return err
	}
	list := []Attachment{att}
	a.linkAttachments(list)
	a.write(w, http.StatusOK, map[string]any{"attachment": list[0]})
	return nil
}

// inlineTypes are served inline (shown by a browser); every other type is a download
// (Content-Disposition: attachment), so that a file from outside (HTML, SVG, a script) never
// runs on the API's origin. The sandbox CSP is a second guard.
var inlineTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"text/plain": true, "audio/wav": true, "audio/mpeg": true, "application/pdf": true}

// attachmentContent serves the bytes of an attachment (its content_url), to an agent or admin.
func (a *API) attachmentContent(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "attachment")
	if err != nil {
		return err
	}
	att, content, err := a.store.AttachmentContent(r.Context(), id)
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(att.ContentType)
	disposition := "attachment"
	if inlineTypes[mt] {
		disposition = "inline"
	}
	w.Header().Set("Content-Type", att.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(content)))
	w.Header().Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": att.FileName}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.Header().Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(content)
	}
	return nil
}

// linkAttachments fills the URLs of attachments: url (the attachment, Zendesk's .json form)
// and content_url (its bytes), under APIOptions.PublicURL.
func (a *API) linkAttachments(list []Attachment) {
	for i := range list {
		id := strconv.FormatInt(list[i].ID, 10)
		list[i].URL = a.resourceURL("/attachments/" + id)
		list[i].ContentURL = a.opts.PublicURL + a.prefix + "/attachments/" + id + "/content"
		list[i].MappedContentURL = list[i].ContentURL
	}
}

// renameUploads names comment.uploads[i] as uploads[i], for POST /tickets/{id}/comments whose
// body is the comment itself.
func renameUploads(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	for k := range e.Details {
		if strings.HasPrefix(k, "comment.uploads") {
			err = renameField(err, k, strings.TrimPrefix(k, "comment."))
		}
	}
	return err
}
