package ticketing

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // image.DecodeConfig: an attachment's width and height
	_ "image/jpeg" // ditto
	_ "image/png"  // ditto
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Uploads and attachments (Zendesk's ticket attachments; docs/api.md, Attachments): a client
// uploads a file (POST /uploads) and gets a token; a comment naming the token in
// comment.uploads takes the token's files as its attachments, in the comment's transaction.
// Files are stored in PostgreSQL (migration 018: the nodes of a cluster share nothing else)
// and are bounded in size by the API.

// UploadTTL is how long an upload token waits for a comment (Zendesk's: 60 minutes). Expired
// uploads and their files are deleted by the next upload.
const UploadTTL = time.Hour

// Limits on uploads.
const (
	// DefaultMaxUploadBytes is the largest file POST /uploads takes unless APIOptions says
	// otherwise (Zendesk's limit is 50 MB; files are held in memory and in the database).
	DefaultMaxUploadBytes = 20 << 20
	maxFilesPerUpload     = 20
	maxUploadsPerComment  = 20
	maxFileNameRunes      = 255
)

// Attachment is a file on a comment (or waiting under an upload token), in Zendesk's shape. The
// API fills URL and ContentURL (they name the public URL); Switchboard scans nothing for malware
// (malware_scan_result "not_scanned") and makes no thumbnails.
type Attachment struct {
	ID                    int64      `json:"id"`
	URL                   string     `json:"url"`
	FileName              string     `json:"file_name"`
	ContentURL            string     `json:"content_url"`
	MappedContentURL      string     `json:"mapped_content_url"`
	ContentType           string     `json:"content_type"`
	Size                  int64      `json:"size"`
	Width                 *int       `json:"width"`
	Height                *int       `json:"height"`
	Inline                bool       `json:"inline"`
	Deleted               bool       `json:"deleted"`
	MalwareAccessOverride bool       `json:"malware_access_override"`
	MalwareScanResult     string     `json:"malware_scan_result"`
	Thumbnails            []struct{} `json:"thumbnails"`
	CreatedAt             Time       `json:"created_at"`

	commentID int64
}

// Upload is an upload token and the files uploaded under it.
type Upload struct {
	Token       string       `json:"token"`
	ExpiresAt   Time         `json:"expires_at"`
	Attachment  *Attachment  `json:"attachment"`
	Attachments []Attachment `json:"attachments"`
}

const attachmentCols = `id, file_name, content_type, size, width, height, created_at, coalesce(comment_id, 0)`

func scanAttachment(r pgx.Row) (Attachment, error) {
	var a Attachment
	err := r.Scan(&a.ID, &a.FileName, &a.ContentType, &a.Size, &a.Width, &a.Height, &a.CreatedAt, &a.commentID)
	a.MalwareScanResult, a.Thumbnails = "not_scanned", []struct{}{}
	return a, err
}

var uploadToken = regexp.MustCompile(`^[a-z0-9]{24}$`)

func newUploadToken() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ticketing: upload token: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)] // 256 % 36 leaves a slight bias: 24 chars still carry >120 bits
	}
	return string(b), nil
}

