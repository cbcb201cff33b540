package ticketing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Issue 14, item 9: an internal error (here the database pool gone) is a 500 whose description
// carries an error id, never the cause; the log holds the cause under that id.
func TestInternalErrorShowsAnIDNotTheCause(t *testing.T) {
	pool := pgtest.Pool(t)
	store := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: bcrypt.MinCost})
	if _, err := store.EnsureUser(context.Background(), "admin@example.com", "Admin", ticketing.RoleAdmin, "adminpass"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	api := ticketing.NewAPI(store, ticketing.APIOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	pool.Close()

	req := httptest.NewRequest("GET", "/api/v2/tickets/1", nil)
	req.SetBasicAuth("admin@example.com", "adminpass")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var m map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	if rec.Code != http.StatusInternalServerError || m["error"] != "InternalError" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if strings.Contains(strings.ToLower(rec.Body.String()), "pool") || strings.Contains(rec.Body.String(), "closed") {
		t.Fatalf("the internal cause reached the client: %s", rec.Body)
	}
	_, id, ok := strings.Cut(m["description"], "(id ")
	id, _, _ = strings.Cut(id, ")")
	if !ok || len(id) != 12 {
		t.Fatalf("no error id in %q", m["description"])
	}
	if !strings.Contains(logs.String(), `"error_id":"`+id+`"`) || !strings.Contains(strings.ToLower(logs.String()), "closed") {
		t.Fatalf("the log does not hold the cause under id %s:\n%s", id, logs.String())
	}
}
