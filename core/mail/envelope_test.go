package mail

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRecipientForwardJSON: the Forward mark is stored with the queued
// recipient and left out when unset, so envelopes queued before it existed
// read back the same.
func TestRecipientForwardJSON(t *testing.T) {
	for _, tt := range []struct {
		r    Recipient
		want string
	}{
		{Recipient{Addr: "a@example.com"}, `{"addr":"a@example.com","state":0,"attempts":0}`},
		{Recipient{Addr: "x@example.net", Forward: true}, `{"addr":"x@example.net","forward":true,"state":0,"attempts":0}`},
	} {
		b, err := json.Marshal(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("Marshal(%+v) = %s, want %s", tt.r, b, tt.want)
		}
		var back Recipient
		if err := json.NewDecoder(strings.NewReader(string(b))).Decode(&back); err != nil {
			t.Fatal(err)
		}
		if back.Addr != tt.r.Addr || back.Forward != tt.r.Forward {
			t.Errorf("round trip of %+v gave %+v", tt.r, back)
		}
	}
}
