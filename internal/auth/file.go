package auth

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxFileLine bounds one auth_file line.
const maxFileLine = 64 << 10

// ParseFile reads pgbouncer's auth_file format: one `"user" "secret"` a
// line (inside quotes, "" is a literal quote), the rest of the line
// ignored; blank lines and lines starting with ';' or '#' are comments. A
// later line for the same user wins. Errors give the line number and the
// reason, never the secret.
func ParseFile(r io.Reader) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxFileLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t\r\f\v")
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		user, rest, err := quoted(line, "user name")
		if err == nil && user == "" {
			err = fmt.Errorf("empty user name")
		}
		var secret string
		if err == nil {
			secret, _, err = quoted(strings.TrimLeft(rest, " \t"), "secret")
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		users[user] = secret
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("after %d lines: %w", len(users), err)
	}
	return users, nil
}

// quoted reads one double-quoted string at the start of s.
func quoted(s, what string) (val, rest string, err error) {
	if s == "" || s[0] != '"' {
		return "", "", fmt.Errorf("expected a double-quoted %s", what)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", fmt.Errorf("unterminated quoted %s", what)
}

// LoadFile reads an auth_file (see ParseFile); errors name the file.
func LoadFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth_file: %w", err)
	}
	defer f.Close()
	users, err := ParseFile(f)
	if err != nil {
		return nil, fmt.Errorf("auth_file %s: %w", path, err)
	}
	return users, nil
}
