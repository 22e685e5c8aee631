package config

import (
	"regexp"
	"strconv"
	"strings"
)

// positions maps key paths to the 1-based line that defines them. Paths
// carry array indexes ("listener[1].role"); the same path with indexes
// removed ("listener.role") maps to its first occurrence, which is how the
// TOML decoder names undecoded keys.
//
// BurntSushi/toml records key positions but does not export them, so this
// walks the text once more. It runs only on text the decoder has accepted,
// so it never reports syntax errors; on anything odd it just stops.
type positions map[string]int

var indexRE = regexp.MustCompile(`\[\d+\]`)

func (p positions) lineOf(key string) int {
	for k := key; k != ""; {
		if l, ok := p[k]; ok {
			return l
		}
		if l, ok := p[indexRE.ReplaceAllString(k, "")]; ok {
			return l
		}
		// Fall back to the enclosing key: a missing "listener[0].name"
		// is reported on the line of "listener[0]".
		i := strings.LastIndexAny(k, ".[")
		if i <= 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func indexPositions(data []byte) positions {
	s := &posScanner{src: data, line: 1, out: positions{}, tables: map[string]int{}}
	s.document()
	return s.out
}

type posScanner struct {
	src    []byte
	i      int
	line   int
	out    positions
	tables map[string]int // array-of-tables name → next index
}

func (s *posScanner) record(path string) {
	if _, ok := s.out[path]; !ok {
		s.out[path] = s.line
	}
	plain := indexRE.ReplaceAllString(path, "")
	if _, ok := s.out[plain]; !ok {
		s.out[plain] = s.line
	}
}

func (s *posScanner) peek() byte {
	if s.i < len(s.src) {
		return s.src[s.i]
	}
	return 0
}

// skip passes blanks, comments and (when newlines is true) line breaks.
func (s *posScanner) skip(newlines bool) {
	for s.i < len(s.src) {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			s.i++
		case c == '\n' && newlines:
			s.line++
			s.i++
		case c == '#':
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
		default:
			return
		}
	}
}

func (s *posScanner) document() {
	table := ""
	for {
		s.skip(true)
		if s.i >= len(s.src) {
			return
		}
		if s.peek() == '[' {
			array := s.i+1 < len(s.src) && s.src[s.i+1] == '['
			s.i++
			if array {
				s.i++
			}
			name := s.key()
			if !array {
				name = s.inArray(name)
			}
			if array {
				n := s.tables[name]
				s.tables[name] = n + 1
				name += "[" + strconv.Itoa(n) + "]"
			}
			table = name
			s.record(table)
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
			continue
		}
		k := s.key()
		if k == "" || s.peek() != '=' {
			return
		}
		s.i++
		s.value(join(table, k))
	}
}

// inArray indexes a sub-table header of the last element of an array of
// tables: "[listener.pool]" after the second "[[listener]]" is
// "listener[1].pool".
func (s *posScanner) inArray(name string) string {
	for i := strings.LastIndexByte(name, '.'); i > 0; i = strings.LastIndexByte(name[:i], '.') {
		if n := s.tables[name[:i]]; n > 0 {
			return name[:i] + "[" + strconv.Itoa(n-1) + "]" + name[i:]
		}
	}
	return name
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// key reads a possibly dotted, possibly quoted key and stops after any
// closing brackets of a table header.
func (s *posScanner) key() string {
	var parts []string
	for {
		s.skip(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			start := s.i
			s.str()
			raw := string(s.src[start:s.i])
			if uq, err := strconv.Unquote(raw); err == nil && c == '"' {
				parts = append(parts, uq)
			} else {
				parts = append(parts, strings.Trim(raw, "'"))
			}
		default:
			start := s.i
			for s.i < len(s.src) && isBare(s.src[s.i]) {
				s.i++
			}
			if s.i == start {
				return strings.Join(parts, ".")
			}
			parts = append(parts, string(s.src[start:s.i]))
		}
		s.skip(false)
		switch s.peek() {
		case '.':
			s.i++
		case ']':
			for s.peek() == ']' {
				s.i++
			}
			return strings.Join(parts, ".")
		default:
			return strings.Join(parts, ".")
		}
	}
}

func isBare(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (s *posScanner) value(path string) {
	s.record(path)
	s.skip(false)
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.i++
		for n := 0; ; n++ {
			s.skip(true)
			if s.peek() == ']' || s.i >= len(s.src) {
				s.i++
				return
			}
			s.value(path + "[" + strconv.Itoa(n) + "]")
			s.skip(true)
			if s.peek() == ',' {
				s.i++
			}
		}
	case '{':
		s.i++
		for {
			s.skip(false)
			if s.peek() == '}' || s.i >= len(s.src) {
				s.i++
				return
			}
			k := s.key()
			if k == "" || s.peek() != '=' {
				return
			}
			s.i++
			s.value(path + "." + k)
			s.skip(false)
			if s.peek() == ',' {
				s.i++
			}
		}
	default:
		for s.i < len(s.src) {
			if c := s.src[s.i]; c == ',' || c == ']' || c == '}' || c == '\n' || c == '#' {
				return
			}
			s.i++
		}
	}
}

// str passes a basic, literal or multi-line string, counting lines.
func (s *posScanner) str() {
	q := s.src[s.i]
	multi := s.i+2 < len(s.src) && s.src[s.i+1] == q && s.src[s.i+2] == q
	if multi {
		s.i += 3
	} else {
		s.i++
	}
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\\' && q == '"':
			s.i += 2
			continue
		case c == '\n':
			s.line++
		case c == q && !multi:
			s.i++
			return
		case c == q && multi && s.i+2 < len(s.src) && s.src[s.i+1] == q && s.src[s.i+2] == q:
			s.i += 3
			for s.peek() == q { // up to two quotes may end the content
				s.i++
			}
			return
		}
		s.i++
	}
}
