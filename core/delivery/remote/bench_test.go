package remote

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkReusedConnection delivers one message per iteration over one
// pooled connection to a sink that waits rtt before it reads each command,
// as a distant MX's round trip does: the round trips between messages
// (RSET and EHLO, before issue 18) are what it measures. chunking=hidden
// keeps the sink from offering CHUNKING, so that the message goes with
// DATA as before BDAT; chunking=offered adds BDAT's saving. round_trips/msg
// counts the exchanges: every command, plus the end of DATA's content.
func BenchmarkReusedConnection(b *testing.B) {
	for _, rtt := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		for _, chunking := range []string{"hidden", "offered"} {
			b.Run(fmt.Sprintf("rtt=%v/chunking=%s", rtt, chunking), func(b *testing.B) {
				e := newEnv(b, twoMX...)
				s := startSink(b, sinkOptions{rtt: rtt, noChunks: chunking == "hidden"})
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
				exchanges := cmds["RSET"] + cmds["EHLO"] + cmds["MAIL"] + cmds["RCPT"] + 2*cmds["DATA"] + cmds["BDAT"]
				b.ReportMetric(float64(exchanges)/float64(cmds["MAIL"]), "round_trips/msg")
			})
		}
	}
}
