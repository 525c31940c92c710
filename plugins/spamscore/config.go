package spamscore

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

// sym is one of the symbols spamscore adds, each at most once per
// message; a message's symbols are a hitSet.
type sym uint8

// The symbols.
const (
	symMissingDate sym = iota
	symMissingMsgID
	symMissingFrom
	symReplyToMismatch
	symEnvMismatch
	symDisplaySpoof
	symSubjectCaps
	symSubjectEmpty
	symHTMLOnly
	symURLIP
	symURLShortener
	symAttachExe
	symAttachDoubleExt
	symAttachMacro
	symSPFFail
	symSPFSoftfail
	symDKIMFail
	symDMARCFail
	numSyms
)

// symNames are the symbols' names, as the host's score and the
// configuration's weights name them.
var symNames = [numSyms]string{
	symMissingDate:     "MISSING_DATE",
	symMissingMsgID:    "MISSING_MESSAGE_ID",
	symMissingFrom:     "MISSING_FROM",
	symReplyToMismatch: "FROM_REPLYTO_MISMATCH",
	symEnvMismatch:     "FROM_ENVELOPE_MISMATCH",
	symDisplaySpoof:    "DISPLAY_NAME_SPOOF",
	symSubjectCaps:     "SUBJECT_ALL_CAPS",
	symSubjectEmpty:    "SUBJECT_EMPTY",
	symHTMLOnly:        "HTML_ONLY",
	symURLIP:           "URL_IP_HOST",
	symURLShortener:    "URL_SHORTENER",
	symAttachExe:       "ATTACH_EXECUTABLE",
	symAttachDoubleExt: "ATTACH_DOUBLE_EXT",
	symAttachMacro:     "ATTACH_MACRO",
	symSPFFail:         "SPF_FAIL",
	symSPFSoftfail:     "SPF_SOFTFAIL",
	symDKIMFail:        "DKIM_FAIL",
	symDMARCFail:       "DMARC_FAIL",
}

// String is the symbol's name.
func (s sym) String() string { return symNames[s] }

// symByName returns the symbol called name.
func symByName(name string) (sym, bool) {
	for s, n := range symNames {
		if n == name {
			return sym(s), true
		}
	}
	return 0, false
}

// hitSet is the symbols a message hit, one bit each: no map to allocate
// and no string to hash per message (dear in a Go guest).
type hitSet uint32

// set adds s.
func (h *hitSet) set(s sym) { *h |= 1 << s }

// has reports whether s is in h.
func (h hitSet) has(s sym) bool { return h&(1<<s) != 0 }

// defaultWeights are the scores of the symbols; config "weights" overrides
// single entries, and a weight of 0 switches a symbol off.
var defaultWeights = [numSyms]float64{
	symMissingDate:     1.0,
	symMissingMsgID:    1.0,
	symMissingFrom:     2.0,
	symReplyToMismatch: 1.0,
	symEnvMismatch:     0.5,
	symDisplaySpoof:    4.0,
	symSubjectCaps:     1.5,
	symSubjectEmpty:    1.0,
	symHTMLOnly:        1.0,
	symURLIP:           2.5,
	symURLShortener:    1.0,
	symAttachExe:       4.0,
	symAttachDoubleExt: 4.0,
	symAttachMacro:     3.0,
	symSPFFail:         3.0,
	symSPFSoftfail:     1.0,
	symDKIMFail:        2.0,
	symDMARCFail:       4.0,
}

// defaultShorteners are URL shortener hosts; config "shorteners" replaces
// the list.
var defaultShorteners = []string{
	"bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd",
	"buff.ly", "rebrand.ly", "cutt.ly", "shorturl.at", "tiny.cc", "rb.gy",
	"t.ly", "s.id", "v.gd", "lnkd.in",
}

// defaultMaxScan bounds the bytes of body read per message.
const defaultMaxScan = 1 << 20

// settings is the plugin's [config] table.
type settings struct {
	// Weights override entries of defaultWeights.
	Weights map[string]float64 `json:"weights"`
	// LocalDomains are the domains a display name must not claim.
	LocalDomains []string `json:"local_domains"`
	// Shorteners replaces defaultShorteners when set.
	Shorteners *[]string `json:"shorteners"`
	// MaxScanBytes bounds the body bytes read.
	MaxScanBytes int64 `json:"max_scan_bytes"`
	// ScoreAuthenticated also scores mail from authenticated users.
	ScoreAuthenticated bool `json:"score_authenticated"`
	// TrustHeader reads the message's first Authentication-Results header
	// when the host computed none.
	TrustHeader bool `json:"trust_header"`
}

// rules is the validated configuration, derived anew on every call (the
// plugin keeps no state between calls).
type rules struct {
	weights            [numSyms]float64
	localDomains       []string
	shorteners         map[string]bool
	maxScan            int64
	scoreAuthenticated bool
	trustHeader        bool
}

// loadRules reads and checks the plugin's configuration; the error says
// which key is wrong and how.
func loadRules(c *sdk.Ctx) (*rules, error) {
	var s settings
	if err := c.Config("", &s); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("spamscore: [config] does not decode: %v (weights is a table of numbers, local_domains and shorteners lists of strings, max_scan_bytes a number)", err)
	}
	return newRules(s)
}

// newRules validates s over the defaults.
func newRules(s settings) (*rules, error) {
	r := &rules{weights: defaultWeights, maxScan: defaultMaxScan,
		scoreAuthenticated: s.ScoreAuthenticated, trustHeader: s.TrustHeader}
	for k, v := range s.Weights {
		sy, ok := symByName(k)
		if !ok {
			return nil, fmt.Errorf("spamscore: weights: unknown symbol %q; known symbols are %s", k, strings.Join(symbolNames(), ", "))
		}
		if v < -100 || v > 100 {
			return nil, fmt.Errorf("spamscore: weights: %s = %v is out of range (-100 to 100)", k, v)
		}
		r.weights[sy] = v
	}
	for _, d := range s.LocalDomains {
		d = strings.ToLower(strings.Trim(strings.TrimSpace(d), "."))
		if d == "" || strings.ContainsAny(d, " @") || !strings.Contains(d, ".") && d != "localhost" {
			return nil, fmt.Errorf("spamscore: local_domains: %q is not a domain name like \"example.com\"", d)
		}
		r.localDomains = append(r.localDomains, d)
	}
	short := defaultShorteners
	if s.Shorteners != nil {
		short = *s.Shorteners
	}
	r.shorteners = map[string]bool{}
	for _, h := range short {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, " /:@") {
			return nil, fmt.Errorf("spamscore: shorteners: %q is not a host name like \"bit.ly\"", h)
		}
		r.shorteners[h] = true
	}
	if s.MaxScanBytes < 0 {
		return nil, fmt.Errorf("spamscore: max_scan_bytes must be positive (default %d, 1 MiB), not %d", defaultMaxScan, s.MaxScanBytes)
	}
	if s.MaxScanBytes > 0 {
		r.maxScan = s.MaxScanBytes
	}
	return r, nil
}

// sortedSymbols are the symbols in the order of their names: the order
// their scores are added in.
var sortedSymbols = func() []sym {
	out := make([]sym, numSyms)
	for i := range out {
		out[i] = sym(i)
	}
	sort.Slice(out, func(i, j int) bool { return symNames[out[i]] < symNames[out[j]] })
	return out
}()

// symbolNames lists the known symbols, sorted.
func symbolNames() []string {
	names := make([]string, 0, numSyms)
	for _, s := range sortedSymbols {
		names = append(names, s.String())
	}
	return names
}
