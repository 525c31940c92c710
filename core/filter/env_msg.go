package filter

import (
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
)

// Header returns the index-th (0-based) value of the named field, with
// folding removed and surrounding space trimmed.
func (e *Env) Header(name string, index int) (string, pluginapi.Status) {
	if st := e.permit(pluginapi.FuncGetHeader); st != pluginapi.StatusOK {
		return "", st
	}
	n := 0
	for _, f := range e.txn.Header {
		if strings.EqualFold(f.Name, name) {
			if n == index {
				return unfold(f.Value), pluginapi.StatusOK
			}
			n++
		}
	}
	return "", pluginapi.StatusNotFound
}

// Headers returns the header section as it stands, CRLF line endings,
// without the empty line that ends it.
func (e *Env) Headers() ([]byte, pluginapi.Status) {
	if st := e.permit(pluginapi.FuncGetHeaders); st != pluginapi.StatusOK {
		return nil, st
	}
	return FormatHeader(e.txn.Header), pluginapi.StatusOK
}

// ReadBody copies body bytes from off into p.
func (e *Env) ReadBody(off int64, p []byte) (int, pluginapi.Status) {
	if st := e.permit(pluginapi.FuncReadBody); st != pluginapi.StatusOK {
		return 0, st
	}
	if off < 0 {
		return 0, pluginapi.StatusBadArgument
	}
	if off >= int64(len(e.txn.Body)) {
		return 0, pluginapi.StatusOK
	}
	return copy(p, e.txn.Body[off:]), pluginapi.StatusOK
}

// AddHeader prepends a field (as trace and filter headers are).
func (e *Env) AddHeader(name, value string) pluginapi.Status {
	if st := e.checkField(pluginapi.FuncAddHeader, name, value); st != pluginapi.StatusOK {
		return st
	}
	e.txn.Header = append([]Field{{Name: name, Value: " " + value}}, e.txn.Header...)
	e.txn.HeaderEdited = true
	return pluginapi.StatusOK
}

// SetHeader replaces every occurrence of a field with one, in the place of
// the first, or prepends it when absent.
func (e *Env) SetHeader(name, value string) pluginapi.Status {
	if st := e.checkField(pluginapi.FuncSetHeader, name, value); st != pluginapi.StatusOK {
		return st
	}
	out := e.txn.Header[:0:0]
	done := false
	for _, f := range e.txn.Header {
		if strings.EqualFold(f.Name, name) {
			if !done {
				out = append(out, Field{Name: name, Value: " " + value})
				done = true
			}
			continue
		}
		out = append(out, f)
	}
	if !done {
		out = append([]Field{{Name: name, Value: " " + value}}, out...)
	}
	e.txn.Header = out
	e.txn.HeaderEdited = true
	return pluginapi.StatusOK
}

// DelHeader deletes every occurrence of a field; StatusNotFound if none.
func (e *Env) DelHeader(name string) pluginapi.Status {
	if st := e.permit(pluginapi.FuncDelHeader); st != pluginapi.StatusOK {
		return st
	}
	out := e.txn.Header[:0:0]
	for _, f := range e.txn.Header {
		if !strings.EqualFold(f.Name, name) {
			out = append(out, f)
		}
	}
	if len(out) == len(e.txn.Header) {
		return pluginapi.StatusNotFound
	}
	e.txn.Header = out
	e.txn.HeaderEdited = true
	return pluginapi.StatusOK
}

// checkField checks the permission for fn and a field it would write.
func (e *Env) checkField(fn, name, value string) pluginapi.Status {
	if st := e.permit(fn); st != pluginapi.StatusOK {
		return st
	}
	if !validFieldName(name) || len(value) > maxValueLen {
		return pluginapi.StatusBadArgument
	}
	// Values may not carry line breaks: a plugin cannot inject fields or
	// end the header section.
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '\r' || c == '\n' || c == 0 {
			return pluginapi.StatusBadArgument
		}
	}
	return pluginapi.StatusOK
}

