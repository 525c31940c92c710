package mail

import (
	"errors"
	"testing"
)

func TestParseEnhanced(t *testing.T) {
	tests := []struct {
		in   string
		want EnhancedCode
		ok   bool
	}{
		{"5.1.1", EnhancedCode{5, 1, 1}, true},
		{"4.7.100", EnhancedCode{4, 7, 100}, true},
		{"2.0.0", EnhancedCode{2, 0, 0}, true},
		{"3.0.0", EnhancedCode{}, false},
		{"5.1", EnhancedCode{}, false},
		{"5.1.1.1", EnhancedCode{}, false},
		{"55.1.1", EnhancedCode{}, false},
		{"5.1000.1", EnhancedCode{}, false},
		{"5.-1.1", EnhancedCode{}, false},
		{"5.a.1", EnhancedCode{}, false},
		{"5..1", EnhancedCode{}, false},
		{"", EnhancedCode{}, false},
	}
	for _, tt := range tests {
		got, err := ParseEnhanced(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseEnhanced(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestCutEnhanced(t *testing.T) {
	e, rest, ok := CutEnhanced("2.1.5 Ok, delivered")
	if !ok || e != (EnhancedCode{2, 1, 5}) || rest != "Ok, delivered" {
		t.Errorf("CutEnhanced = %v %q %v", e, rest, ok)
	}
	if _, rest, ok := CutEnhanced("Ok 2.1.5"); ok || rest != "Ok 2.1.5" {
		t.Errorf("CutEnhanced without a code = %q %v", rest, ok)
	}
}

func TestReplyCheck(t *testing.T) {
	tests := []struct {
		r    Reply
		want error
	}{
		{Reply{Code: 550, Enhanced: EnhancedCode{5, 7, 1}, Text: "no"}, nil},
		{Reply{Code: 451, Text: "later"}, nil},
		{Reply{Code: 250, Enhanced: EnhancedCode{2, 0, 0}}, nil},
		{Reply{Code: 354}, ErrReplyCode},
		{Reply{Code: 199}, ErrReplyCode},
		{Reply{Code: 600}, ErrReplyCode},
		{Reply{Code: 550, Enhanced: EnhancedCode{4, 7, 1}}, ErrReplyClass},
		{Reply{Code: 550, Text: "line\r\nbreak"}, ErrReplyText},
		{Reply{Code: 550, Text: "jösé"}, ErrReplyText},
		{Reply{Code: 550, Text: string(make([]byte, 401))}, ErrReplyText},
	}
	for _, tt := range tests {
		if err := tt.r.Check(); !errors.Is(err, tt.want) {
			t.Errorf("%+v.Check() = %v, want %v", tt.r, err, tt.want)
		}
	}
}

func TestReplyString(t *testing.T) {
	var err error = NewReply(550, "5.1.1", "User unknown")
	if err.Error() != "550 5.1.1 User unknown" {
		t.Errorf("Error() = %q", err.Error())
	}
	if s := (Reply{Code: 421}).String(); s != "421" {
		t.Errorf("String() = %q", s)
	}
}

func TestWireReply(t *testing.T) {
	tests := []struct {
		code int
		enh  [3]int
		text string
		want string
	}{
		{550, [3]int{5, 1, 1}, "User\n unknown", "550 5.1.1 User unknown"},
		{550, [3]int{-1, -1, -1}, "no", "550 5.2.0 no"},
		{451, [3]int{5, 1, 1}, "wrong class", "451 4.3.0 wrong class"},
		{250, [3]int{0, 0, 0}, "ok", "250 2.0.0 ok"},
		{554, [3]int{-1, -1, -1}, "x", "554 5.0.0 x"},
		{432, [3]int{-1, -1, -1}, "x", "432 4.0.0 x"},
	}
	for _, tt := range tests {
		if got := WireReply(tt.code, tt.enh, tt.text).String(); got != tt.want {
			t.Errorf("WireReply(%d, %v, %q) = %q, want %q", tt.code, tt.enh, tt.text, got, tt.want)
		}
	}
}
