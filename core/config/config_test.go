package config

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the .err golden files in testdata/bad")

// TestBad loads every testdata/bad/*.toml and compares the error with the
// golden .err file beside it.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/bad/*.toml: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(filepath.Base(f), data)
			if err == nil {
				t.Fatalf("loaded without error: %+v", c)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".toml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// TestBadErrorType checks that errors unwrap to *Error with a line.
func TestBadErrorType(t *testing.T) {
	_, err := Parse("x.toml", []byte("[smtp]\nmax_recipients = 0\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *Error", err)
	}
	if e.File != "x.toml" || e.Line != 2 || e.Key != "smtp.max_recipients" {
		t.Errorf("got %+v, want x.toml line 2 key smtp.max_recipients", e)
	}
}

// TestGood loads every testdata/good/*.toml.
func TestGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/good/*.toml: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLoadOverDefaults checks that a file's values replace the defaults and
// that keys it leaves out keep them.
func TestLoadOverDefaults(t *testing.T) {
	c, err := Load("testdata/good/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"hostname", c.Hostname, "MX.Example.COM"},
		{"local_domains lowercased", c.LocalDomains, []string{"example.com", "example.org"}},
		{"trusted_networks masked", c.TrustedNetworks, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		{"smtp.max_message_size", c.SMTP.MaxMessageSize, Size(25 * 1000 * 1000)},
		{"smtp.command_timeout", c.SMTP.CommandTimeout.D(), 150 * time.Second},
		{"smtp.data_timeout kept", c.SMTP.DataTimeout, d.SMTP.DataTimeout},
		{"submission.max_message_size int", c.Submission.MaxMessageSize, Size(10 << 20)},
		{"submission.max_recipients kept", c.Submission.MaxRecipients, d.Submission.MaxRecipients},
		{"local.maildir expanded", c.Local.Maildir, "/var/lib/sluice/mail/{domain}/{user}"},
		{"local.create_mailboxes", c.Local.CreateMailboxes, false},
		{"local.lmtp kept", c.Local.LMTP, d.Local.LMTP},
		{"queue.max_backoff", c.Queue.MaxBackoff.D(), 4 * time.Hour},
		{"queue.gc_interval kept", c.Queue.GCInterval, d.Queue.GCInterval},
		{"admin.socket expanded", c.Admin.Socket, "/var/lib/sluice/admin.sock"},
		{"admin.socket_mode", c.Admin.SocketMode.Perm(), fs.FileMode(0o660)},
		{"admin.socket_group", c.Admin.SocketGroup, "0"},
		{"log_format", c.LogFormat, "json"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestDefault checks the embedded default's values.
func TestDefault(t *testing.T) {
	c := Default()
	lis := Listener{
		MaxMessageSize:      50 << 20,
		MaxRecipients:       100,
		MaxLineLength:       2000,
		BareNewline:         "reject",
		CommandTimeout:      Duration(5 * time.Minute),
		DataTimeout:         Duration(10 * time.Minute),
		SessionTimeout:      Duration(time.Hour),
		MaxConnections:      1000,
		MaxConnectionsPerIP: 50,
		MinDataRate:         500,
		StressTimeout:       Duration(10 * time.Second),
		RDNSTimeout:         Duration(2 * time.Second),
		ProxyTrusted:        []netip.Prefix{},
	}
	smtp, sub := lis, lis
	smtp.Listen = []string{"127.0.0.1:2525"}
	smtp.TLSAskClientCert = true
	sub.Listen = []string{"127.0.0.1:2587"}
	want := &Config{
		Hostname:        "localhost",
		DataDir:         "./sluice-data",
		LocalDomains:    []string{"localhost"},
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: Duration(30 * time.Second),
		SMTP:            smtp,
		Submission: Submission{
			Listener:               sub,
			TLSListen:              []string{"127.0.0.1:2465"},
			UsersFile:              "./sluice-data/users",
			RestrictSender:         true,
			AuthFailDelay:          Duration(time.Second),
			AuthFailMaxDelay:       Duration(5 * time.Second),
			AuthMaxFailures:        5,
			AuthFailWindow:         Duration(15 * time.Minute),
			AuthMaxUserFailures:    15,
			AuthMaxAddressFailures: 30,
		},
		Local: Local{
			Transport:       "maildir",
			Maildir:         "./sluice-data/mail/{domain}/{user}",
			CreateMailboxes: true,
			LMTP:            "127.0.0.1:24",
		},
		Queue: Queue{
			MinBackoff:  Duration(5 * time.Minute),
			MaxBackoff:  Duration(time.Hour),
			MaxLifetime: Duration(120 * time.Hour),
			Workers:     16,
			GCInterval:  Duration(10 * time.Minute),
			// DelayWarning: 0, off by default.
			HoldLifetime: Duration(168 * time.Hour),
		},
		Admin:   Admin{Socket: "./sluice-data/admin.sock", SocketMode: 0o600},
		Plugins: Plugins{Dir: "./sluice-data/plugins", CacheDir: "./sluice-data/plugin-cache"},
		Spam:    Spam{AddHeader: 5, Quarantine: 10, Reject: 15},
		TLS:     TLS{MinVersion: "1.2", Extra: []TLSPair{}},
		DNS:     DNS{Servers: []string{}, Timeout: Duration(2 * time.Second), TrustedServers: []string{}},
		Delivery: Delivery{
			Port: 25, RelayTLS: "starttls", MTASTS: true, DANE: true,
			MaxConnections: 100, MaxPerDestination: 20,
			MaxRcptsPerTransaction: 100, MaxMessagesPerConnection: 100,
			IdleTimeout: Duration(30 * time.Second), TLS: "opportunistic",
			MaxReceivedHeaders: 50, Routes: []DeliveryRoute{},
		},
		Auth: Auth{SPF: true, DKIMVerify: true, DMARC: true},
		DKIM: DKIM{Keys: []DKIMKey{}},
		Addressing: Addressing{
			RecipientDelimiter: "+", Verify: "none", Transports: []AddressingTransport{},
		},
		Metrics: Metrics{Enabled: true},
		KV: KV{
			Backend: "badger", Redis: []string{"127.0.0.1:6379"}, Prefix: "sluice:",
			Timeout: Duration(50 * time.Millisecond), OnError: "fail_open",
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	// An empty file, and the printed default itself, load to the same.
	for name, data := range map[string][]byte{"empty": nil, "DefaultTOML": DefaultTOML()} {
		got, err := Parse(name, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s loads to\n%+v\nwant\n%+v", name, got, want)
		}
	}
	// Default returns a fresh value each time.
	c.LocalDomains[0] = "changed"
	if Default().LocalDomains[0] != "localhost" {
		t.Error("Default() shares state between calls")
	}
}

// TestDefaultTOMLIsCopy checks callers cannot corrupt the embedded text.
func TestDefaultTOMLIsCopy(t *testing.T) {
	b := DefaultTOML()
	b[0] = 'X'
	if bytes.Equal(b, DefaultTOML()) {
		t.Error("DefaultTOML returns the embedded slice itself")
	}
}

// TestKnownKeysCoverDefault checks that every key of the Config type appears
// in the commented default, so operators see each one documented.
func TestKnownKeysCoverDefault(t *testing.T) {
	ix := indexKeys(DefaultTOML())
	for _, k := range knownKeys {
		if _, ok := ix.line(k); !ok {
			t.Errorf("key %q is missing from default.toml", k)
		}
	}
}

func TestPath(t *testing.T) {
	tests := []struct{ dir, tmpl, want string }{
		{"/var/lib/sluice", "{data_dir}/admin.sock", "/var/lib/sluice/admin.sock"},
		{"/var/lib/sluice/", "{data_dir}/mail/{domain}/{user}", "/var/lib/sluice/mail/{domain}/{user}"},
		{"data", "/abs/path", "/abs/path"},
	}
	for _, tt := range tests {
		c := &Config{DataDir: tt.dir}
		if got := c.Path(tt.tmpl); got != tt.want {
			t.Errorf("Path(%q) with data_dir %q = %q, want %q", tt.tmpl, tt.dir, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ key, want string }{
		{"hostnme", "hostname"},
		{"smtp.max_recipent", "smtp.max_recipients"},
		{"queue.worker", "queue.workers"},
		{"completely_unrelated", ""},
		{"foo", ""},
		{"smpt", "smtp"},
	}
	for _, tt := range tests {
		if got := suggest(tt.key); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// FuzzParse checks that no input makes Parse panic, and that whatever it
// accepts passes validation again unchanged.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(dir + "/*.toml")
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.toml") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		if errs := c.validate("fuzz.toml", indexKeys(nil)); len(errs) != 0 {
			t.Errorf("accepted config fails validation: %v", joinErrors(errs))
		}
	})
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"smpt", "smtp", 1}, {"hostnme", "hostname", 1}, {"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
