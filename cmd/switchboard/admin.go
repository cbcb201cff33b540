package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startAdmin serves /metrics and Go's profiler (net/http/pprof) on admin.listen, a listener of
// its own so that they never share the public HTTP port. Off unless configured; the
// configuration refuses a non-loopback address without admin.allow_public.
func (gw *gateway) startAdmin() error {
	addr := gw.cfg.Admin.Listen
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gw.registry, promhttp.HandlerOpts{Registry: gw.registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", addr, err)
	}
	gw.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = gw.admin.Serve(ln) }()
	gw.log.Info("admin listener (/metrics, pprof) started", "addr", ln.Addr().String())
	return nil
}
