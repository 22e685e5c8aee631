package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

var decodeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// maxFileSize bounds how much of a config file is read.
const maxFileSize = 4 << 20

// LoadFile reads, defaults and validates the config file at path.
func LoadFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := Load(f, path)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(filepath.Dir(path)); err == nil {
		cfg.Dir = abs
	}
	return cfg, cfg.checkFiles(path)
}

// Load decodes the TOML in r, fills defaults and validates. name labels
// every error (usually the file path). All problems are returned at once as
// an *Errors.
func Load(r io.Reader, name string) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", name, maxFileSize)
	}
	var cfg Config
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Errors{File: name, List: []Error{{Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}}}
		}
		// Type mismatches come as "toml: line N (last key "k"): msg".
		if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &Errors{File: name, List: []Error{{Line: line, Key: m[2], Msg: m[3]}}}
		}
		return nil, &Errors{File: name, List: []Error{{Msg: strings.TrimPrefix(err.Error(), "toml: ")}}}
	}
	v := &validator{pos: indexPositions(data)}
	for _, k := range md.Undecoded() {
		v.add(v.pos.lineOf(k.String()), k.String(), "unknown key")
	}
	cfg.setDefaults()
	cfg.validate(v)
	if len(v.errs) > 0 {
		return nil, &Errors{File: name, List: v.errs}
	}
	return &cfg, nil
}

// Error is one problem in a config file.
type Error struct {
	Line int    // 1-based; 0 when unknown
	Key  string // key path, e.g. "listener[1].role"
	Msg  string
}

// Errors is every problem found in one file.
type Errors struct {
	File string
	List []Error
}

func (e *Errors) Error() string {
	var b strings.Builder
	for i, it := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if it.Line > 0 {
			fmt.Fprintf(&b, ":%d", it.Line)
		}
		if it.Key != "" {
			fmt.Fprintf(&b, ": %s", it.Key)
		}
		fmt.Fprintf(&b, ": %s", it.Msg)
	}
	return b.String()
}

type validator struct {
	pos  positions
	errs []Error
}

func (v *validator) add(line int, key, format string, args ...any) {
	v.errs = append(v.errs, Error{Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// errorf records a problem with key (an indexed path), finding its line.
func (v *validator) errorf(key, format string, args ...any) {
	v.add(v.pos.lineOf(key), key, format, args...)
}

// oneOf checks that the value at key is one of allowed.
func (v *validator) oneOf(key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.errorf(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

func (v *validator) duration(key string, d Duration) {
	switch {
	case d.err != nil:
		v.errorf(key, "%v", d.err)
	case d.Duration <= 0:
		v.errorf(key, "must be positive, got %q", d.raw)
	}
}

// checkFiles verifies files named by the config exist; LoadFile only,
// because Load may be fed text with no directory.
func (c *Config) checkFiles(name string) error {
	type file struct{ key, path string }
	var files []file
	if c.TLS != nil && c.TLS.ClientMode != ClientTLSDisable {
		files = append(files, file{"tls.cert", c.TLS.Cert}, file{"tls.key", c.TLS.Key})
	}
	cl := c.Cluster
	for _, f := range []file{
		{"cluster.etcd.ca", cl.Etcd.CA}, {"cluster.etcd.cert", cl.Etcd.Cert}, {"cluster.etcd.key", cl.Etcd.Key},
		{"cluster.consul.ca", cl.Consul.CA}, {"cluster.consul.cert", cl.Consul.Cert}, {"cluster.consul.key", cl.Consul.Key},
		{"cluster.probe.password_file", cl.Probe.PasswordFile}, {"auth.file", c.Auth.File},
		{"admin.http_password_file", c.Admin.HTTPPasswordFile}, {"admin.cert", c.Admin.Cert}, {"admin.key", c.Admin.Key},
	} {
		if f.path != "" {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil
	}
	var list []Error
	pos := positions{}
	if data, err := os.ReadFile(name); err == nil {
		pos = indexPositions(data)
	}
	for _, f := range files {
		key, p := f.key, f.path
		if _, err := os.Stat(c.Path(p)); err != nil {
			list = append(list, Error{Line: pos.lineOf(key), Key: key, Msg: fmt.Sprintf("cannot read %s: %v", c.Path(p), errors.Unwrap(err))})
		}
	}
	if len(list) > 0 {
		return &Errors{File: name, List: list}
	}
	return nil
}

// Path resolves p against the config file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Encode writes the effective configuration as TOML.
func (c *Config) Encode(w io.Writer) error {
	return toml.NewEncoder(w).Encode(c)
}
