package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/mail"
)

// benchBody is a message of about size bytes in 76-character lines, some
// starting with a dot (which DATA stuffs).
func benchBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@origin.test\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "abcd\r\n"
	for i := 0; b.Len() < size; i++ {
		if i%20 == 0 {
			b.WriteString(".")
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// cpuTime is the CPU time (user and system) this process has used: unlike
// the wall clock, it does not count the time spent waiting for a CPU on a
// loaded machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchSizes = []struct {
	name string
	size int
}{{"10KiB", 10 << 10}, {"1MiB", 1 << 20}}

// BenchmarkChunking delivers one message per iteration over one pooled
// connection to the go-smtp sink, with DATA (the sink hides CHUNKING) or
// BDAT, at two sizes, with the sink answering at once or reply_delay
// after each command as a distant MX does. round_trips/msg counts the
// sink's replies per message. The sink runs in this process, so ns/op is
// client and sink together, and so is cpu-ns/op (this process's CPU time a
// message); BenchmarkSendBody has the client's CPU alone.
func BenchmarkChunking(b *testing.B) {
	for _, delay := range []time.Duration{0, time.Millisecond} {
		for _, sz := range benchSizes {
			for _, mode := range []string{"DATA", "BDAT"} {
				b.Run(fmt.Sprintf("%s/%s/reply_delay=%v", mode, sz.name, delay), func(b *testing.B) {
					e := newEnv(b, twoMX...)
					s := startSink(b, sinkOptions{delay: delay, noChunks: mode == "DATA"})
					e.route("192.0.2.1:25", s.addr)
					d := e.deliverer(func(o *Options) { o.MaxMsgsPerConn = 1 << 30 })
					defer d.Close()
					m := message("B", "a@example.test")
					m.Body = benchBody(sz.size)
					if r := deliver(d, m); r[0].Status != mail.Sent { // the connection, EHLO and all
						b.Fatalf("result %+v", r[0])
					}
					s.mu.Lock()
					writes0 := s.writes
					s.mu.Unlock()
					b.SetBytes(int64(len(m.Body)))
					b.ResetTimer()
					cpu0 := cpuTime()
					n := 0
					for b.Loop() {
						if r := deliver(d, m); r[0].Status != mail.Sent {
							b.Fatalf("result %+v", r[0])
						}
						n++
					}
					b.StopTimer()
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
					s.mu.Lock()
					b.ReportMetric(float64(s.writes-writes0)/float64(n), "round_trips/msg")
					s.mu.Unlock()
					if cmds := s.commands(); cmds[mode] != n+1 {
						b.Fatalf("sink saw %v, want %d %s", cmds, n+1, mode)
					}
				})
			}
		}
	}
}

// BenchmarkSendBody is the client's share alone: sendBody on a connection
// whose peer is scripted in memory (it answers EHLO, DATA, the end of the
// data and BDAT, and throws the bytes away), so the figures are go-smtp's
// DATA writer (dot-stuffing a byte at a time) against the BDAT write.
func BenchmarkSendBody(b *testing.B) {
	for _, sz := range benchSizes {
		for _, mode := range []string{"DATA", "BDAT"} {
			b.Run(mode+"/"+sz.name, func(b *testing.B) {
				p := &scriptedPeer{chunking: mode == "BDAT"}
				c := smtp.NewClient(p)
				if err := c.Hello("bench.test"); err != nil {
					b.Fatal(err)
				}
				d := &Deliverer{opts: Options{DataTimeout: time.Minute}}
				cn := &conn{c: c, raw: p}
				body := benchBody(sz.size)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				cpu0, n := cpuTime(), 0
				for b.Loop() {
					if _, err := d.sendBody(cn, body); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
				if p.bdat+p.data == 0 || (p.bdat > 0) != (mode == "BDAT") {
					b.Fatalf("peer saw %d BDAT, %d DATA", p.bdat, p.data)
				}
			})
		}
	}
}

// scriptedPeer is an in-memory SMTP server for BenchmarkSendBody: it
// answers each command (and the end of DATA's data, and a BDAT chunk) from
// what was written, and discards the message.
type scriptedPeer struct {
	chunking   bool
	line       []byte // the partial command line
	inData     bool
	tail       [4]byte // the last bytes of DATA's data
	chunk      int     // BDAT bytes still to come
	out        []byte  // replies not read yet
	bdat, data int
}

func (p *scriptedPeer) Read(b []byte) (int, error) {
	if len(p.out) == 0 {
		if p.line == nil && !p.inData && p.chunk == 0 && p.bdat+p.data == 0 {
			p.out = []byte("220 peer.test ready\r\n")
		} else {
			return 0, io.EOF
		}
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	return n, nil
}

func (p *scriptedPeer) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		switch {
		case p.chunk > 0:
			k := min(p.chunk, len(b))
			p.chunk -= k
			b = b[k:]
			if p.chunk == 0 {
				p.out = append(p.out, "250 2.0.0 Ok: queued\r\n"...)
			}
		case p.inData:
			// The end may straddle two writes: look in the last 4 bytes
			// of the one before and the first 4 of this one, then here.
			var w [8]byte
			k := copy(w[:], p.tail[:])
			k += copy(w[k:], b[:min(4, len(b))])
			end := -1
			if i := bytes.Index(w[:k], []byte("\r\n.\r\n")); i >= 0 {
				end = i + 5 - 4
			} else if i := bytes.Index(b, []byte("\r\n.\r\n")); i >= 0 {
				end = i + 5
			}
			if end < 0 {
				copy(p.tail[:], w[k-4:k])
				b = nil
				break
			}
			p.inData = false
			p.out = append(p.out, "250 2.0.0 Ok: queued\r\n"...)
			b = b[end:]
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				p.line = append(p.line, b...)
				b = nil
				break
			}
			p.line = append(p.line, b[:i+1]...)
			b = b[i+1:]
			p.command(strings.TrimRight(string(p.line), "\r\n"))
			p.line = p.line[:0]
		}
	}
	return n, nil
}