// validFieldName checks RFC 5322 ftext: printable ASCII except ':'.
func validFieldName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// AddRcpt adds a recipient.
func (e *Env) AddRcpt(addr string) pluginapi.Status {
	if st := e.checkRcpt(pluginapi.FuncAddRcpt, addr); st != pluginapi.StatusOK {
		return st
	}
	for _, r := range e.txn.Rcpts {
		if strings.EqualFold(r, addr) {
			return pluginapi.StatusOK
		}
	}
	e.txn.Rcpts = append(e.txn.Rcpts, addr)
	return pluginapi.StatusOK
}

// DelRcpt removes a recipient; at the rcpt hook removing the recipient under
// consideration drops it.
func (e *Env) DelRcpt(addr string) pluginapi.Status {
	if st := e.permit(pluginapi.FuncDelRcpt); st != pluginapi.StatusOK {
		return st
	}
	if e.hook == pluginapi.HookRcpt && strings.EqualFold(e.txn.Rcpt, addr) {
		e.txn.Rcpt = ""
		return pluginapi.StatusOK
	}
	for i, r := range e.txn.Rcpts {
		if strings.EqualFold(r, addr) {
			e.txn.Rcpts = append(e.txn.Rcpts[:i:i], e.txn.Rcpts[i+1:]...)
			return pluginapi.StatusOK
		}
	}
	return pluginapi.StatusNotFound
}

// RewriteRcpt replaces a recipient.
func (e *Env) RewriteRcpt(old, new string) pluginapi.Status {
	if st := e.checkRcpt(pluginapi.FuncRewriteRcpt, new); st != pluginapi.StatusOK {
		return st
	}
	if e.hook == pluginapi.HookRcpt && strings.EqualFold(e.txn.Rcpt, old) {
		e.txn.Rcpt = new
		return pluginapi.StatusOK
	}
	for i, r := range e.txn.Rcpts {
		if strings.EqualFold(r, old) {
			e.txn.Rcpts[i] = new
			return pluginapi.StatusOK
		}
	}
	return pluginapi.StatusNotFound
}

