package pooler

import (
	"strings"
)

// Session state that cannot follow a client from server to server pins
// it to its server until it leaves (see README, "What transaction mode
// does with session state"). sessionState reads the SQL a client sends
// (a simple Query, or a Parse) and returns why it pins, or "". It
// tokenises just enough to find statement starts and the words after
// them, skipping comments, quoted strings and dollar-quoted bodies; it is
// deliberately eager: a statement it cannot place pins.
func sessionState(sql string, reportsSearchPath bool) string {
	why, _ := scanSessionState(sql, reportsSearchPath)
	return why
}

// scanSessionState is sessionState, and also reports whether sql may
// reset a setting the server reports (RESET, SET ... TO DEFAULT): that
// follows the client, but the server goes back to its own default, not
// to the client's startup value (see Machine.pin).
func scanSessionState(sql string, reportsSearchPath bool) (why string, resetsReported bool) {
	sc := scanner{src: sql}
	for {
		first := sc.word()
		if first == "" && sc.done() {
			return "", sc.resets
		}
		if why := statement(&sc, first, reportsSearchPath); why != "" {
			return why, sc.resets
		}
		sc.nextStatement()
	}
}

// statement judges one statement from its first word on; sc is left
// inside it.
func statement(sc *scanner, first string, reportsSearchPath bool) string {
	switch first {
	case "set":
		return set(sc, reportsSearchPath)
	case "reset":
		w := sc.word()
		if w == "all" || w == "session" || w == "role" {
			return "RESET " + strings.ToUpper(w)
		}
		if followsByReport(w, reportsSearchPath) {
			sc.resets = true
			return ""
		}
		return "RESET of a setting that does not follow the client (" + w + ")"
	case "listen":
		return "LISTEN"
	case "prepare":
		return "SQL PREPARE"
	case "declare":
		if sc.restHasPair("with", "hold") {
			return "a cursor WITH HOLD"
		}
	case "create":
		for i := 0; i < 4; i++ {
			switch sc.word() {
			case "temp", "temporary":
				return "a temporary table"
			case "table", "view", "sequence", "":
				i = 4
			}
		}
	case "load":
		return "LOAD"
	case "discard":
		if sc.word() == "all" { // resets the client's settings (see settings.go)
			return "DISCARD ALL"
		}
	}
	if sc.restHasFunc("pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
		"pg_try_advisory_lock_shared", "set_config", "dblink_connect") {
		return "a session-level function (" + sc.hit + ")"
	}
	return ""
}

// set judges SET: LOCAL and TRANSACTION end with the transaction; a
// setting the server reports follows the client; anything else pins.
func set(sc *scanner, reportsSearchPath bool) string {
	w := sc.word()
	if w == "session" {
		w = sc.word()
		if w == "characteristics" || w == "authorization" {
			return "SET SESSION " + strings.ToUpper(w)
		}
	}
	switch w {
	case "local", "transaction", "constraints":
		return ""
	case "names":
		w = "client_encoding"
	case "time":
		w = "timezone"
	}
	if followsByReport(w, reportsSearchPath) {
		// SET ... TO DEFAULT, SET TIME ZONE LOCAL: a reset. Any such
		// word may be one (read exactly by followable).
		for v := sc.word(); v != ""; v = sc.word() {
			sc.resets = sc.resets || v == "default" || v == "local"
		}
		return ""
	}
	return "SET " + w
}

func followsByReport(name string, reportsSearchPath bool) bool {
	n := canonical(name)
	if n == "search_path" {
		return reportsSearchPath
	}
	return reported[n] && !readOnly[n]
}

// scanner walks SQL text a word at a time, lower-cased.
type scanner struct {
	src    string
	i      int
	hit    string
	resets bool // a statement may reset a reported setting (scanSessionState)
}

func (s *scanner) done() bool { return s.i >= len(s.src) }

// skip passes blanks, comments, and (when stopAtSemicolon is false)
// everything else that is not a word start.
func (s *scanner) blank() {
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(':
			s.i++
		case strings.HasPrefix(s.src[s.i:], "--"):
			if j := strings.IndexByte(s.src[s.i:], '\n'); j >= 0 {
				s.i += j + 1
			} else {
				s.i = len(s.src)
			}
		case strings.HasPrefix(s.src[s.i:], "/*"):
			s.blockComment()
		default:
			return
		}
	}
}

func (s *scanner) blockComment() {
	depth := 0
	for s.i < len(s.src) {
		switch {
		case strings.HasPrefix(s.src[s.i:], "/*"):
			depth++
			s.i += 2
		case strings.HasPrefix(s.src[s.i:], "*/"):
			depth--
			s.i += 2
			if depth == 0 {
				return
			}
		default:
			s.i++
		}
	}
}

