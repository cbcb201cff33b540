package web

import "net/http"

// noRanges serves the page's small embedded files without byte ranges. http.ServeContent
// answers a Range header with a multipart body of one part per range (RFC 9110 §14.6): one
// request with thousands of tiny ranges ("bytes=0-0,2-2,4-4,…", within the 1 MB header limit)
// costs a part header and a write per range — a core burnt and the file amplified many times.
// RFC 9110 §14.2 lets a server ignore Range; none of these files (a few KB) is worth resuming,
// so Range and If-Range are dropped and the whole file is sent with 200, announced as
// "Accept-Ranges: none" (§14.3).
func noRanges(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" {
			r = r.Clone(r.Context())
			r.Header.Del("Range")
			r.Header.Del("If-Range")
		}
		h.ServeHTTP(&noRangesWriter{ResponseWriter: w}, r)
	})
}

// noRangesWriter replaces the "Accept-Ranges: bytes" that ServeContent sets.
type noRangesWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *noRangesWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.Header().Set("Accept-Ranges", "none")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *noRangesWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *noRangesWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
