package admin

import (
	"net/http"
	"net/http/pprof"
)

// handlePprof serves Go's profiles under /debug/pprof/ on the admin socket,
// so that `go tool pprof` can read a running server's CPU, heap and
// goroutines without a network port:
//
//	curl --unix-socket admin.sock -o cpu.pprof 'http://sluice/debug/pprof/profile?seconds=30'
//	go tool pprof -top sluice cpu.pprof
//
// Only who may use the admin socket may profile.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
