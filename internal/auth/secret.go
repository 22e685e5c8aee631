// Package auth authenticates clients at the proxy and logs server
// connections in, the way pgbouncer does for pooled listeners: secrets
// from an auth_file or an auth_query, the server side of the cleartext,
// md5 and SCRAM-SHA-256 exchanges, and the client side of a PostgreSQL
// login, including SCRAM pass-through with a ClientKey recovered from a
// client's proof. It does no network I/O: messages go in and out whole.
package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/xdg-go/stringprep"
)

// Secret is what the proxy knows about one user's password. At most one
// of Password, MD5 and SCRAM is set by ParseSecret; none for an empty
// secret. It never prints its contents (String, GoString, LogValue).
type Secret struct {
	Password string       // cleartext, if known
	MD5      string       // "md5" + 32 lowercase hex digits, if known
	SCRAM    *SCRAMSecret // parsed SCRAM-SHA-256 secret, if known
	// ClientKey is a SCRAM ClientKey recovered from a client's proof
	// (pass-through); Store.Lookup fills it in when known.
	ClientKey []byte
}

// SCRAMSecret is a parsed "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
// secret as pg_authid stores it.
type SCRAMSecret struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

const (
	scramPrefix = "SCRAM-SHA-256$"
	// DefaultSCRAMIterations is PostgreSQL's default scram_iterations.
	DefaultSCRAMIterations = 4096
	scramSaltLen           = 16 // PostgreSQL's SCRAM_DEFAULT_SALT_LEN
	scramKeyLen            = sha256.Size
)

// ParseSecret classifies a pgbouncer auth_file or pg_authid secret: an md5
// secret ("md5" and 32 lowercase hex digits), a SCRAM-SHA-256 secret, or
// else a cleartext password, as PostgreSQL's get_password_type does (a
// malformed SCRAM secret is a cleartext password). "" gives an empty Secret.
func ParseSecret(s string) Secret {
	switch {
	case s == "":
		return Secret{}
	case isMD5(s):
		return Secret{MD5: s}
	case strings.HasPrefix(s, scramPrefix):
		if sc, err := parseSCRAM(s); err == nil {
			return Secret{SCRAM: sc}
		}
	}
	return Secret{Password: s}
}

func isMD5(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "md5") {
		return false
	}
	for _, c := range s[3:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func parseSCRAM(s string) (*SCRAMSecret, error) {
	// SCRAM-SHA-256$<iterations>:<salt>$<storedkey>:<serverkey>
	rest, _ := strings.CutPrefix(s, scramPrefix)
	factors, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, fmt.Errorf("no '$' before the keys")
	}
	iter, salt, ok1 := strings.Cut(factors, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("missing ':'")
	}
	n, err := strconv.Atoi(iter)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad iteration count")
	}
	sc := &SCRAMSecret{Iterations: n}
	b64 := base64.StdEncoding
	if sc.Salt, err = b64.DecodeString(salt); err != nil || len(sc.Salt) == 0 {
		return nil, fmt.Errorf("bad salt")
	}
	if sc.StoredKey, err = b64.DecodeString(stored); err != nil || len(sc.StoredKey) != scramKeyLen {
		return nil, fmt.Errorf("bad StoredKey")
	}
	if sc.ServerKey, err = b64.DecodeString(server); err != nil || len(sc.ServerKey) != scramKeyLen {
		return nil, fmt.Errorf("bad ServerKey")
	}
	return sc, nil
}

// NewSCRAMSecret builds a SCRAM-SHA-256 secret from a cleartext password
// with a random 16-byte salt and iterations (DefaultSCRAMIterations if < 1).
func NewSCRAMSecret(password string, iterations int) (*SCRAMSecret, error) {
	salt := make([]byte, scramSaltLen)
	rand.Read(salt) // never fails (crypto/rand)
	return scramFromPassword(password, salt, iterations)
}

func scramFromPassword(password string, salt []byte, iterations int) (*SCRAMSecret, error) {
	if iterations < 1 {
		iterations = DefaultSCRAMIterations
	}
	ck, sk, err := saltedKeys(password, salt, iterations)
	if err != nil {
		return nil, err
	}
	return &SCRAMSecret{Iterations: iterations, Salt: salt, StoredKey: sha256Sum(ck), ServerKey: sk}, nil
}

// saltedKeys derives the ClientKey and ServerKey of a password. It fails
// only where FIPS 140-3 mode refuses the parameters (a short salt).
func saltedKeys(password string, salt []byte, iterations int) (clientKey, serverKey []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, scramKeyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("deriving SCRAM keys: %w", err)
	}
	return hmacSum(salted, "Client Key"), hmacSum(salted, "Server Key"), nil
}

// saslPrep normalizes a password as PostgreSQL's pg_saslprep does, and
// like it uses the raw bytes when the password is not valid for SASLprep.
func saslPrep(password string) string {
	if p, err := stringprep.SASLprep.Prepare(password); err == nil {
		return p
	}
	return password
}

// Encode renders the secret in pg_authid's format. It is sensitive.
func (s *SCRAMSecret) Encode() string {
	b64 := base64.StdEncoding
	return scramPrefix + strconv.Itoa(s.Iterations) + ":" + b64.EncodeToString(s.Salt) + "$" +
		b64.EncodeToString(s.StoredKey) + ":" + b64.EncodeToString(s.ServerKey)
}

// Equal reports whether two secrets are the same (same salt, iterations
// and keys).
func (s *SCRAMSecret) Equal(o *SCRAMSecret) bool {
	return s != nil && o != nil && s.Iterations == o.Iterations && bytes.Equal(s.Salt, o.Salt) &&
		hmac.Equal(s.StoredKey, o.StoredKey) && hmac.Equal(s.ServerKey, o.ServerKey)
}

// verifyClientKey reports whether key is this secret's ClientKey.
func (s *SCRAMSecret) verifyClientKey(key []byte) bool {
	return len(key) == scramKeyLen && hmac.Equal(sha256Sum(key), s.StoredKey)
}

// String never shows the secret.
func (s *SCRAMSecret) String() string { return "SCRAMSecret(redacted)" }

// GoString never shows the secret.
func (s *SCRAMSecret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer without the secret.
func (s *SCRAMSecret) LogValue() slog.Value { return slog.StringValue("scram-sha-256") }

// Kind names what the secret holds: "none", "plain", "md5" or
// "scram-sha-256", with "+client-key" when a pass-through key is known.
func (s Secret) Kind() string {
	k := "none"
	switch {
	case s.Password != "":
		k = "plain"
	case s.MD5 != "":
		k = "md5"
	case s.SCRAM != nil:
		k = "scram-sha-256"
	}
	if len(s.ClientKey) > 0 {
		k += "+client-key"
	}
	return k
}

// IsZero reports whether nothing is known about the password.
func (s Secret) IsZero() bool { return s.Password == "" && s.MD5 == "" && s.SCRAM == nil }

// String shows the kind only.
func (s Secret) String() string { return "Secret(" + s.Kind() + ")" }

// GoString shows the kind only, so %#v does not print the secret either.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer: the kind only.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.Kind()) }

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}
