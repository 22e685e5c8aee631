package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

const pw = "correct horse"

// Every method against every kind of secret, with pgconn's real client.
func TestExchangeWithPgconn(t *testing.T) {
	scramSec, err := NewSCRAMSecret(pw, 0)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]Secret{
		"plain": {Password: pw},
		"md5":   {MD5: md5Secret(pw, "md5")},
		"scram": {SCRAM: scramSec},
		"empty": {},
	}
	lookup := func(user string) (Secret, bool) { s, ok := secrets[user]; return s, ok }
	const sasl, md5, clear, none = 10, 5, 3, 255
	for _, c := range []struct {
		m      Method
		user   string
		first  byte // Authentication code asked first
		ok     bool
		hasKey bool // a pass-through ClientKey comes out
	}{
		{MethodSCRAM, "scram", sasl, true, true},
		{MethodSCRAM, "plain", sasl, true, false}, // ad hoc secret
		{MethodSCRAM, "md5", sasl, false, false},  // impossible: fails like a wrong password
		{MethodSCRAM, "unknown", sasl, false, false},
		{MethodSCRAM, "empty", sasl, false, false},
		{MethodMD5, "md5", md5, true, false},
		{MethodMD5, "plain", md5, true, false},
		{MethodMD5, "scram", sasl, true, true}, // md5 turns into SCRAM
		{MethodMD5, "unknown", sasl, false, false},
		{MethodPlain, "plain", clear, true, false},
		{MethodPlain, "md5", clear, true, false},
		{MethodPlain, "scram", clear, true, true},
		{MethodPlain, "unknown", clear, false, false},
		{MethodTrust, "empty", none, true, false},
		{MethodTrust, "unknown", none, false, false},
	} {
		t.Run(c.m.String()+"/"+c.user, func(t *testing.T) {
			s := NewAuthServer(t, c.m, lookup)
			err := s.Connect(t, c.user, pw)
			r := s.Next(t)
			if r.First != c.first {
				t.Errorf("first Authentication code %d, want %d", r.First, c.first)
			}
			if c.ok != (err == nil) || c.ok != (r.Err == nil) {
				t.Fatalf("client: %v; exchange: %v", err, r.Err)
			}
			if !c.ok {
				if !errors.Is(r.Err, ErrAuthFailed) || PgCode(err) != "28P01" {
					t.Fatalf("want ErrAuthFailed / 28P01, got %v / %v", r.Err, err)
				}
				return
			}
			if c.hasKey != (r.ClientKey != nil) || c.hasKey && !scramSec.verifyClientKey(r.ClientKey) {
				t.Fatalf("ClientKey %x, want one: %v", r.ClientKey, c.hasKey)
			}
			if c.m == MethodTrust {
				return
			}
			// The wrong password fails, and the exchange knows it.
			err = s.Connect(t, c.user, "wrong")
			if r := s.Next(t); PgCode(err) != "28P01" || !errors.Is(r.Err, ErrAuthFailed) {
				t.Fatalf("wrong password: %v / %v", err, r.Err)
			}
		})
	}
}

// An unknown user's SCRAM exchange looks like a real one: same messages,
// same shape, a salt that stays the same for the user, 4096 iterations.
func TestMockExchangeLooksReal(t *testing.T) {
	real, _ := scramFromPassword(pw, make([]byte, scramSaltLen), DefaultSCRAMIterations)
	serverFirst := func(user string, sec Secret, found bool) (first []byte, sf string) {
		e, first, err := Begin(MethodSCRAM, user, sec, found)
		if err != nil {
			t.Fatal(err)
		}
		msg := encode(&pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte("n,,n=,r=clientnonce")})
		reply, done, err := e.Step(msg)
		if err != nil || done {
			t.Fatal(err, done)
		}
		var m pgproto3.AuthenticationSASLContinue
		m.Decode(reply[5:])
		return first, string(m.Data)
	}
	shape := func(sf string) string { // nonce and salt lengths, iterations
		f := strings.Split(sf, ",")
		return strings.Repeat("r", len(f[0])) + "," + strings.Repeat("s", len(f[1])) + "," + f[2]
	}
	f1, real1 := serverFirst("alice", Secret{SCRAM: real}, true)
	f2, mock1 := serverFirst("mallory", Secret{}, false)
	_, mock2 := serverFirst("mallory", Secret{}, false)
	_, other := serverFirst("trudy", Secret{}, false)
	_, adhoc1 := serverFirst("bob", Secret{Password: pw}, true)
	_, adhoc2 := serverFirst("bob", Secret{Password: pw}, true)
	if !bytes.Equal(f1, f2) {
		t.Fatalf("first messages differ: %q %q", f1, f2)
	}
	for _, sf := range []string{mock1, other, adhoc1} {
		if shape(sf) != shape(real1) {
			t.Fatalf("shapes differ: %s vs %s", shape(sf), shape(real1))
		}
	}
	salt := func(sf string) string { return strings.Split(sf, ",")[1] }
	if salt(mock1) != salt(mock2) || salt(mock1) == salt(other) || salt(adhoc1) != salt(adhoc2) {
		t.Fatalf("mock salts must be stable per user and differ between users: %s %s %s", mock1, mock2, other)
	}
	// The mock fails at the end, with the same error as a wrong password.
	if _, err := converse(t, MethodSCRAM, "mallory", Secret{}, false, Secret{Password: pw}); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("mock: %v", err)
	}
	if _, err := converse(t, MethodSCRAM, "alice", Secret{SCRAM: real}, true, Secret{Password: "wrong"}); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
}