// checkRcpt checks the permission for fn and an address it would write.
func (e *Env) checkRcpt(fn, addr string) pluginapi.Status {
	if st := e.permit(fn); st != pluginapi.StatusOK {
		return st
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || len(addr) > 254 || !printable(addr) || strings.ContainsAny(addr, " <>") {
		return pluginapi.StatusBadArgument
	}
	return pluginapi.StatusOK
}

// DNSLookup answers a query; needs the "dns" grant.
func (e *Env) DNSLookup(qtype int32, name string) ([]byte, pluginapi.Status) {
	if st := e.permit(pluginapi.FuncDNSLookup); st != pluginapi.StatusOK {
		return nil, st
	}
	if e.spec.Resolver == nil {
		return nil, pluginapi.StatusDenied
	}
	switch qtype {
	case pluginapi.DNSA, pluginapi.DNSAAAA, pluginapi.DNSMX, pluginapi.DNSTXT, pluginapi.DNSPTR:
	default:
		return nil, pluginapi.StatusBadArgument
	}
	if name == "" || len(name) > 255 || !printable(name) {
		return nil, pluginapi.StatusBadArgument
	}
	answers, err := e.spec.Resolver.Lookup(e.ctx, uint16(qtype), name)
	if err != nil {
		return nil, pluginapi.StatusTempFail
	}
	if len(answers) == 0 {
		return nil, pluginapi.StatusNotFound
	}
	var b strings.Builder
	for _, a := range answers {
		b.WriteString(a)
		b.WriteByte('\n')
	}
	return []byte(b.String()), pluginapi.StatusOK
}

// kvKey checks the permission for fn and namespaces key.
func (e *Env) kvKey(fn, key string) (string, pluginapi.Status) {
	if st := e.permit(fn); st != pluginapi.StatusOK {
		return "", st
	}
	if e.spec.KV == nil {
		return "", pluginapi.StatusDenied
	}
	if key == "" || len(key) > maxNameLen {
		return "", pluginapi.StatusBadArgument
	}
	return e.spec.Plugin + "/" + key, pluginapi.StatusOK
}

// KVGet reads a key of the plugin's store.
func (e *Env) KVGet(key string) ([]byte, pluginapi.Status) {
	k, st := e.kvKey(pluginapi.FuncKVGet, key)
	if st != pluginapi.StatusOK {
		return nil, st
	}
	v, ok, err := e.spec.KV.Get(e.ctx, k)
	switch {
	case err != nil:
		return nil, pluginapi.StatusTempFail
	case !ok:
		return nil, pluginapi.StatusNotFound
	}
	return v, pluginapi.StatusOK
}

// KVSet writes a key with a time to live (0: none).
func (e *Env) KVSet(key string, value []byte, ttlMS int64) pluginapi.Status {
	k, st := e.kvKey(pluginapi.FuncKVSet, key)
	if st != pluginapi.StatusOK {
		return st
	}
	if len(value) > maxValueLen || ttlMS < 0 {
		return pluginapi.StatusBadArgument
	}
	if err := e.spec.KV.Set(e.ctx, k, value, time.Duration(ttlMS)*time.Millisecond); err != nil {
		return pluginapi.StatusTempFail
	}
	return pluginapi.StatusOK
}

// KVIncr atomically adds delta to a counter and returns the new value.
func (e *Env) KVIncr(key string, delta, ttlMS int64) (int64, pluginapi.Status) {
	k, st := e.kvKey(pluginapi.FuncKVIncr, key)
	if st != pluginapi.StatusOK {
		return 0, st
	}
	if ttlMS < 0 {
		return 0, pluginapi.StatusBadArgument
	}
	n, err := e.spec.KV.Incr(e.ctx, k, delta, time.Duration(ttlMS)*time.Millisecond)
	if err != nil {
		return 0, pluginapi.StatusTempFail
	}
	return n, pluginapi.StatusOK
}

// KVDel deletes a key.
func (e *Env) KVDel(key string) pluginapi.Status {
	k, st := e.kvKey(pluginapi.FuncKVDel, key)
	if st != pluginapi.StatusOK {
		return st
	}
	if err := e.spec.KV.Del(e.ctx, k); err != nil {
		return pluginapi.StatusTempFail
	}
	return pluginapi.StatusOK
}

// MetricAdd adds to a counter; needs the "metrics" grant.
func (e *Env) MetricAdd(name string, delta float64) pluginapi.Status {
	if st := e.permit(pluginapi.FuncMetricAdd); st != pluginapi.StatusOK {
		return st
	}
	if e.spec.Metrics == nil {
		return pluginapi.StatusDenied
	}
	if !validFieldName(name) || delta != delta {
		return pluginapi.StatusBadArgument
	}
	e.spec.Metrics.Add(e.spec.Plugin, name, delta)
	return pluginapi.StatusOK
}

// unfold removes header folding and trims surrounding white space.
func unfold(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	}
	return strings.TrimSpace(v)
}

// ParseHeader splits a message into its header fields and body. A message
// without a header/body separator is all header.
func ParseHeader(msg []byte) ([]Field, []byte) {
	var fields []Field
	i := 0
	for i < len(msg) {
		if msg[i] == '\r' && i+1 < len(msg) && msg[i+1] == '\n' {
			return fields, msg[i+2:]
		}
		end := i
		for {
			nl := indexCRLF(msg, end)
			if nl < 0 {
				end = len(msg)
				break
			}
			end = nl + 2
			if end >= len(msg) || (msg[end] != ' ' && msg[end] != '\t') {
				break
			}
		}
		line := string(msg[i:end])
		line = strings.TrimSuffix(line, "\r\n")
		if c := strings.IndexByte(line, ':'); c > 0 {
			fields = append(fields, Field{Name: line[:c], Value: line[c+1:]})
		} else if len(fields) > 0 {
			fields[len(fields)-1].Value += "\r\n" + line
		}
		i = end
	}
	return fields, nil
}

func indexCRLF(b []byte, from int) int {
	for j := from; j+1 < len(b); j++ {
		if b[j] == '\r' && b[j+1] == '\n' {
			return j
		}
	}
	return -1
}

// FormatHeader writes fields back as a header section, CRLF line endings,
// without the terminating empty line.
func FormatHeader(fields []Field) []byte {
	n := 0
	for _, f := range fields {
		n += len(f.Name) + len(f.Value) + 3
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = append(b, f.Name...)
		b = append(b, ':')
		b = append(b, f.Value...)
		b = append(b, '\r', '\n')
	}
	return b
}
