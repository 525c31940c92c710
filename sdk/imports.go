//go:build wasip1

package sdk

// The host functions, imported from pluginapi.HostModule ("sluice"). A Go
// string parameter crosses as (pointer, length); see pluginapi/ABI.md.

//go:wasmimport sluice get_prop
func getProp(prop int32, buf *byte, cap int32) int32

//go:wasmimport sluice get_header
func getHeader(name string, index int32, buf *byte, cap int32) int32

//go:wasmimport sluice get_headers
func getHeaders(buf *byte, cap int32) int32

//go:wasmimport sluice read_body
func readBody(off int64, buf *byte, cap int32) int32

//go:wasmimport sluice add_header
func addHeader(name, value string) int32

//go:wasmimport sluice set_header
func setHeader(name, value string) int32

//go:wasmimport sluice del_header
func delHeader(name string) int32

//go:wasmimport sluice add_rcpt
func addRcpt(addr string) int32

//go:wasmimport sluice del_rcpt
func delRcpt(addr string) int32

//go:wasmimport sluice rewrite_rcpt
func rewriteRcpt(old, new string) int32

//go:wasmimport sluice get_note
func getNote(key string, buf *byte, cap int32) int32

//go:wasmimport sluice set_note
func setNote(key, value string) int32

//go:wasmimport sluice get_config
func getConfig(key string, buf *byte, cap int32) int32

//go:wasmimport sluice log
func hostLog(level int32, msg string)

//go:wasmimport sluice now
func now() int64

//go:wasmimport sluice add_score
func addScore(symbol string, score float64) int32

//go:wasmimport sluice set_reply
func setReply(code int32, enhanced, text string) int32

//go:wasmimport sluice set_route
func setRoute(route string) int32

//go:wasmimport sluice dns_lookup
func dnsLookup(qtype int32, name string, buf *byte, cap int32) int32

//go:wasmimport sluice kv_get
func kvGet(key string, buf *byte, cap int32) int32

//go:wasmimport sluice kv_get_many
func kvGetMany(keys string, buf *byte, cap int32) int32

//go:wasmimport sluice kv_set
func kvSet(key string, value *byte, valueLen int32, ttlMS int64) int32

//go:wasmimport sluice kv_incr
func kvIncr(key string, delta, ttlMS int64, out *int64) int32

//go:wasmimport sluice kv_incr_many
func kvIncrMany(keys string, args *int64, out *int64) int32

//go:wasmimport sluice kv_del
func kvDel(key string) int32

//go:wasmimport sluice metric_add
func metricAdd(name string, delta float64) int32
