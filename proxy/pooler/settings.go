package pooler

import "strings"

// A setting the server does not report cannot follow the client through
// ParameterStatus. When the client changes one with SET or RESET (or
// resets them all with RESET ALL or DISCARD ALL) in a request of its own,
// outside a transaction block, Switchyard records the change once the
// server has made it, and applies it on every server the client uses
// after, as it does a startup parameter; the client is not pinned. pgjdbc
// sends "SET extra_float_digits = 3" at every connect, and asyncpg's pool
// "RESET ALL" at every release.

// change is one change of the client's settings.
type change struct {
	name, value string
	reset       bool // RESET name, SET name TO DEFAULT
	all         bool // RESET ALL, DISCARD ALL
}

// followable reads sql, which pins for why (or resets a reported
// setting), and returns the setting changes it makes when they are all it
// does that pins and it controls no transaction; ok is false when it must
// pin.
func followable(sql string, reportsSearchPath bool) (changes []change, ok bool) {
	sc := scanner{src: sql}
	for {
		start := sc.i
		first := sc.word()
		if first == "" && sc.done() {
			return changes, len(changes) > 0
		}
		switch first {
		case "begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "prepare":
			return nil, false
		case "discard":
			if sc.word() == "all" && sc.word() == "" {
				changes = append(changes, change{all: true})
			}
		default:
			sc.resets = false
			if statement(&sc, first, reportsSearchPath) != "" || sc.resets {
				sc = scanner{src: sql, i: start}
				c, ok := settingChange(&sc)
				if !ok {
					return nil, false
				}
				changes = append(changes, c)
			}
		}
		sc.nextStatement()
	}
}

// settingChange reads one SET or RESET of a single setting to a single
// value, or RESET ALL.
func settingChange(sc *scanner) (change, bool) {
	switch sc.word() {
	case "reset":
		n := sc.word()
		if n == "all" && sc.word() == "" {
			return change{all: true}, true
		}
		if !settable(n) || sc.word() != "" {
			return change{}, false
		}
		return change{name: canonical(n), reset: true}, true
	case "set":
		n := sc.word()
		if n == "session" {
			n = sc.word()
		}
		if n == "time" || n == "names" {
			// SET TIME ZONE DEFAULT | LOCAL, SET NAMES DEFAULT: resets.
			// A value follows the client by report.
			name := "client_encoding"
			if n == "time" {
				if sc.word() != "zone" {
					return change{}, false
				}
				name = "TimeZone"
			}
			if v := sc.word(); (v == "default" || v == "local" && name == "TimeZone") && sc.word() == "" {
				return change{name: name, reset: true}, true
			}
			return change{}, false
		}
		if !settable(n) {
			return change{}, false
		}
		sc.blank()
		if sc.i < len(sc.src) && sc.src[sc.i] == '=' {
			sc.i++
		} else if sc.word() != "to" {
			return change{}, false
		}
		v, isDefault, ok := settingValue(sc)
		if !ok || sc.word() != "" {
			return change{}, false
		}
		return change{name: canonical(n), value: v, reset: isDefault}, true
	}
	return change{}, false
}

// settable: a plain setting name a client may change (not SET ROLE and
// the like, not a read-only one, not a dotted custom setting, which the
// scanner does not read as one word).
func settable(n string) bool {
	switch n {
	case "", "?", "role", "authorization", "characteristics", "local", "transaction", "constraints", "names", "time", "all", "session":
		return false
	}
	return !readOnly[canonical(n)]
}

// settingValue reads one value: a quoted string (without backslashes), a
// number, or a word (lower-cased, as PostgreSQL reads it; DEFAULT resets).
func settingValue(sc *scanner) (v string, isDefault, ok bool) {
	sc.blank()
	src := sc.src
	if sc.i >= len(src) {
		return "", false, false
	}
	if src[sc.i] == '\'' {
		var b strings.Builder
		for j := sc.i + 1; j < len(src); j++ {
			switch c := src[j]; {
			case c == '\\':
				return "", false, false
			case c == '\'' && j+1 < len(src) && src[j+1] == '\'':
				b.WriteByte('\'')
				j++
			case c == '\'':
				sc.i = j + 1
				return b.String(), false, true
			default:
				b.WriteByte(c)
			}
		}
		return "", false, false
	}
	j := sc.i
	for j < len(src) && (isWordByte(src[j]) || src[j] == '.' || src[j] == '-' || src[j] == '+') {
		j++
	}
	tok := src[sc.i:j]
	sc.i = j
	if tok == "" || tok[0] == '$' {
		return "", false, false
	}
	if strings.EqualFold(tok, "default") {
		return "", true, true
	}
	if c := tok[0]; c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' {
		tok = strings.ToLower(tok)
	}
	return tok, false, true
}

// unknown is a setting value no server has: what a server has is not
// known.
const unknown = "\x00unknown"

// apply records changes the server has made (or, uncertain, may have
// made): server holds what Switchyard knows of the server's settings. It
// returns ParameterStatus messages the client is owed (a reset reported
// setting goes back to the client's own startup value, which Switchyard
// then re-applies).
func (m *Machine) apply(changes []change, server map[string]string, uncertain bool) []byte {
	version := server["server_version"]
	var owed []byte
	for _, c := range changes {
		switch {
		case c.all:
			for k := range server {
				switch {
				case IsReported(k, version):
				case uncertain:
					server[k] = unknown
				default:
					delete(server, k)
				}
			}
			clear(m.want)
			for k, v := range m.startup {
				m.want[k] = v
				if IsReported(k, version) && !readOnly[k] && server[k] != v {
					owed = appendParameterStatus(owed, k, v)
				}
			}
			m.resync = true
		case c.reset && IsReported(c.name, version):
			// The server went back to its own default and said so in
			// ParameterStatus; the client's is its startup value.
			if v, ok := m.startup[c.name]; ok && server[c.name] != v {
				m.want[c.name] = v
				owed = appendParameterStatus(owed, c.name, v)
				m.resync = true
			}
		case c.reset:
			delete(server, c.name)
			if v, ok := m.startup[c.name]; ok {
				m.want[c.name] = v
				m.resync = true
			} else {
				delete(m.want, c.name)
			}
		default:
			m.want[c.name] = c.value
			server[c.name] = c.value
		}
	}
	m.fp = 0
	return owed
}
