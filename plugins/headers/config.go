package headers

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

// Field is one header field to add.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Rewrite replaces what Match (an RE2 regular expression) matches in every
// field Name with Replace ($1 names a group).
type Rewrite struct {
	Name    string `json:"name"`
	Match   string `json:"match"`
	Replace string `json:"replace"`
}

// settings is the plugin's [config] table.
type settings struct {
	StripReceivedForAuth bool              `json:"strip_received_for_auth"`
	CustomerIDs          map[string]string `json:"customer_ids"`
	CustomerIDHeader     string            `json:"customer_id_header"`
	SubjectTag           string            `json:"subject_tag"`
	SubjectTagScore      float64           `json:"subject_tag_score"`
	Add                  []Field           `json:"add"`
	Remove               []string          `json:"remove"`
	Rewrite              []Rewrite         `json:"rewrite"`
}

// rule is a compiled rewrite.
type rule struct {
	name    string
	re      *regexp.Regexp
	replace string
}

// rules is the checked configuration, derived anew on every call (the
// plugin keeps no state between calls).
type rules struct {
	settings
	rewrites []rule
}

// loadRules reads and checks the [config] table; errors name the key.
func loadRules(c *sdk.Ctx) (*rules, error) {
	var s settings
	if err := c.Config("", &s); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("headers: [config] does not decode: %v (add and rewrite are lists of tables, remove a list of names, customer_ids a table of strings)", err)
	}
	return newRules(s)
}

// newRules validates s.
func newRules(s settings) (*rules, error) {
	r := &rules{settings: s}
	if r.CustomerIDHeader == "" {
		r.CustomerIDHeader = "X-Customer-ID"
	}
	if err := checkName("customer_id_header", r.CustomerIDHeader); err != nil {
		return nil, err
	}
	for user, id := range s.CustomerIDs {
		if err := checkValue(fmt.Sprintf("customer_ids.%q", user), id); err != nil {
			return nil, err
		}
	}
	if s.SubjectTagScore < 0 {
		return nil, fmt.Errorf("headers: subject_tag_score must be positive, not %v", s.SubjectTagScore)
	}
	if s.SubjectTagScore > 0 && strings.TrimSpace(s.SubjectTag) == "" {
		return nil, fmt.Errorf("headers: subject_tag_score is set but subject_tag is empty; set subject_tag = \"[SPAM]\" or remove subject_tag_score")
	}
	if s.SubjectTag != "" {
		if err := checkValue("subject_tag", s.SubjectTag); err != nil {
			return nil, err
		}
		if s.SubjectTagScore == 0 {
			return nil, fmt.Errorf("headers: subject_tag needs subject_tag_score, the spam score from which the subject is tagged, like 5.0")
		}
	}
	for i, f := range s.Add {
		if err := checkName(fmt.Sprintf("add[%d].name", i), f.Name); err != nil {
			return nil, err
		}
		if err := checkValue(fmt.Sprintf("add[%d].value", i), f.Value); err != nil {
			return nil, err
		}
	}
	for i, n := range s.Remove {
		if err := checkName(fmt.Sprintf("remove[%d]", i), n); err != nil {
			return nil, err
		}
	}
	for i, rw := range s.Rewrite {
		key := fmt.Sprintf("rewrite[%d]", i)
		if err := checkName(key+".name", rw.Name); err != nil {
			return nil, err
		}
		if rw.Match == "" {
			return nil, fmt.Errorf("headers: %s.match is empty; give a regular expression like \"internal\\\\.example\\\\.com\"", key)
		}
		re, err := regexp.Compile(rw.Match)
		if err != nil {
			return nil, fmt.Errorf("headers: %s.match: %v", key, err)
		}
		if err := checkValue(key+".replace", rw.Replace); err != nil {
			return nil, err
		}
		r.rewrites = append(r.rewrites, rule{name: rw.Name, re: re, replace: rw.Replace})
	}
	return r, nil
}

// checkName accepts an RFC 5322 field name: printable ASCII without colon.
func checkName(key, name string) error {
	if name == "" {
		return fmt.Errorf("headers: %s: a header name is required, like \"X-Mailer\"", key)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return fmt.Errorf("headers: %s: %q is not a header name (printable ASCII, no spaces or colon)", key, name)
		}
	}
	return nil
}

// checkValue refuses line breaks and other control characters.
func checkValue(key, v string) error {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("headers: %s: the value may not contain line breaks or control characters", key)
		}
	}
	return nil
}
