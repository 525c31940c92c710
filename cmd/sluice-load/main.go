// Command sluice-load drives parallel SMTP sessions against a server and
// reports accepted messages per second and end-of-data reply latency.
//
//	sluice-load -addr 127.0.0.1:2525 -c 20 -d 10s -size 10240 -to user@bench.test
//
// It is a benchmark tool: point it only at servers you run yourself.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/sluice-mta/sluice/core/loadgen"
)

func main() {
	var o loadgen.Options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:25", "server host:port")
	flag.IntVar(&o.Conns, "c", loadgen.DefaultConns, "parallel connections")
	flag.DurationVar(&o.Duration, "d", 0, "how long to run (10s when neither -d nor -n is given)")
	flag.IntVar(&o.Count, "n", 0, "how many transactions to run in all (0: no limit)")
	flag.IntVar(&o.Size, "size", loadgen.DefaultSize, "message size in bytes, headers included")
	flag.StringVar(&o.From, "from", loadgen.DefaultFrom, "envelope sender")
	flag.StringVar(&o.To, "to", loadgen.DefaultTo, "envelope recipient")
	flag.DurationVar(&o.Timeout, "timeout", loadgen.DefaultTimeout, "limit on each connect, write and reply")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	row := flag.String("row", "", "print the report as one Markdown table row with this `label` in the first column (and the full text on stderr)")
	header := flag.Bool("header", false, "print the Markdown table header and exit")
	flag.Parse()
	if *header {
		fmt.Println(loadgen.MarkdownHeader)
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "sluice-load: unexpected argument %q; all settings are flags, see -h\n", flag.Arg(0))
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := loadgen.Run(ctx, o)
	if r != nil {
		switch {
		case *asJSON:
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			enc.Encode(r)
		case *row != "":
			fmt.Fprintln(os.Stderr, r)
			fmt.Println(r.MarkdownRow(*row))
		default:
			fmt.Println(r)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-load:", err)
		os.Exit(1)
	}
}
