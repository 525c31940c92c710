package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the commented built-in configuration, the text that
// `sluice config default` prints for an operator to copy.
func DefaultTOML() []byte { return bytes.Clone(defaultTOML) }

// DefaultName is the file name errors in the built-in configuration carry.
const DefaultName = "default.toml"

// Default returns the built-in configuration with {data_dir} expanded. It
// panics if the embedded file is broken, which its tests rule out.
func Default() *Config {
	c, err := Parse(DefaultName, nil)
	if err != nil {
		panic("config: built-in default does not load: " + err.Error())
	}
	return c
}

// Load reads the file at path over the built-in defaults: every key the file
// leaves out keeps its default value. Errors name path, line and key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data, named name in errors, over the built-in defaults,
// checks every value and expands {data_dir} in the paths that use it. An
// empty data yields the defaults.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, nil)
}

// parse is Parse with adjust, when not nil, run on the decoded values
// before they are checked and expanded.
func parse(name string, data []byte, adjust func(*Config)) (*Config, error) {
	c, err := decodeDefault()
	if err != nil {
		return nil, err
	}
	if err := decodeStrict(data, c); err != nil {
		return nil, decodeErrors(name, err)
	}
	if adjust != nil {
		adjust(c)
	}
	ix := indexKeys(data)
	if err := joinErrors(c.validate(name, ix)); err != nil {
		return nil, err
	}
	c.normalize()
	return c, nil
}

// decodeDefault decodes the embedded default without validating it.
func decodeDefault() (*Config, error) {
	c := new(Config)
	if err := decodeStrict(defaultTOML, c); err != nil {
		return nil, decodeErrors(DefaultName, err)
	}
	return c, nil
}

// decodeStrict decodes data into c, refusing keys c has no field for.
func decodeStrict(data []byte, c *Config) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(c)
}

// normalize lowercases domains, masks networks and expands {data_dir}.
func (c *Config) normalize() {
	for i, d := range c.LocalDomains {
		c.LocalDomains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	for i, p := range c.TrustedNetworks {
		c.TrustedNetworks[i] = p.Masked()
	}
	c.Local.Maildir = c.Path(c.Local.Maildir)
	c.Admin.Socket = c.Path(c.Admin.Socket)
	c.Plugins.Dir = c.Path(c.Plugins.Dir)
	c.Plugins.CacheDir = c.Path(c.Plugins.CacheDir)
	for i := range c.DKIM.Keys {
		c.DKIM.Keys[i].PrivateKey = c.Path(c.DKIM.Keys[i].PrivateKey)
		c.DKIM.Keys[i].Domain = strings.ToLower(strings.TrimSuffix(c.DKIM.Keys[i].Domain, "."))
	}
	c.TLS.Cert = c.Path(c.TLS.Cert)
	c.TLS.Key = c.Path(c.TLS.Key)
	for i := range c.TLS.Extra {
		c.TLS.Extra[i].Cert = c.Path(c.TLS.Extra[i].Cert)
		c.TLS.Extra[i].Key = c.Path(c.TLS.Extra[i].Key)
	}
	c.Submission.UsersFile = c.Path(c.Submission.UsersFile)
	c.HTTP.UsersFile = c.Path(c.HTTP.UsersFile)
	c.Addressing.normalize(c)
}

// Path expands {data_dir} in a path template. Other placeholders, such as
// {domain} and {user} in Local.Maildir, are left for the caller.
func (c *Config) Path(tmpl string) string {
	return strings.ReplaceAll(tmpl, "{data_dir}", strings.TrimRight(c.DataDir, "/"))
}
