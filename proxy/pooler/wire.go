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

// parseText is a Parse's SQL; a named statement outlives the transaction,
// so until prepared statements are tracked across servers it pins.
func parseText(msg []byte) string {
	body := msg[5:]
	name, rest, ok := cut(body)
	if !ok {
		return ""
	}
	if len(name) > 0 {
		return "PREPARE " + string(name) // pins as an SQL PREPARE does
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
