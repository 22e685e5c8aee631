package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// pencilSCRAM is "pencil" under salt "0123456789abcdef" and 4096
// iterations, computed independently (Python hashlib).
const pencilSCRAM = "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$nQpbZ77WudtqufPwikHXGRt6g2QJ4zns8bZLw273DRM=:jn2amWP1q1h+jgjy0YTO14S6/F02SV7taipOeB7ef20="

func TestParseSecret(t *testing.T) {
	for _, c := range []struct{ in, kind string }{
		{"", "none"},
		{"hunter2", "plain"},
		{"md553f48b7c4b76a86ce72276c5755f217d", "md5"},
		{"md553F48B7C4B76A86CE72276C5755F217D", "plain"}, // uppercase: not md5, as in PostgreSQL
		{"md553f48b7c4b76a86ce72276c5755f217", "plain"},  // short
		{pencilSCRAM, "scram-sha-256"},
		{"SCRAM-SHA-256$4096:MDEy$bad:keys", "plain"},
		{"SCRAM-SHA-256$0:MDEyMzQ1Njc4OWFiY2RlZg==$nQpbZ77WudtqufPwikHXGRt6g2QJ4zns8bZLw273DRM=:jn2amWP1q1h+jgjy0YTO14S6/F02SV7taipOeB7ef20=", "plain"},
	} {
		if got := ParseSecret(c.in).Kind(); got != c.kind {
			t.Errorf("ParseSecret(%q).Kind() = %s, want %s", c.in, got, c.kind)
		}
	}
	sc := ParseSecret(pencilSCRAM).SCRAM
	if sc.Iterations != 4096 || string(sc.Salt) != "0123456789abcdef" || sc.Encode() != pencilSCRAM {
		t.Fatalf("parsed %d %q, encodes as %s", sc.Iterations, sc.Salt, sc.Encode())
	}
}

func TestSCRAMFromPasswordMatchesVector(t *testing.T) {
	sc, err := scramFromPassword("pencil", []byte("0123456789abcdef"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Encode() != pencilSCRAM {
		t.Fatalf("got %s", sc.Encode())
	}
	ck, _, _ := saltedKeys("pencil", sc.Salt, sc.Iterations)
	if !sc.verifyClientKey(ck) || sc.verifyClientKey(ck[1:]) {
		t.Fatal("verifyClientKey")
	}
	a, _ := NewSCRAMSecret("pencil", 0)
	b, _ := NewSCRAMSecret("pencil", 0)
	if a.Iterations != DefaultSCRAMIterations || bytes.Equal(a.Salt, b.Salt) || a.Equal(b) || !a.Equal(ParseSecret(a.Encode()).SCRAM) {
		t.Fatal("NewSCRAMSecret: salts must be random, secrets round-trip")
	}
}

func TestMD5Vectors(t *testing.T) {
	// Independently computed: md5("secret"+"postgres"), then with salt 01020304.
	if got := md5Secret("secret", "postgres"); got != "md553f48b7c4b76a86ce72276c5755f217d" {
		t.Fatalf("md5Secret = %s", got)
	}
	if got := md5Response("md553f48b7c4b76a86ce72276c5755f217d", [4]byte{1, 2, 3, 4}); got != "md5bb41a296aab6baccb36ff243a562abff" {
		t.Fatalf("md5Response = %s", got)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	secrets := []Secret{
		ParseSecret("hunter2-cleartext"),
		ParseSecret("md553f48b7c4b76a86ce72276c5755f217d"),
		{SCRAM: ParseSecret(pencilSCRAM).SCRAM, ClientKey: []byte("client-key-bytes")},
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, s := range secrets {
		log.Info("x", "secret", s, "scram", s.SCRAM)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, s) + fmt.Sprintf(verb, &s)
			if s.SCRAM != nil {
				out += fmt.Sprintf(verb, s.SCRAM)
			}
			checkNoSecret(t, verb+": "+out)
		}
	}
	checkNoSecret(t, logs.String())
	if !strings.Contains(logs.String(), "secret=scram-sha-256+client-key") {
		t.Fatalf("log lacks the kind:\n%s", logs.String())
	}
}

func checkNoSecret(t *testing.T, out string) {
	t.Helper()
	for _, leak := range []string{"hunter2", "53f48b7c", "MDEy", "nQpb", "client-key-bytes", "0123456789abcdef"} {
		if strings.Contains(out, leak) {
			t.Fatalf("printed a secret (%s): %s", leak, out)
		}
	}
}
