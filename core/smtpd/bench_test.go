package smtpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// countQueue accepts everything and only counts.
type countQueue struct{ n atomic.Int64 }

func (q *countQueue) NewID() string { return "BENCH" + strconv.FormatInt(q.n.Load(), 10) }

func (q *countQueue) Enqueue(ctx context.Context, env *mail.Envelope, body []byte) (string, error) {
	q.n.Add(1)
	return env.ID, nil
}

// BenchmarkPipelinedMessages sends 10 KiB messages over one pipelined
// connection.
func BenchmarkPipelinedMessages(b *testing.B) {
	q := &countQueue{}
	opts := testOptions(q)
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	body := strings.Repeat(strings.Repeat("x", 98)+"\r\n", 100)
	tx := fmt.Sprintf("MAIL FROM:<a@example.org> SIZE=%d\r\nRCPT TO:<u@local.test>\r\nDATA\r\n", len(body))
	fmt.Fprintf(c, "EHLO bench\r\n")
	readReply := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) > 3 && line[3] == ' ' {
				return line
			}
		}
	}
	readReply()
	readReply()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		io.WriteString(c, tx)
		readReply()
		readReply()
		readReply()
		io.WriteString(c, body+".\r\n")
		if line := readReply(); !strings.HasPrefix(line, "250") {
			b.Fatalf("got %q", line)
		}
	}
}
