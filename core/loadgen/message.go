package loadgen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// sentences is the text the message body is made of: plain business prose,
// so filters and compressors see something like real mail.
var sentences = []string{
	"Thank you for your order, which we received this morning.",
	"The shipment left our warehouse on schedule and should arrive within three working days.",
	"Please find the revised quarterly figures attached to the follow-up message.",
	"Our support team is available from nine to five, Monday to Friday.",
	"If you have any questions about this invoice, reply to this message and we will get back to you.",
	"The meeting has been moved to Thursday afternoon in the second floor conference room.",
	"We have updated our terms of service; the changes take effect at the start of next month.",
	"Your account password was changed recently; if this was not you, contact us at once.",
	"Attached is the agenda for next week, including the budget review and the hiring plan.",
	"The maintenance window starts at midnight and should last no longer than two hours.",
	"Please confirm your attendance by the end of the week so we can book the venue.",
	"Several customers reported slow page loads yesterday, and the team is looking into it.",
	"Remember to submit your expense reports before the accounting deadline on Friday.",
	"The new release includes faster search, a redesigned settings page and many small fixes.",
	"We appreciate your patience while we process the backlog of requests from last week.",
}

// lineWidth is the longest body line Message writes, before CRLF.
const lineWidth = 72

// Message returns a plain-text message of exactly size bytes (or its headers
// alone when size is smaller): RFC 5322 headers, then wrapped prose. Every
// line ends in CRLF, there is no bare CR or LF, and no line starts with a
// dot, so the bytes go on the wire after DATA unchanged. The same arguments
// always give the same bytes.
func Message(size int, from, to string, date time.Time) []byte {
	b := header(from, to, date, "")
	if size-b.Len() == 1 {
		// One byte cannot be a body line: put it in the subject.
		b = header(from, to, date, ".")
	}

	text := newProse(uint64(size))
	for {
		l := text.next()
		if b.Len()+len(l)+2 > size {
			// l does not fit: end with as much of it as does.
			switch r := size - b.Len(); {
			case r >= 3:
				b.Write(l[:r-2]) // l is longer than r-2 and starts with a letter
				b.WriteString("\r\n")
			case r == 2:
				b.WriteString("\r\n")
			case r == 1:
				b.Truncate(b.Len() - 2) // lengthen the last line by one
				b.WriteString("x\r\n")
			}
			break
		}
		b.Write(l)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// header returns the header block and the blank line after it.
func header(from, to string, date time.Time, subjectTail string) *bytes.Buffer {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Load Generator <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: sluice-load test message%s\r\n", subjectTail)
	fmt.Fprintf(&b, "Date: %s\r\n", date.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <loadgen.%d@sluice-load.invalid>\r\n", date.Unix())
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	b.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	b.WriteString("\r\n")
	return &b
}

// prose yields wrapped lines of text made of sentences, with a blank line
// after every few sentences.
type prose struct {
	rng   *rand.Rand
	lines [][]byte // wrapped, not yet returned
}

func newProse(seed uint64) *prose {
	return &prose{rng: rand.New(rand.NewPCG(seed, 1))}
}

// next returns the next line, without its CRLF; empty between paragraphs.
func (p *prose) next() []byte {
	if len(p.lines) == 0 {
		p.paragraph()
	}
	l := p.lines[0]
	p.lines = p.lines[1:]
	return l
}

// paragraph wraps four sentences into lines and queues them and a blank line.
func (p *prose) paragraph() {
	var line []byte
	for range 4 {
		for _, w := range strings.Fields(sentences[p.rng.IntN(len(sentences))]) {
			if len(line) > 0 && len(line)+1+len(w) > lineWidth {
				p.lines = append(p.lines, line)
				line = nil
			}
			if len(line) > 0 {
				line = append(line, ' ')
			}
			line = append(line, w...)
		}
	}
	p.lines = append(p.lines, line, nil)
}
