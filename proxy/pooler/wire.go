package pooler

import (
	"encoding/binary"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
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

// decodeError decodes an ErrorResponse; ok is false if it does not
// decode.
func decodeError(msg []byte) (e pgproto3.ErrorResponse, ok bool) {
	return e, len(msg) >= 5 && e.Decode(msg[5:]) == nil
}

// planChanged reports PostgreSQL's "cached plan must not change result
// type": a prepared statement's tables changed under it.
func planChanged(msg []byte) bool {
	e, ok := decodeError(msg)
	return ok && e.Code == "0A000" && strings.Contains(e.Message, "cached plan must not change result type")
}

// renameInError appends msg, an ErrorResponse, with old replaced by new
// in its message (msg itself if it does not decode).
func renameInError(b, msg []byte, old, new string) []byte {
	e, ok := decodeError(msg)
	if !ok {
		return append(b, msg...)
	}
	e.Message = strings.ReplaceAll(e.Message, old, new)
	out, err := e.Encode(b)
	if err != nil {
		return append(b, msg...)
	}
	return out
}