// Exchange and Login agree, without I/O, including pass-through: the
// recovered ClientKey logs in to an Exchange holding the same secret.
func TestExchangeAgainstLogin(t *testing.T) {
	sec, _ := NewSCRAMSecret(pw, 0)
	e, err := converse(t, MethodSCRAM, "u", Secret{SCRAM: sec}, true, Secret{Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	key := e.ClientKey()
	if !sec.verifyClientKey(key) {
		t.Fatal("no ClientKey")
	}
	if _, err := converse(t, MethodSCRAM, "u", Secret{SCRAM: sec}, true, Secret{SCRAM: sec, ClientKey: key}); err != nil {
		t.Fatalf("pass-through: %v", err)
	}
	// A secret with another salt cannot be passed through.
	other, _ := NewSCRAMSecret(pw, 0)
	ck, _, _ := saltedKeys(pw, other.Salt, other.Iterations)
	_, err = converse(t, MethodSCRAM, "u", Secret{SCRAM: sec}, true, Secret{SCRAM: other, ClientKey: ck})
	if err == nil || !strings.Contains(err.Error(), "stored SCRAM secret does not match the server's") {
		t.Fatalf("mismatched secret: %v", err)
	}
	// md5 with an md5 secret only, both sides.
	md5sec := Secret{MD5: md5Secret(pw, "u")}
	if _, err := converse(t, MethodMD5, "u", md5sec, true, md5sec); err != nil {
		t.Fatal(err)
	}
}

// scramFirst sends a client-first message and returns the exchange and
// the server-first message.
func scramFirst(t *testing.T, e *Exchange, clientFirst string) (string, error) {
	t.Helper()
	reply, _, err := e.Step(encode(&pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte(clientFirst)}))
	if err != nil {
		return "", err
	}
	var m pgproto3.AuthenticationSASLContinue
	if err := m.Decode(reply[5:]); err != nil {
		t.Fatal(err)
	}
	return string(m.Data), nil
}

// clientFinal is the client-final message for gs2 header, password and
// the exchange so far.
func clientFinal(gs2, clientFirstBare, serverFirst, password string) string {
	nonce, salt, iters, _ := parseServerFirst(serverFirst)
	ck, _, _ := saltedKeys(password, salt, iters)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(gs2)) + ",r=" + nonce
	auth := clientFirstBare + "," + serverFirst + "," + withoutProof
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(xor(ck, hmacSum(sha256Sum(ck), auth)))
}

func TestChannelBindingFlags(t *testing.T) {
	sec, _ := NewSCRAMSecret(pw, 0)
	// 'y': the client could bind but sees we don't offer it: fine.
	e, _, _ := Begin(MethodSCRAM, "u", Secret{SCRAM: sec}, true)
	sf, err := scramFirst(t, e, "y,,n=u,r=abc")
	if err != nil {
		t.Fatal(err)
	}
	final := clientFinal("y,,", "n=u,r=abc", sf, pw)
	if _, done, err := e.Step(encode(&pgproto3.SASLResponse{Data: []byte(final)})); err != nil || !done || e.ClientKey() == nil {
		t.Fatalf("y: %v %v", done, err)
	}
	// 'p': the client insists on binding, which we don't offer.
	for _, cf := range []string{"p=tls-server-end-point,,n=,r=abc", "p=tls-unique,,n=,r=abc"} {
		e, _, _ = Begin(MethodSCRAM, "u", Secret{SCRAM: sec}, true)
		var pe *ProtocolError
		if _, err := scramFirst(t, e, cf); !errors.As(err, &pe) {
			t.Fatalf("%s: %v", cf, err)
		}
	}
	// A header of 'y' in the first message and 'n' in the final one.
	e, _, _ = Begin(MethodSCRAM, "u", Secret{SCRAM: sec}, true)
	sf, _ = scramFirst(t, e, "y,,n=,r=abc")
	final = clientFinal("n,,", "n=,r=abc", sf, pw)
	var pe *ProtocolError
	if _, _, err := e.Step(encode(&pgproto3.SASLResponse{Data: []byte(final)})); !errors.As(err, &pe) {
		t.Fatalf("binding mismatch: %v", err)
	}
}

