package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// maildirRelay is the Relay of every Maildir Result.
const maildirRelay = "local"

// maxLocalPart is the longest local part accepted (RFC 5321 4.5.3.1.1).
const maxLocalPart = 64

// MaildirOptions configures a Maildir deliverer.
type MaildirOptions struct {
	// Template is the path of a recipient's Maildir, with {domain} and
	// {user} replaced by the recipient's lowercased domain and local part,
	// e.g. "/data/mail/{domain}/{user}". The local part is used as is: a
	// "+detail" suffix is not stripped, so "bob+lists" is its own mailbox.
	Template string
	// Create makes a missing Maildir (cur, new and tmp, mode 0700) instead
	// of bouncing the recipient as unknown.
	Create bool
	// Logger receives one line per recipient; nil discards them.
	Logger *slog.Logger
}

// Maildir delivers into Maildirs on the local filesystem, following the
// Maildir protocol: write to tmp/, fsync, rename into new/, fsync new/.
// Each delivered file is the queued message with Return-Path (the envelope
// sender) and Delivered-To header lines prepended, and without any
// Return-Path it came with, stored with LF line endings as Maildir files
// conventionally are (Postfix and Dovecot write them so; mail readers and
// scripts expect it): every CRLF becomes LF. (LMTP keeps CRLF: that is the
// protocol's wire form.)
type Maildir struct {
	opts MaildirOptions
	log  *slog.Logger
	host string
	pid  int
	seq  atomic.Uint64
	// sync flushes a file or directory to disk; tests replace it to make
	// fsync fail.
	sync func(f *os.File) error
	// newDirs shares the fsyncs of new/ between concurrent deliveries.
	newDirs *dirSyncer
}

var _ mail.Deliverer = (*Maildir)(nil)

// NewMaildir returns a Maildir deliverer for opts.
func NewMaildir(opts MaildirOptions) *Maildir {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// Maildir reserves '/' and ':' in file names.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	d := &Maildir{
		opts: opts,
		log:  orDiscard(opts.Logger),
		host: host,
		pid:  os.Getpid(),
		sync: (*os.File).Sync,
	}
	d.newDirs = newDirSyncer(func(dir string) error { return d.syncDir(dir) })
	return d
}

// Deliver writes m into the Maildir of each recipient in rcpts.
func (d *Maildir) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	results := make([]mail.Result, 0, len(rcpts))
	body := toLF(withoutReturnPath(m.Body))
	// Two spellings of one mailbox ("Bob@x", "bob@x") get one copy.
	done := make(map[string]mail.Result)
	for _, rcpt := range rcpts {
		var r mail.Result
		dir, user, domain, bad := d.mailbox(rcpt)
		switch {
		case bad != nil:
			r = *bad
		case ctx.Err() != nil:
			r = mail.DeferredResult(rcpt, maildirRelay, reason(451, "4.3.0", "delivery interrupted: "+ctx.Err().Error()))
		default:
			if prev, ok := done[dir]; ok {
				r = prev
				r.Rcpt = rcpt
			} else {
				r = d.deliverOne(rcpt, dir, m.From, user+"@"+domain, body)
				done[dir] = r
			}
		}
		logResult(ctx, d.log, m, r)
		results = append(results, r)
	}
	return results
}

// mailbox checks rcpt and returns its Maildir path, or a bounce Result.
// The path is made of the address's lookup form (mail.Key: lowercased,
// domain without a final dot), so every spelling of a mailbox finds it.
func (d *Maildir) mailbox(rcpt string) (dir, user, domain string, bad *mail.Result) {
	user, domain, ok := mail.Split(mail.Key(rcpt))
	if !ok {
		r := mail.BouncedResult(rcpt, maildirRelay, reason(550, "5.1.3", "bad recipient address: no domain"))
		return "", "", "", &r
	}
	if why := unsafeName(user); why != "" {
		r := mail.BouncedResult(rcpt, maildirRelay, reason(550, "5.1.3", "bad recipient local part: "+why))
		return "", "", "", &r
	}
	if why := unsafeName(domain); why != "" {
		r := mail.BouncedResult(rcpt, maildirRelay, reason(550, "5.1.3", "bad recipient domain: "+why))
		return "", "", "", &r
	}
	dir = strings.NewReplacer("{domain}", domain, "{user}", user).Replace(d.opts.Template)
	return dir, user, domain, nil
}

// unsafeName says why s cannot be one path element, or "" if it can.
func unsafeName(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > maxLocalPart:
		return "longer than 64 bytes"
	case strings.ContainsAny(s, "/\\\x00"):
		return `contains '/', '\' or NUL`
	case s[0] == '.':
		return "starts with '.'"
	case strings.Contains(s, ".."):
		return `contains ".."`
	}
	return ""
}

