package remote

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkReusedConnection delivers one message per iteration over one
// pooled connection to a sink that takes delay to answer each command, as
// a distant MX does: the round trips between messages (RSET and EHLO,
// before issue 18) are what it measures. The sink hides CHUNKING, so
// that the figures compare with those taken before BDAT (see
// BenchmarkChunking for that).
func BenchmarkReusedConnection(b *testing.B) {
	for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		b.Run(fmt.Sprint("reply_delay=", delay), func(b *testing.B) {
			e := newEnv(b, twoMX...)
			s := startSink(b, sinkOptions{delay: delay, noChunks: true})
			e.route("192.0.2.1:25", s.addr)
			d := e.deliverer(func(o *Options) { o.MaxMsgsPerConn = 1 << 30 })
			defer d.Close()
			rcpts := []string{"a@example.test"}
			m := message("B", rcpts...)
			b.ResetTimer()
			for b.Loop() {
				if r := deliver(d, m); r[0].Status.String() != "sent" {
					b.Fatalf("result %+v", r[0])
				}
			}
			b.StopTimer()
			cmds := s.commands()
			b.ReportMetric(float64(cmds["RSET"]+cmds["EHLO"]+cmds["MAIL"]+cmds["RCPT"]+cmds["DATA"]+cmds["BDAT"])/float64(cmds["MAIL"]), "cmds/msg")
		})
	}
}
