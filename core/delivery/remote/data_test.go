package remote

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
)

// dotWriterBytes is what go-smtp's DATA writer, net/textproto's
// DotWriter, puts on the wire for body: the oracle of the stuffing in
// runs.
func dotWriterBytes(t testing.TB, body []byte) []byte {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	w := textproto.NewWriter(bw).DotWriter()
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// countingWriter keeps what is written and counts the writes.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// checkStuffed writes body stuffed in runs of run bytes and compares it
// with DotWriter's bytes, and the writes with one a run; and it holds
// unstuffed, which lets a body go out uncopied on a TCP connection, to
// DotWriter: true exactly when DotWriter adds nothing but ".\r\n".
func checkStuffed(t *testing.T, body []byte, run int) {
	t.Helper()
	var w countingWriter
	if err := writeStuffed(&w, body, run); err != nil {
		t.Fatal(err)
	}
	want := dotWriterBytes(t, body)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("body %q in runs of %d: wrote %q, DotWriter writes %q", body, run, w.Bytes(), want)
	}
	if want := max(1, (len(body)+run-1)/run); w.writes != want {
		t.Errorf("body of %d bytes in runs of %d: %d writes, want %d", len(body), run, w.writes, want)
	}
	same := bytes.Equal(want, append(append([]byte{}, body...), ".\r\n"...))
	if got := unstuffed(body); got != same {
		t.Errorf("unstuffed(%q) = %v, but DotWriter writes %q", body, got, want)
	}
}

// TestDotStuffTCP: on a TCP connection, where a body that needs no
// stuffing goes out uncopied in one vectored write with the end marker,
// the peer reads DotWriter's bytes for every body of TestDotStuff.
func TestDotStuffTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, body := range dotBodies {
		if err := writeStuffed(c, []byte(body), stuffRun); err != nil {
			t.Fatal(err)
		}
		want = append(want, dotWriterBytes(t, []byte(body))...)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("the peer read %q, want DotWriter's %q", b, want)
	}
}

// dotBodies need nothing added, or dot lines, bare LFs, bare and doubled
// CRs, an unfinished last line; one is empty.
var dotBodies = []string{
	"",
	"Subject: x\r\n\r\nHello.\r\n",
	".\r\n",
	"..\r\n.hidden\r\nend\r\n",
	"a\r\n.\r\nb\r\n",
	"bare\nlf\n.dot after lf\n",
	"\n\n.\n",
	"no final line end",
	"ends in CR\r",
	"ends in two CRs\r\r",
	"a\r\r\nb\r\r\r\nc\r\r\r\r\n",
	"a\r\r\r\nb\r\n",
	"\r\n",
	"cr in\rthe line\r\n",
	"\r.not a line start\r\n",
	".\r",
	"\r\n.\r\n..\r\n",
	strings.Repeat("0123456789", 7) + "abcd\r\n.x\r\n",
}

// TestDotStuff: the body written after DATA's 354 is DotWriter's, byte
// for byte, for bodies that need nothing added, dot lines, bare LFs,
// bare and doubled CRs, an unfinished last line and an empty body, whole
// and cut into runs at every place; and a body goes in one write per run.
func TestDotStuff(t *testing.T) {
	for _, body := range dotBodies {
		for run := 1; run <= len(body)+1; run++ {
			checkStuffed(t, []byte(body), run)
		}
		checkStuffed(t, []byte(body), stuffRun)
	}
	big := benchBody(600 << 10)
	checkStuffed(t, big, stuffRun)
}

// FuzzDotStuff holds the stuffing in runs to DotWriter for any body, cut
// into runs of any length (the carried state at every cut).
func FuzzDotStuff(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n.\r\n..\r\nend\r\n"), uint8(0))
	f.Add([]byte("a\nb\r\r\n.c\rd"), uint8(2))
	f.Add([]byte("Subject: x\r\n\r\nplain\r\n\r\nx.\r\n"), uint8(255))
	f.Fuzz(func(t *testing.T, body []byte, run uint8) {
		checkStuffed(t, body, int(run)+1)
		checkStuffed(t, body, stuffRun)
	})
}
