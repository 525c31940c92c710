package admin

import (
	"context"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// TestShowHeaders: `queue show` prints the header section as the core's
// header model reads it, whatever the line endings, and never the body.
func TestShowHeaders(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"crlf", "Subject: hello\r\nFrom: a@src.test\r\n\r\nbody\r\n", "Subject: hello\r\nFrom: a@src.test\r\n"},
		{"folded", "Subject: a\r\n b\r\n\r\nbody\r\n", "Subject: a\r\n b\r\n"},
		{"bare lf", "Subject: hello\nFrom: a@src.test\n\nbody\n", "Subject: hello\nFrom: a@src.test\n"},
		{"no header", "\r\nsecret body\r\n", ""},
		{"no body", "Subject: hello\r\n", "Subject: hello\r\n"},
	}
	ctx := context.Background()
	q, cl, _ := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "x@a.test"}}}
			id, err := q.Enqueue(ctx, env, []byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			d, err := cl.Show(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d.Headers != tt.want {
				t.Errorf("headers %q, want %q", d.Headers, tt.want)
			}
		})
	}
}
