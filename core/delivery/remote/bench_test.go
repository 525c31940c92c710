package remote

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkReusedConnection delivers one message per iteration over one
// pooled connection to a sink that waits rtt for each flight of the
// client's, as a distant MX's round trip does: the round trips between
// messages (RSET and EHLO, before issue 18) and within them are what it
// measures. offers says which of CHUNKING and PIPELINING the sink offers
// (none: DATA, one command at a time, as before either was used).
// round_trips/msg counts the client's flights at the sink (reads that
// brought commands, pipelined ones together, or the end of DATA's
// content), EHLO's included.
func BenchmarkReusedConnection(b *testing.B) {
	for _, rtt := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		for _, offers := range []string{"none", "chunking", "pipelining", "both"} {
			b.Run(fmt.Sprintf("rtt=%v/offers=%s", rtt, offers), func(b *testing.B) {
				e := newEnv(b, twoMX...)
				s := startSink(b, sinkOptions{rtt: rtt,
					noChunks: offers == "none" || offers == "pipelining",
					noPipe:   offers == "none" || offers == "chunking"})
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
				s.mu.Lock()
				flights, mails := s.flights, s.cmds["MAIL"]
				s.mu.Unlock()
				b.ReportMetric(float64(flights)/float64(mails), "round_trips/msg")
			})
		}
	}
}
