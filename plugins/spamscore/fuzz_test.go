package spamscore

import (
	"bytes"
	"io"
	"mime"
	"net/mail"
	"strings"
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
		var hits hitSet
		checkAuth(ar, &hits)
		parsed, err := mail.ReadMessage(bytes.NewReader(m))
		if err != nil {
			return
		}
		checkHeaders(r, parsed.Header, "a@example.org", &hits)
		_ = scanBody(r, parsed.Header, io.LimitReader(parsed.Body, r.maxScan), &hits)
		if hits >= 1<<numSyms {
			t.Fatalf("unknown symbols in %b", hits)
		}
	})
}

// FuzzPlainMediaType checks the plain Content-Type forms against
// mime.ParseMediaType: where plainMediaType reads a value, ParseMediaType
// accepts it with the same media type and no parameter but charset.
func FuzzPlainMediaType(f *testing.F) {
	for _, v := range []string{"text/plain; charset=us-ascii", "TEXT/Html;Charset=UTF-8", "text/plain",
		"multipart/mixed; boundary=b", "text/plain; charset=\"x\"", "text/plain ; charset=x", "text/plain; charset=a; charset=b",
		"text/plain; charset*=utf-8''x", "a/b/c", "/plain", "text/", "text/plain;", "text/plain; charset="} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := plainMediaType(v)
		if !ok {
			return
		}
		want, params, err := mime.ParseMediaType(v)
		if err != nil || got != want {
			t.Fatalf("%q: plainMediaType %q; ParseMediaType %q, %v", v, got, want, err)
		}
		for k := range params {
			if k != "charset" {
				t.Fatalf("%q: ParseMediaType found the parameter %q", v, k)
			}
		}
	})
}

// FuzzNamesLocal checks namesLocal's ASCII comparison against
// lower-casing the name first.
func FuzzNamesLocal(f *testing.F) {
	for _, s := range [][2]string{{"Load Generator", "hosting.example"}, {"HOSTING.EXAMPLE Support", "hosting.example"},
		{"xhosting.example", "hosting.example"}, {"Billing hosting.example-x", "hosting.example"}, {"\u212aelvin.test", "kelvin.test"},
		{"a.b a.b", "a.b"}, {"", "a.b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, domain string) {
		domains := []string{strings.ToLower(domain), "hosting.example"}
		if got, want := namesLocal(domains, name), namesLocalLower(domains, strings.ToLower(name)); got != want {
			t.Fatalf("namesLocal(%q, %q) = %v, lower-cased first %v", domains, name, got, want)
		}
	})
}
