package spamscore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/netip"
	"net/textproto"
	"net/url"
	"path"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

// Bounds of the MIME walk, beyond max_scan_bytes.
const (
	maxDepth = 8
	maxParts = 200
)

// executableExts are attachment extensions that run when opened.
var executableExts = map[string]bool{
	"exe": true, "scr": true, "com": true, "pif": true, "bat": true, "cmd": true,
	"vbs": true, "vbe": true, "js": true, "jse": true, "wsf": true, "wsh": true,
	"msi": true, "jar": true, "ps1": true, "hta": true, "cpl": true, "lnk": true,
	"reg": true, "dll": true, "apk": true, "app": true,
}

// macroExts are Office documents that carry macros.
var macroExts = map[string]bool{
	"docm": true, "dotm": true, "xlsm": true, "xltm": true, "xlsb": true, "xlam": true,
	"pptm": true, "potm": true, "ppsm": true, "ppam": true, "sldm": true,
}

// headerGetter is the part of mail.Header and textproto.MIMEHeader used here.
type headerGetter interface{ Get(string) string }

// scan is the state of one body walk.
type scan struct {
	r           *rules
	hits        *hitSet
	parts       int
	sawPlain    bool
	sawHTML     bool
	sawMultiAlt bool
}

// scanBody walks the MIME tree of a message whose body is body (already
// bounded by max_scan_bytes). A truncated body ends the walk quietly: what
// was read has been scored.
func scanBody(r *rules, h headerGetter, body io.Reader, hits *hitSet) error {
	s := &scan{r: r, hits: hits}
	err := s.part(h, body, 0)
	if s.sawHTML && !s.sawPlain {
		hits.set(symHTMLOnly)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// part scans one MIME entity.
func (s *scan) part(h headerGetter, body io.Reader, depth int) error {
	s.parts++
	if s.parts > maxParts || depth > maxDepth {
		return nil
	}
	ct := h.Get("Content-Type")
	ctype, ok := plainMediaType(ct)
	var params map[string]string
	if !ok {
		var err error
		if ctype, params, err = mime.ParseMediaType(ct); err != nil {
			ctype, params = "text/plain", nil
		}
	}
	if name := filename(h, params); name != "" {
		s.attachment(name, ctype)
		return nil
	}
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		if params["boundary"] == "" {
			return nil
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
			if err := s.part(textproto.MIMEHeader(p.Header), p, depth+1); err != nil {
				return err
			}
		}
	case ctype == "message/rfc822":
		return nil // a forwarded message is scored by its own merits elsewhere
	case ctype == "text/plain" || ctype == "text/html":
		if strings.EqualFold(h.Get("Content-Disposition"), "attachment") {
			return nil
		}
		if ctype == "text/plain" {
			s.sawPlain = true
		} else {
			s.sawHTML = true
		}
		text, err := readAll(decode(h.Get("Content-Transfer-Encoding"), body))
		s.urls(text)
		return err
	case ctype == "application/x-msdownload" || ctype == "application/x-dosexec" || ctype == "application/x-msdos-program":
		s.hits.set(symAttachExe)
	}
	return nil
}

// decode undoes a Content-Transfer-Encoding.
func decode(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &stripSpace{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// filename is an entity's attachment name, from Content-Disposition or the
// Content-Type name parameter, RFC 2047 and 2231 encodings decoded.
func filename(h headerGetter, ctParams map[string]string) string {
	name := ""
	if cd := h.Get("Content-Disposition"); cd != "" { // "" does not parse
		if _, p, err := mime.ParseMediaType(cd); err == nil {
			name = p["filename"]
		}
	}
	if name == "" {
		name = ctParams["name"]
	}
	if name == "" {
		return ""
	}
	if dec, err := wordDecoder.DecodeHeader(name); err == nil {
		name = dec
	}
	return strings.TrimSpace(name)
}

// plainMediaType reads the common plain forms of a Content-Type value,
// "type/subtype" and "type/subtype; charset=token", without
// mime.ParseMediaType's map: the media type in lower case, and ok. ok is
// false for any other value, which ParseMediaType must read. When ok,
// ParseMediaType gives the same media type and no parameter but charset
// (so neither a boundary nor a name); FuzzPlainMediaType checks it.
func plainMediaType(v string) (string, bool) {
	typ, rest, _ := strings.Cut(v, ";")
	slash := strings.IndexByte(typ, '/')
	if slash <= 0 || slash == len(typ)-1 || !isToken(typ[:slash]) || !isToken(typ[slash+1:]) {
		return "", false
	}
	if len(typ) < len(v) {
		rest = strings.TrimLeft(rest, " ")
		name, val, ok := strings.Cut(rest, "=")
		if !ok || !strings.EqualFold(name, "charset") || !isToken(val) {
			return "", false
		}
	}
	return strings.ToLower(typ), true
}

// isToken reports whether s is a non-empty RFC 2045 token: printable
// ASCII but for space and the tspecials.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// attachment scores one attachment's file name and type.
func (s *scan) attachment(name, ctype string) {
	base := strings.ToLower(strings.TrimRight(path.Base(strings.ReplaceAll(name, "\\", "/")), ". "))
	ext := strings.TrimPrefix(path.Ext(base), ".")
	switch {
	case executableExts[ext]:
		s.hits.set(symAttachExe)
		if prev := strings.TrimPrefix(path.Ext(strings.TrimSuffix(base, "."+ext)), "."); prev != "" && len(prev) <= 5 {
			s.hits.set(symAttachDoubleExt)
		}
	case macroExts[ext]:
		s.hits.set(symAttachMacro)
	case ctype == "application/x-msdownload" || ctype == "application/x-dosexec":
		s.hits.set(symAttachExe)
	}
}

// urls scores the http(s) URLs in text: each "http://" or "https://", in
// any case, to the first isURLEnd byte. A URL is lower-cased (as
// bytes.ToLower) for url.Parse; the text is not: lower-casing maps no
// other character onto an ASCII one of "https://" or an isURLEnd byte, so
// the URLs found are those of the lower-cased text. The search is for the
// ':' of the scheme (IndexByte, assembly in Go's wasm port too), rare in
// prose, where "http" is not.
func (s *scan) urls(text []byte) {
	for i := 0; i < len(text); {
		j := bytes.IndexByte(text[i:], ':')
		if j < 0 {
			return
		}
		colon := i + j
		i = colon + 1
		start := schemeStart(text, colon)
		if start < 0 {
			continue
		}
		end := colon + 3
		for end < len(text) && !isURLEnd(text[end]) {
			end++
		}
		i = end
		s.url(bytes.ToLower(text[start:end]))
	}
}

// url scores one URL, lower case: a host that is an IP address or a
// shortener.
func (s *scan) url(lower []byte) {
	u, err := url.Parse(string(lower))
	if err != nil {
		return
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if _, err := netip.ParseAddr(host); err == nil || isNumericHost(host) {
		s.hits.set(symURLIP)
	}
	if s.r.shorteners[strings.TrimPrefix(host, "www.")] {
		s.hits.set(symURLShortener)
	}
}

// schemeStart returns where "http" or "https", in any case, starts right
// before text[colon] when "//" follows it, else -1.
func schemeStart(text []byte, colon int) int {
	if colon+3 > len(text) || text[colon+1] != '/' || text[colon+2] != '/' {
		return -1
	}
	start := colon - 4
	if start >= 0 && text[colon-1]|0x20 == 's' {
		start--
	}
	if start < 0 || text[start]|0x20 != 'h' || text[start+1]|0x20 != 't' || text[start+2]|0x20 != 't' || text[start+3]|0x20 != 'p' {
		return -1
	}
	return start
}

// isURLEnd ends a URL in text or HTML.
func isURLEnd(b byte) bool {
	return b <= ' ' || b == '"' || b == '\'' || b == '<' || b == '>' || b == ')' || b == '}' || b == '\\' || b == 0x7f
}

// isNumericHost catches the decimal and hex forms browsers accept for IPv4
// ("3232235777", "0xc0a80001").
func isNumericHost(h string) bool {
	if h == "" {
		return false
	}
	if strings.HasPrefix(h, "0x") {
		h = h[2:]
		for _, c := range h {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return h != ""
	}
	for _, c := range h {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// readAll is io.ReadAll, without the copy for the message's own body.
func readAll(r io.Reader) ([]byte, error) {
	if b, ok := r.(*lazyBody); ok {
		return b.rest()
	}
	return io.ReadAll(r)
}

// lazyBody is the message body, at most limit bytes of it, read from the
// host in one go at its first Read into bodyBuf.
type lazyBody struct {
	c      *sdk.Ctx
	limit  int64
	b      []byte // not yet read
	err    error  // the read error after b; nil: io.EOF
	loaded bool
}

// keptBody is the lazyBody a wasm instance reuses (sdk.InstanceCache):
// one allocation less a message.
var keptBody lazyBody

// newLazyBody returns the call's body reader, at most limit bytes.
func newLazyBody(c *sdk.Ctx, limit int64) *lazyBody {
	if !sdk.InstanceCache {
		return &lazyBody{c: c, limit: limit}
	}
	keptBody = lazyBody{c: c, limit: limit}
	return &keptBody
}

// bodyBuf is the body buffer, kept from call to call (an instance runs one
// call at a time) up to keepBody bytes.
var bodyBuf []byte

// keepBody is the largest body buffer kept between calls.
const keepBody = 1 << 20

func (l *lazyBody) load() {
	if !l.loaded {
		l.loaded = true
		l.b, l.err = l.c.AppendBody(bodyBuf[:0], l.limit)
		bodyBuf = l.b[:0]
	}
}

func (l *lazyBody) Read(p []byte) (int, error) {
	l.load()
	if len(l.b) == 0 {
		if l.err != nil {
			return 0, l.err
		}
		return 0, io.EOF
	}
	n := copy(p, l.b)
	l.b = l.b[n:]
	return n, nil
}

// rest returns what is left to read and the error after it, as io.ReadAll
// would, without copying: the slice is valid until release.
func (l *lazyBody) rest() ([]byte, error) {
	l.load()
	b := l.b
	l.b = nil
	return b, l.err
}

// release ends the call's use of the body: a large buffer is not kept.
func (l *lazyBody) release() {
	if cap(bodyBuf) > keepBody {
		bodyBuf = nil
	}
}

// stripSpace drops the line breaks and spaces base64 bodies carry.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	w := 0
	for _, b := range p[:n] {
		if b != '\r' && b != '\n' && b != ' ' && b != '\t' {
			p[w] = b
			w++
		}
	}
	return w, err
}