func TestExchangeProtocolErrors(t *testing.T) {
	sec, _ := NewSCRAMSecret(pw, 0)
	saslInit := func(mech, data string) []byte {
		return encode(&pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: []byte(data)})
	}
	badLen := saslInit(scramMechanism, "n,,n=,r=abc")
	badLen[3]++
	for name, c := range map[string]struct {
		m    Method
		msgs [][]byte
	}{
		"not p":          {MethodSCRAM, [][]byte{encode(&pgproto3.Query{String: "select 1"})}},
		"bad length":     {MethodSCRAM, [][]byte{badLen}},
		"short":          {MethodSCRAM, [][]byte{{'p', 0, 0}}},
		"mechanism":      {MethodSCRAM, [][]byte{saslInit("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc")}},
		"garbage first":  {MethodSCRAM, [][]byte{saslInit(scramMechanism, "n,,garbage")}},
		"no gs2":         {MethodSCRAM, [][]byte{saslInit(scramMechanism, "x=1")}},
		"data length -1": {MethodSCRAM, [][]byte{append(append([]byte{'p', 0, 0, 0, 22}, scramMechanism+"\x00"...), 0xff, 0xff, 0xff, 0xff)}},
		"garbage final": {MethodSCRAM, [][]byte{saslInit(scramMechanism, "n,,n=,r=abc"),
			encode(&pgproto3.SASLResponse{Data: []byte("c=biws,r=abc,p=x")})}},
		"unterminated password": {MethodPlain, [][]byte{{'p', 0, 0, 0, 7, 'a', 'b', 'c'}}},
	} {
		t.Run(name, func(t *testing.T) {
			e, _, err := Begin(c.m, "u", Secret{SCRAM: sec}, true)
			if err != nil {
				t.Fatal(err)
			}
			for i, msg := range c.msgs {
				_, _, err = e.Step(msg)
				if i < len(c.msgs)-1 && err != nil {
					t.Fatal(err)
				}
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) || errors.Is(err, ErrAuthFailed) {
				t.Fatalf("got %v", err)
			}
			// The exchange is over.
			if _, _, err := e.Step(c.msgs[0]); err == nil {
				t.Fatal("Step after failure succeeded")
			}
		})
	}
}

func TestExchangeEdges(t *testing.T) {
	// An empty cleartext password never matches, even an empty secret.
	e, _, _ := Begin(MethodPlain, "u", Secret{Password: pw}, true)
	if _, _, err := e.Step(encode(&pgproto3.PasswordMessage{Password: ""})); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("empty password: %v", err)
	}
	// Trust with a known user: authenticated at once.
	e, first, err := Begin(MethodTrust, "u", Secret{}, true)
	if err != nil || first != nil || e == nil {
		t.Fatalf("trust: %v %v", first, err)
	}
	if _, err := ParseMethod("cert"); err == nil {
		t.Fatal("ParseMethod(cert)")
	}
	for _, m := range []Method{MethodSCRAM, MethodMD5, MethodPlain, MethodTrust} {
		if got, err := ParseMethod(m.String()); got != m || err != nil {
			t.Fatalf("ParseMethod(%s) = %v, %v", m, got, err)
		}
	}
	// No error text shows a secret.
	sec, _ := NewSCRAMSecret(pw, 0)
	for _, m := range []Method{MethodSCRAM, MethodMD5, MethodPlain} {
		_, err := converse(t, m, "u", Secret{SCRAM: sec}, true, Secret{Password: "hunter2-wrong"})
		if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "horse") {
			t.Fatalf("%s: %v", m, err)
		}
	}
}
