package auth

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFile(t *testing.T) {
	in := `; pgbouncer userlist
# another comment
   ; indented comment

"alice" "md553f48b7c4b76a86ce72276c5755f217d"
"bob"	"pass with ""quotes"" and spaces"   trailing junk ignored
  "carol"	  "x"
"dave" ""
"alice" "later wins"
"we""ird" "s"
`
	got, err := ParseFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"alice":  "later wins",
		"bob":    `pass with "quotes" and spaces`,
		"carol":  "x",
		"dave":   "",
		`we"ird`: "s",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestParseFileErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice \"x\"", "line 1: expected a double-quoted user name"},
		{"\n\"alice\" topsecret", "line 2: expected a double-quoted secret"},
		{"\"alice\" \"topsecret", "line 1: unterminated quoted secret"},
		{"\"alice", "line 1: unterminated quoted user name"},
		{"; c\n\"\" \"topsecret\"", "line 2: empty user name"},
		{"\"a\" \"b\"\n\"alice\"", "line 2: expected a double-quoted secret"},
	} {
		_, err := ParseFile(strings.NewReader(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: got %v, want %s", c.in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "userlist.txt")
	os.WriteFile(path, []byte("\"u\" \"p\"\nbroken\n"), 0o600)
	_, err := LoadFile(path)
	if err == nil || err.Error() != "auth_file "+path+": line 2: expected a double-quoted user name" {
		t.Fatalf("got %v", err)
	}
	os.WriteFile(path, []byte("\"u\" \"p\"\n"), 0o600)
	if m, err := LoadFile(path); err != nil || m["u"] != "p" {
		t.Fatalf("got %v %v", m, err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("got %v", err)
	}
}