// deliverOne writes body from sender to the Maildir dir and returns the
// Result for rcpt.
func (d *Maildir) deliverOne(rcpt, dir, sender, deliveredTo string, body []byte) mail.Result {
	if err := d.ensure(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return mail.BouncedResult(rcpt, maildirRelay, reason(550, "5.1.1", "mailbox unavailable: no such user"))
		}
		return fsFailure(rcpt, err)
	}
	name, err := d.write(dir, sender, deliveredTo, body)
	if err != nil {
		return fsFailure(rcpt, err)
	}
	return mail.SentResult(rcpt, maildirRelay, reason(250, "2.0.0", "delivered to maildir as "+name))
}

// ensure checks that dir is a Maildir, creating it when allowed. A missing
// Maildir that may not be created yields an error matching fs.ErrNotExist.
func (d *Maildir) ensure(dir string) error {
	missing := false
	for _, sub := range []string{"cur", "new", "tmp"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = true
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("maildir %s: %s is not a directory; remove it or fix the Maildir", dir, sub)
		}
	}
	if !missing {
		return nil
	}
	if !d.opts.Create {
		return fmt.Errorf("maildir %s: %w", dir, fs.ErrNotExist)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("creating maildir: %w", err)
		}
	}
	return d.syncDir(filepath.Dir(dir), dir)
}

// write stores body in dir/new with Return-Path and Delivered-To header
// lines and returns the file name.
func (d *Maildir) write(dir, sender, deliveredTo string, body []byte) (string, error) {
	var f *os.File
	var name string
	for {
		name = d.uniqueName()
		var err error
		f, err = os.OpenFile(filepath.Join(dir, "tmp", name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // Another process with our pid before us; take the next name.
		}
		if err != nil {
			return "", fmt.Errorf("creating file in maildir: %w", err)
		}
		break
	}
	tmp := f.Name()
	err := writeAll(f, header(sender, deliveredTo), body)
	if err == nil {
		err = d.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "new", name))
	}
	if err == nil {
		err = d.newDirs.Sync(filepath.Join(dir, "new"))
		// The rename may not be durable: undo it, so that the retry the
		// deferral causes does not leave a second copy.
		if err != nil {
			os.Remove(filepath.Join(dir, "new", name))
		}
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("writing maildir %s: %w", dir, err)
	}
	return name, nil
}

// uniqueName returns a Maildir file name, "SEC.MusecPpidQn.HOST", unique
// among all goroutines of this process.
func (d *Maildir) uniqueName() string {
	now := time.Now()
	n := d.seq.Add(1)
	return strconv.FormatInt(now.Unix(), 10) +
		".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + strconv.Itoa(d.pid) +
		"Q" + strconv.FormatUint(n, 10) +
		"." + d.host
}

// syncDir fsyncs each directory in dirs.
func (d *Maildir) syncDir(dirs ...string) error {
	for _, dir := range dirs {
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = d.sync(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("syncing directory %s: %w", dir, err)
		}
	}
	return nil
}

// header returns the lines a Maildir delivery prepends: Return-Path with
// the envelope sender (first, as RFC 5321 section 4.4 has final delivery
// write it) and Delivered-To with the mailbox's address, each ending in LF.
func header(sender, rcpt string) []byte {
	return []byte("Return-Path: " + mail.ReturnPath(sender) + "\n" + "Delivered-To: " + rcpt + "\n")
}

// toLF returns msg with every CRLF replaced by LF (msg itself when it has
// none). A CR not followed by LF is message data and stays.
func toLF(msg []byte) []byte {
	if !bytes.Contains(msg, []byte("\r\n")) {
		return msg
	}
	return bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
}

// withoutReturnPath returns msg without the Return-Path fields it came
// with (msg itself when it has none): the one that counts is written at
// final delivery from the envelope, and one a message brings along is
// not to be believed (RFC 5321 section 4.4 lets final delivery remove it).
func withoutReturnPath(msg []byte) []byte {
	h, body := mail.ParseHeader(msg)
	if h.Del("Return-Path") == 0 {
		return msg
	}
	return h.Message(body)
}

// writeAll writes each chunk to f.
func writeAll(f *os.File, chunks ...[]byte) error {
	for _, c := range chunks {
		if _, err := f.Write(c); err != nil {
			return err
		}
	}
	return nil
}

// fsFailure maps a filesystem error to a deferral with a fitting DSN code.
func fsFailure(rcpt string, err error) mail.Result {
	dsn := "4.3.0"
	switch {
	case errors.Is(err, syscall.EDQUOT):
		dsn = "4.2.2"
	case errors.Is(err, syscall.ENOSPC):
		dsn = "4.3.1"
	case errors.Is(err, fs.ErrPermission):
		dsn = "4.2.0"
	}
	return mail.DeferredResult(rcpt, maildirRelay, reason(451, dsn, err.Error()))
}
