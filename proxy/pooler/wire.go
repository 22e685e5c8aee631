package pooler

import (
	"encoding/binary"
	"strings"
)

// queryText is a Query's SQL.
func queryText(msg []byte) string {
	body := msg[5:]
	if i := strings.IndexByte(string(body), 0); i >= 0 {
		body = body[:i]
	}
	return string(body)
}

// parseText is a Parse's SQL. A named statement outlives the
// transaction: unless prepared statements are tracked across servers
// (tracked), it pins as an SQL PREPARE does.
func parseText(msg []byte, tracked bool) string {
	body := msg[5:]
	name, rest, ok := cut(body)
	if !ok {
		return ""
	}
	if len(name) > 0 && !tracked {
		return "PREPARE " + string(name)
	}
	q, _, _ := cut(rest)
	return string(q)
}

func cut(b []byte) (before, after []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

func parameterStatus(msg []byte) (name, value string, ok bool) {
	n, rest, ok := cut(msg[5:])
	if !ok {
		return "", "", false
	}
	v, _, ok := cut(rest)
	return string(n), string(v), ok
}

// fatal reports whether an ErrorResponse has severity FATAL or PANIC.
func fatal(msg []byte) bool {
	b := msg[5:]
	for len(b) > 1 {
		code := b[0]
		v, rest, ok := cut(b[1:])
		if !ok {
			return false
		}
		if code == 'V' || code == 'S' {
			return string(v) == "FATAL" || string(v) == "PANIC"
		}
		b = rest
	}
	return false
}

func readyForQuery(status byte) []byte { return []byte{'Z', 0, 0, 0, 5, status} }

func appendQuery(b []byte, sql string) []byte {
	b = append(b, 'Q')
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(sql)+1))
	b = append(b, sql...)
	return append(b, 0)
}

func appendParameterStatus(b []byte, k, v string) []byte {
	b = append(b, 'S')
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(k)+1+len(v)+1))
	b = append(b, k...)
	b = append(b, 0)
	b = append(b, v...)
	return append(b, 0)
}

// errorField is field code of an ErrorResponse or NoticeResponse.
func errorField(msg []byte, code byte) []byte {
	b := msg[5:]
	for len(b) > 1 {
		c := b[0]
		v, rest, ok := cut(b[1:])
		if !ok {
			return nil
		}
		if c == code {
			return v
		}
		b = rest
	}
	return nil
}

// planChanged reports PostgreSQL's "cached plan must not change result
// type": a prepared statement's tables changed under it.
func planChanged(msg []byte) bool {
	return string(errorField(msg, 'C')) == "0A000" &&
		strings.Contains(string(errorField(msg, 'M')), "cached plan must not change result type")
}

// renameInError appends msg, an ErrorResponse, with old replaced by new
// in its message.
func renameInError(b, msg []byte, old, new string) []byte {
	start := len(b)
	b = append(b, msg[0], 0, 0, 0, 0)
	f := msg[5:]
	for len(f) > 1 {
		c := f[0]
		v, rest, ok := cut(f[1:])
		if !ok {
			break
		}
		b = append(b, c)
		if c == 'M' {
			b = append(b, strings.ReplaceAll(string(v), old, new)...)
		} else {
			b = append(b, v...)
		}
		b = append(b, 0)
		f = rest
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-1))
	return b
}