// command answers one command line.
func (p *scriptedPeer) command(l string) {
	verb, args, _ := strings.Cut(l, " ")
	switch strings.ToUpper(verb) {
	case "EHLO":
		p.out = append(p.out, "250-peer.test\r\n250-8BITMIME\r\n"...)
		if p.chunking {
			p.out = append(p.out, "250-CHUNKING\r\n"...)
		}
		p.out = append(p.out, "250 PIPELINING\r\n"...)
	case "DATA":
		p.data++
		p.inData, p.tail = true, [4]byte{0, 0, '\r', '\n'}
		p.out = append(p.out, "354 go ahead\r\n"...)
	case "BDAT":
		p.bdat++
		size, _, _ := strings.Cut(args, " ")
		p.chunk, _ = strconv.Atoi(size)
	default:
		p.out = append(p.out, "250 2.0.0 Ok\r\n"...)
	}
}

func (p *scriptedPeer) Close() error                     { return nil }
func (p *scriptedPeer) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (p *scriptedPeer) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (p *scriptedPeer) SetDeadline(time.Time) error      { return nil }
func (p *scriptedPeer) SetReadDeadline(time.Time) error  { return nil }
func (p *scriptedPeer) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkChunkingPeer is BenchmarkChunking against a real server at
// BENCH_PEER (host:port), a Postfix smtpd say; it is skipped without one.
// The DATA runs hide the peer's CHUNKING from the client. The peer is
// another process, so cpu-ns/op is the client's alone; the peer's own log
// counts the commands (Postfix: "bdat=N" or "data=N" at disconnect).
func BenchmarkChunkingPeer(b *testing.B) {
	peer := os.Getenv("BENCH_PEER")
	if peer == "" {
		b.Skip("BENCH_PEER (host:port of a server offering CHUNKING) not set")
	}
	for _, sz := range benchSizes {
		for _, mode := range []string{"DATA", "BDAT"} {
			b.Run(mode+"/"+sz.name, func(b *testing.B) {
				e := newEnv(b, twoMX...)
				e.route("192.0.2.1:25", peer)
				d := e.deliverer(func(o *Options) {
					o.MaxMsgsPerConn = 1 << 30
					if mode == "DATA" {
						o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
							c, err := e.dial(ctx, network, addr)
							return &noChunking{Conn: c}, err
						}
					}
				})
				defer d.Close()
				m := message("B", "a@example.test")
				m.Body = benchBody(sz.size)
				if r := deliver(d, m); r[0].Status != mail.Sent {
					b.Fatalf("result %+v", r[0])
				}
				b.SetBytes(int64(len(m.Body)))
				b.ResetTimer()
				cpu0, n := cpuTime(), 0
				for b.Loop() {
					if r := deliver(d, m); r[0].Status != mail.Sent {
						b.Fatalf("result %+v", r[0])
					}
					n++
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
			})
		}
	}
}

// noChunking hides CHUNKING in what the server says (it becomes XCHUNKIN,
// an extension nobody knows), so that the client uses DATA.
type noChunking struct{ net.Conn }

func (c *noChunking) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if i := bytes.Index(p[:n], []byte("CHUNKING\r\n")); i >= 0 {
		copy(p[i:], "XCHUNKIN")
	}
	return n, err
}