// CleanFileName makes a client's file name safe to store, list and send back in a
// Content-Disposition: the last path element only (no directories, either slash), without
// control, line-separator or bidirectional-override characters, trimmed, at most 255 runes
// (the extension kept). An empty result is refused (422 naming field).
func CleanFileName(field, name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", invalidField(field, "must be UTF-8")
	}
	name = strings.ReplaceAll(name, `\`, "/")
	name = name[strings.LastIndex(name, "/")+1:]
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') ||
			(r >= '\u2066' && r <= '\u2069') || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.Trim(name, " .")
	if name == "" {
		return "", invalidField(field, "is required: the file's name, e.g. ?filename=screenshot.png")
	}
	if r := []rune(name); len(r) > maxFileNameRunes {
		ext := []rune(path.Ext(name))
		if len(ext) > 16 {
			ext = nil
		}
		name = string(r[:maxFileNameRunes-len(ext)]) + string(ext)
	}
	return name, nil
}

// genericTypes are Content-Types that say nothing of a file: node-zendesk sends
// application/binary for a stream and application/json for a file path, curl's --data-binary
// application/x-www-form-urlencoded. The type is then found from the name and the bytes.
var genericTypes = map[string]bool{
	"": true, "application/octet-stream": true, "application/binary": true,
	"application/x-www-form-urlencoded": true, "multipart/form-data": true,
}

// FileType is the content type an upload is stored and served with: the type the client gave
// (its media type and charset only), unless it is generic or is JSON that is not JSON, then
// the type of the file name's extension, else the type sniffed from the bytes (the WHATWG
// algorithm of http.DetectContentType). A Content-Type that does not parse is refused.
func FileType(given, name string, content []byte) (string, error) {
	if given != "" {
		mt, params, err := mime.ParseMediaType(given)
		if err != nil {
			return "", invalidField("Content-Type", "%q is not a media type (RFC 9110 §8.3)", cleanAudit(given))
		}
		given = mt
		if genericTypes[mt] || (mt == "application/json" && !json.Valid(content)) {
			given = ""
		} else if cs := params["charset"]; cs != "" {
			given = mime.FormatMediaType(mt, map[string]string{"charset": cs})
		}
	}
	if given != "" {
		return given, nil
	}
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(name))); t != "" {
		return t, nil
	}
	return http.DetectContentType(content), nil
}

// NewFile is one file uploaded.
type NewFile struct {
	Token       string // an existing upload's token, to add the file to it; "" for a new upload
	FileName    string // cleaned (CleanFileName)
	ContentType string
	Content     []byte
}

// CreateUpload stores a file under a new upload token, or under f.Token (404 when it is
// unknown or expired), and returns the upload with every file under it. Expired uploads are
// deleted first.
func (s *Store) CreateUpload(ctx context.Context, actor Actor, f NewFile) (Upload, error) {
	var up Upload
	err := s.inTx(ctx, actor, "upload", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM uploads WHERE expires_at < clock_timestamp()`); err != nil {
			return dbError("upload", err)
		}
		token := f.Token
		if token == "" {
			var err error
			if token, err = newUploadToken(); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `INSERT INTO uploads (token, created_by, expires_at)
				VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) RETURNING expires_at`,
				token, actorArg(actor), UploadTTL.Seconds()).Scan(&up.ExpiresAt); err != nil {
				return dbError("upload", err)
			}
		} else {
			err := tx.QueryRow(ctx, `SELECT expires_at FROM uploads WHERE token = $1 FOR UPDATE`, token).Scan(&up.ExpiresAt)
			if errors.Is(err, pgx.ErrNoRows) {
				return &Error{Kind: ErrNotFound, Description: "upload token not found or expired: upload without a token to get a new one",
					Details: map[string][]string{"token": {"is not an upload token, or it expired"}}}
			}
			if err != nil {
				return dbError("upload", err)
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM attachments WHERE upload_token = $1`, token).Scan(&n); err != nil {
				return dbError("upload", err)
			}
			if n >= maxFilesPerUpload {
				return invalidField("token", "holds %d files already, the most one upload takes: upload without a token", n)
			}
		}
		up.Token = token
		var w, h *int
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(f.Content)); err == nil {
			w, h = &cfg.Width, &cfg.Height
		}
		a, err := scanAttachment(tx.QueryRow(ctx, `INSERT INTO attachments (upload_token, file_name, content_type, size, width, height, content, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+attachmentCols,
			token, f.FileName, f.ContentType, len(f.Content), w, h, f.Content, actorArg(actor)))
		if err != nil {
			return dbError("upload", err)
		}
		up.Attachment = &a
		rows, err := tx.Query(ctx, `SELECT `+attachmentCols+` FROM attachments WHERE upload_token = $1 ORDER BY id`, token)
		if err != nil {
			return dbError("upload", err)
		}
		up.Attachments, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attachment, error) { return scanAttachment(r) })
		return dbError("upload", err)
	})
	return up, err
}