// word returns the next word of the current statement, lower-cased and
// unquoted, or "" at a semicolon or the end.
func (s *scanner) word() string {
	s.blank()
	if s.i >= len(s.src) || s.src[s.i] == ';' {
		return ""
	}
	if s.src[s.i] == '"' {
		j := s.i + 1
		for j < len(s.src) && (s.src[j] != '"' || (j+1 < len(s.src) && s.src[j+1] == '"')) {
			if s.src[j] == '"' {
				j++
			}
			j++
		}
		w := strings.ReplaceAll(s.src[s.i+1:min(j, len(s.src))], `""`, `"`)
		s.i = min(j+1, len(s.src))
		return strings.ToLower(w)
	}
	j := s.i
	for j < len(s.src) && isWordByte(s.src[j]) {
		j++
	}
	if j == s.i { // punctuation: pass it as a word of its own
		s.skipToken()
		return "?"
	}
	w := strings.ToLower(s.src[s.i:j])
	s.i = j
	return w
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipToken passes one token that is not a word: a quoted string, a
// dollar-quoted body, or one character.
func (s *scanner) skipToken() {
	c := s.src[s.i]
	switch {
	case c == '\'':
		s.i++
		for s.i < len(s.src) {
			if s.src[s.i] == '\\' && s.i+1 < len(s.src) {
				// E'' strings escape with backslashes; for standard
				// strings this can only end a string later than it
				// ends, which at worst pins.
				s.i += 2
				continue
			}
			if s.src[s.i] == '\'' {
				if s.i+1 < len(s.src) && s.src[s.i+1] == '\'' {
					s.i += 2
					continue
				}
				s.i++
				return
			}
			s.i++
		}
	case c == '$':
		end := strings.IndexByte(s.src[s.i+1:], '$')
		if end < 0 {
			s.i++
			return
		}
		tag := s.src[s.i : s.i+end+2]
		body := s.i + len(tag)
		if k := strings.Index(s.src[body:], tag); k >= 0 {
			s.i = body + k + len(tag)
		} else {
			s.i = len(s.src)
		}
	default:
		s.i++
	}
}

// nextStatement moves past the current statement's semicolon.
func (s *scanner) nextStatement() {
	for s.word() != "" {
	}
	if s.i < len(s.src) && s.src[s.i] == ';' {
		s.i++
	}
}

// restHas reports whether word appears in the rest of the statement.
func (s *scanner) restHas(word string) bool {
	for w := s.word(); w != ""; w = s.word() {
		if w == word {
			return true
		}
	}
	return false
}

// restHasPair reports whether the words a then b appear in the rest of
// the statement.
func (s *scanner) restHasPair(a, b string) bool {
	prev := ""
	for w := s.word(); w != ""; w = s.word() {
		if prev == a && w == b {
			return true
		}
		prev = w
	}
	return false
}

// restHasFunc reports whether one of names appears as a word in the rest
// of the statement, recording it in hit.
func (s *scanner) restHasFunc(names ...string) bool {
	for w := s.word(); w != ""; w = s.word() {
		for _, n := range names { // "pg_catalog." is a word of its own
			if w == n {
				s.hit = n
				return true
			}
		}
	}
	return false
}

// deallocateName reads a Query that is one SQL statement "DEALLOCATE
// [PREPARE] name" and returns the name as PostgreSQL would resolve it
// (lower-cased unless quoted); DEALLOCATE ALL is not one.
func deallocateName(sql string) (string, bool) {
	sc := scanner{src: sql}
	if sc.word() != "deallocate" {
		return "", false
	}
	sc.blank()
	start := sc.i
	w := sc.word()
	if w == "prepare" {
		sc.blank()
		start = sc.i
		w = sc.word()
	}
	raw := sql[start:sc.i]
	if w == "" || w == "?" || raw == "" || strings.EqualFold(raw, "all") {
		return "", false
	}
	if sc.word() != "" {
		return "", false
	}
	sc.nextStatement()
	if sc.word(); !sc.done() {
		return "", false // more statements follow
	}
	if raw[0] == '"' {
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return "", false
		}
		return strings.ReplaceAll(raw[1:len(raw)-1], `""`, `"`), true
	}
	return strings.ToLower(raw), true
}

// Deallocates reports whether sql (a server_reset_query) removes every
// prepared statement: DISCARD ALL or DEALLOCATE ALL is among its
// statements.
func Deallocates(sql string) bool {
	sc := scanner{src: sql}
	for !sc.done() {
		switch sc.word() {
		case "discard":
			if sc.word() == "all" {
				return true
			}
		case "deallocate":
			w := sc.word()
			if w == "prepare" {
				w = sc.word()
			}
			if w == "all" {
				return true
			}
		}
		sc.nextStatement()
	}
	return false
}

// mentionsDeallocation is a quick test that sql may hold DISCARD or
// DEALLOCATE, before Deallocates reads it properly.
func mentionsDeallocation(sql string) bool {
	for i := 0; i+7 <= len(sql); i++ {
		if c := sql[i] | 0x20; c == 'd' && (strings.EqualFold(sql[i:i+7], "discard") ||
			i+10 <= len(sql) && strings.EqualFold(sql[i:i+10], "deallocate")) {
			return true
		}
	}
	return false
}
