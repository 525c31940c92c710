package mtasts

import "testing"

// FuzzParse: any policy body parses or fails cleanly, and a parsed one
// answers Matches, Strings and MXList.
func FuzzParse(f *testing.F) {
	f.Add("version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n", "mx1.example.com")
	f.Add("version: STSv1\r\nmode: testing\r\nmx: a.example\r\nmax_age: 0\r\n", "b.example")
	f.Add("version: STSv1\nmode: none\nmax_age: 31557600\nextra: x\n", "")
	f.Fuzz(func(t *testing.T, text, host string) {
		p, err := Parse("example.com", text)
		if err != nil {
			return
		}
		p.Matches(host)
		p.Strings()
		p.MXList()
		if p.MaxAge < 0 || p.MaxAge > maxMaxAge {
			t.Errorf("max_age %v out of range", p.MaxAge)
		}
	})
}