// DeleteUpload deletes an upload token and the files under it that no comment took (Zendesk's
// DELETE /uploads/{token}); 404 when there is no such token.
func (s *Store) DeleteUpload(ctx context.Context, actor Actor, token string) error {
	return s.inTx(ctx, actor, "delete_upload", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM uploads WHERE token = $1`, token)
		if err != nil {
			return dbError("delete upload", err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("upload %q not found (or expired)", token)
		}
		return nil
	})
}

// Attachment returns attachment id, on a comment or waiting under an upload.
func (s *Store) Attachment(ctx context.Context, id int64) (Attachment, error) {
	a, err := scanAttachment(s.pool.QueryRow(ctx, `SELECT `+attachmentCols+` FROM attachments WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, notFound("attachment %d not found", id)
	}
	if err != nil {
		return a, fmt.Errorf("ticketing: attachment %d: %w", id, err)
	}
	return a, nil
}

// AttachmentContent returns attachment id and its bytes.
func (s *Store) AttachmentContent(ctx context.Context, id int64) (Attachment, []byte, error) {
	var a Attachment
	var content []byte
	err := s.pool.QueryRow(ctx, `SELECT `+attachmentCols+`, content FROM attachments WHERE id = $1`, id).Scan(
		&a.ID, &a.FileName, &a.ContentType, &a.Size, &a.Width, &a.Height, &a.CreatedAt, &a.commentID, &content)
	a.MalwareScanResult, a.Thumbnails = "not_scanned", []struct{}{}
	if errors.Is(err, pgx.ErrNoRows) {
		return a, nil, notFound("attachment %d not found", id)
	}
	if err != nil {
		return a, nil, fmt.Errorf("ticketing: attachment %d: %w", id, err)
	}
	return a, content, nil
}

// attachUploads gives comment commentID the files of the upload tokens (comment.uploads), in
// the comment's transaction, and deletes the tokens: a token is used once. An unknown or
// expired token is refused, naming it (comment.uploads[i]).
func attachUploads(ctx context.Context, tx pgx.Tx, commentID int64, tokens []string) ([]Attachment, error) {
	if len(tokens) == 0 {
		return []Attachment{}, nil
	}
	if len(tokens) > maxUploadsPerComment {
		return nil, invalidField("comment.uploads", "at most %d upload tokens on one comment", maxUploadsPerComment)
	}
	// FOR UPDATE: two comments naming one token wait for each other, and the second finds it gone.
	rows, err := tx.Query(ctx, `SELECT token FROM uploads WHERE token = ANY($1) AND expires_at > clock_timestamp() FOR UPDATE`, tokens)
	if err != nil {
		return nil, dbError("attach uploads", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError("attach uploads", err)
	}
	ok := map[string]bool{}
	for _, t := range found {
		ok[t] = true
	}
	for i, t := range tokens {
		if !ok[t] {
			return nil, invalidField(fmt.Sprintf("comment.uploads[%d]", i), "%q is not an upload token, was used by another comment, or expired (tokens last %s)",
				cleanAudit(t), UploadTTL)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE attachments SET comment_id = $1, upload_token = NULL WHERE upload_token = ANY($2)`, commentID, tokens); err != nil {
		return nil, dbError("attach uploads", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM uploads WHERE token = ANY($1)`, tokens); err != nil {
		return nil, dbError("attach uploads", err)
	}
	m, err := attachmentsOf(ctx, tx, []int64{commentID})
	return m[commentID], err
}

// attachmentsOf returns the attachments of comments, by comment id, each list in upload order.
func attachmentsOf(ctx context.Context, q querier, commentIDs []int64) (map[int64][]Attachment, error) {
	out := map[int64][]Attachment{}
	if len(commentIDs) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT `+attachmentCols+` FROM attachments WHERE comment_id = ANY($1) ORDER BY id`, commentIDs)
	if err != nil {
		return nil, fmt.Errorf("ticketing: attachments: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attachment, error) { return scanAttachment(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: attachments: %w", err)
	}
	for _, a := range list {
		out[a.commentID] = append(out[a.commentID], a)
	}
	return out, nil
}
