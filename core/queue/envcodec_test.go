package queue

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// benchEnvelope is an envelope as an SMTP session stores it: one
// recipient, the client's fields, a TLS line and Authentication-Results.
func benchEnvelope() *mail.Envelope {
	now := time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)
	return &mail.Envelope{
		ID: "0001HG7Y3K5QW2", From: "bench@client.test",
		Rcpts:    []mail.Recipient{{Addr: "user@sink.test"}},
		ClientIP: "127.0.0.1", Helo: "client.test", ClientPort: 40122, ClientRDNS: "localhost",
		TLS: "TLSv1.3 TLS_AES_128_GCM_SHA256", Listener: "smtp", LocalIP: "127.0.0.1",
		AuthResults: "bench.local; spf=none smtp.mailfrom=client.test; dkim=none; dmarc=none header.from=client.test",
		Received:    now, NextAttempt: now, Size: 10240,
	}
}

// fullEnvelope sets every field, with text that needs escaping.
func fullEnvelope() *mail.Envelope {
	t := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	return &mail.Envelope{
		ID: "0001ABC", From: "jösé@exämple.test", Ret: "HDRS", EnvID: "e<1>&\"2\"",
		SMTPUTF8: true, Body8Bit: true, ClientIP: "2001:db8::1", Helo: "[2001:db8::1]",
		AuthUser: "alice", Trusted: true, ClientPort: 65535, ClientRDNS: "h.example",
		TLS: "TLSv1.2", Listener: "submission", LocalIP: "::1", AuthResults: "a;\r\n\tb=\"c\\d\"",
		Received: t, NextAttempt: t.Add(time.Hour), Attempts: 7, Held: true, HoldReason: "quarantined: \u2028 x",
		HeldAt: t.Add(time.Minute), DelayWarned: true, Notes: map[string]string{"k": "v", "": "\x00\x1f"},
		Size: 1 << 40,
		Rcpts: []mail.Recipient{
			{Addr: "a@b.test", Notify: []string{"SUCCESS", "DELAY"}, ORCPT: "rfc822;a@b.test", Forward: true,
				State: mail.Delivered, Attempts: 2, LastError: "451 4.7.1 try\nagain", DSNCode: "4.7.1",
				Relay: "mx.b.test[192.0.2.1]:25", TLS: "TLSv1.3 verified=dane", TLSPolicy: "dane"},
			{Addr: "c@d.test", State: mail.Failed},
			{Addr: "e@f.test"},
		},
	}
}

// sameAsEncodingJSON fails unless decodeEnvelope reads what putEnvelope
// would store of v (v as encoding/json reads it, written by encoding/json:
// exact key names, its escapes) as encoding/json reads it.
func sameAsEncodingJSON(t *testing.T, v []byte) {
	t.Helper()
	var in mail.Envelope
	if json.Unmarshal(v, &in) != nil {
		return
	}
	stored, err := json.Marshal(&in)
	if err != nil {
		return // not storable (a time beyond year 9999)
	}
	var want, got mail.Envelope
	if err := json.Unmarshal(stored, &want); err != nil {
		t.Fatalf("encoding/json cannot read its own %q: %v", stored, err)
	}
	if err := decodeEnvelope(stored, &got); err != nil {
		t.Fatalf("decodeEnvelope(%q) = %v; encoding/json read it", stored, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeEnvelope(%q):\n got %+v\nwant %+v", stored, got, want)
	}
}

// TestDecodeEnvelopeAsEncodingJSON: what putEnvelope writes, decodeEnvelope
// reads back as encoding/json would, every field included.
func TestDecodeEnvelopeAsEncodingJSON(t *testing.T) {
	for _, env := range []*mail.Envelope{benchEnvelope(), fullEnvelope(), {}} {
		v, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		sameAsEncodingJSON(t, v)
		var back mail.Envelope
		if err := decodeEnvelope(v, &back); err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(&back); string(again) != string(v) {
			t.Errorf("round trip changed the envelope:\n%s\n%s", v, again)
		}
	}
}

// FuzzDecodeEnvelope holds decodeEnvelope to encoding/json on what
// putEnvelope would store of any input encoding/json accepts (seeded with
// stored envelopes). Only stored envelopes matter: goccy/go-json matches
// key names exactly where encoding/json ignores their case, for one.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, env := range []*mail.Envelope{benchEnvelope(), fullEnvelope()} {
		v, _ := json.Marshal(env)
		f.Add(v)
	}
	f.Add([]byte(`{"ID":"x","RCPTS":[{"Addr":"a"}],"notes":{"a":"\ud800"}}`))
	f.Fuzz(func(t *testing.T, v []byte) { sameAsEncodingJSON(t, v) })
}

// BenchmarkEnvelopeDecode is one stored envelope's decoding, which a
// delivered message pays at its lease, its delivery and its record.
func BenchmarkEnvelopeDecode(b *testing.B) {
	benchDecode(b, decodeEnvelope)
}

// BenchmarkEnvelopeDecodeEncodingJSON is the same with encoding/json, what
// the queue used before.
func BenchmarkEnvelopeDecodeEncodingJSON(b *testing.B) {
	benchDecode(b, func(v []byte, env *mail.Envelope) error { return json.Unmarshal(v, env) })
}

func benchDecode(b *testing.B, decode func([]byte, *mail.Envelope) error) {
	v, err := json.Marshal(benchEnvelope())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := decode(v, new(mail.Envelope)); err != nil {
			b.Fatal(err)
		}
	}
}
