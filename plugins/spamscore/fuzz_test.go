package spamscore

import (
	"bytes"
	"io"
	"net/mail"
	"testing"
)

// FuzzScore runs the header checks and the MIME walk on arbitrary
// messages: no panic, no hang, only known symbols.
func FuzzScore(f *testing.F) {
	f.Add(msg(nil, "hi http://192.0.2.1/\n"), "mx; spf=fail; dkim=fail (x); dmarc=fail")
	f.Add(multipartMsg("a.pdf.exe", "application/octet-stream"), "")
	f.Add(msg([]string{"Content-Type: multipart/alternative; boundary=a"}, htmlAlt), "x")
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"), ";;=")
	f.Fuzz(func(t *testing.T, m []byte, ar string) {
		r, err := newRules(settings{LocalDomains: []string{"example.com"}, MaxScanBytes: 4096})
		if err != nil {
			t.Fatal(err)
		}
		hits := map[string]bool{}
		checkAuth(ar, hits)
		parsed, err := mail.ReadMessage(bytes.NewReader(m))
		if err != nil {
			return
		}
		checkHeaders(r, parsed.Header, "a@example.org", hits)
		_ = scanBody(r, parsed.Header, io.LimitReader(parsed.Body, r.maxScan), hits)
		for name := range hits {
			if _, ok := defaultWeights[name]; !ok {
				t.Fatalf("unknown symbol %q", name)
			}
		}
	})
}
