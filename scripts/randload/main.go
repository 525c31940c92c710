// Command randload sends messages whose bodies do not compress (base64 of
// random bytes, like attachments), one SMTP connection a message, from S
// sessions at once; smtp-source and sluice-load send text that Badger's
// Snappy compresses, which hides what storing bodies in the LSM tree
// writes to disk (BENCHMARKS.md "One file sync a group?").
// scripts/onesession-ab.sh uses it with AB_CLIENT=randload:
//
//	go build -o /tmp/randload ./scripts/randload
//	/tmp/randload -a 127.0.0.1:PORT -s 20 -m 5000 -l 10240
//
// It prints the messages sent, the time and the rate, and exits 1 when
// any message failed.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("a", "127.0.0.1:25", "server host:port")
	sessions := flag.Int("s", 1, "sessions at once")
	msgs := flag.Int("m", 1000, "messages in all")
	size := flag.Int("l", 10240, "body size in bytes, headers included")
	from := flag.String("f", "bench@client.test", "envelope sender")
	to := flag.String("t", "user@sink.test", "envelope recipient")
	flag.Parse()
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = body(*from, *to, *size)
	}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *sessions {
		wg.Go(func() {
			for {
				k := next.Add(1)
				if k > int64(*msgs) {
					return
				}
				if err := send(*addr, *from, *to, bodies[k%int64(len(bodies))]); err != nil {
					failed.Add(1)
					fmt.Fprintln(os.Stderr, "randload:", err)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("randload: %d messages in %.3f s: %.0f/s, %d failed\n", *msgs, el.Seconds(), float64(*msgs)/el.Seconds(), failed.Load())
	if failed.Load() > 0 {
		os.Exit(1)
	}
}

// body returns a message of about size bytes: headers, then base64 lines
// of random bytes.
func body(from, to string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: randload\r\nMIME-Version: 1.0\r\n", from, to)
	b.WriteString("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57) // one 76-character base64 line
	for b.Len() < size {
		rand.Read(raw)
		b.WriteString(base64.StdEncoding.EncodeToString(raw))
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// send delivers one message on a connection of its own (no STARTTLS).
func send(addr, from, to string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
