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

	"github.com/sluice-mta/sluice/core/auth"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
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
	benchPipelined(b, testOptions(&countQueue{}))
}

// benchPipelined sends 10 KiB messages over one pipelined connection to a
// server with opts.
func benchPipelined(b *testing.B, opts Options) {
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
	body := "From: <a@example.org>\r\nSubject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 100)
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

// benchFilters is a chain that does at data what a spam filter does: reads
// a header field, adds a score and a field.
type benchFilters struct{ spec filter.EnvSpec }

func (f *benchFilters) Hooks() uint32 { return 1<<pluginapi.NumHooks - 1 }

func (f *benchFilters) Run(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
	if hook == pluginapi.HookData {
		env := filter.NewEnv(ctx, hook, txn, &f.spec)
		env.Header("Subject", 0)
		env.AddScore("BENCH", 1)
		env.AddHeader("X-Bench", "yes")
	}
	return filter.Result{}
}

// benchChecker passes every message.
type benchChecker struct{}

func (benchChecker) Check(ctx context.Context, in auth.CheckInput) (*auth.Results, error) {
	return &auth.Results{Hostname: testHost, SPF: &auth.SPFResult{Result: auth.Pass, MailFrom: in.MailFrom},
		DKIM: []*auth.DKIMResult{}}, nil
}

// BenchmarkPipelinedFiltered is BenchmarkPipelinedMessages with inbound
// checks, a filter chain editing the header at data and a spam header.
func BenchmarkPipelinedFiltered(b *testing.B) {
	opts := testOptions(&countQueue{})
	opts.Filters = &benchFilters{spec: filter.EnvSpec{Plugin: "bench"}}
	opts.Auth = benchChecker{}
	opts.Spam = filter.Spam{AddHeader: 0.5}
	benchPipelined(b, opts)
}
