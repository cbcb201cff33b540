package web

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The Range flood (issue 14, item 8): one GET with a 5,000-range header on the page's files
// gets the file once, with 200, instead of a 5,000-part multipart body.
func TestRangeFlood_FiveThousandRangesOnAssetsGetTheWholeFileOnce(t *testing.T) {
	h := newHarness(t, Options{})
	var rs []string
	for i := range 5000 {
		rs = append(rs, strconv.Itoa(2*i)+"-"+strconv.Itoa(2*i))
	}
	flood := "bytes=" + strings.Join(rs, ",")
	for _, path := range []string{"/assets/app.js", "/assets/app.css", "/"} {
		plain, err := http.Get(h.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		req, _ := http.NewRequest("GET", h.http.URL+path, nil)
		req.Header.Set("Range", flood)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(got) != len(want) || resp.Header.Get("Accept-Ranges") != "none" {
			t.Errorf("%s with 5,000 ranges: %d, %d bytes (the file has %d), Accept-Ranges %q; want 200, the file once, none",
				path, resp.StatusCode, len(got), len(want), resp.Header.Get("Accept-Ranges"))
		}
		// A single range is ignored the same way: these files are never worth resuming.
		req.Header.Set("Range", "bytes=0-9")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%s with one range: %v %v", path, resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
	}
}
