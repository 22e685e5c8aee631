package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Login is the client side of logging a server connection in as one
// user: it answers the Authentication messages a PostgreSQL server sends.
// With a SCRAM secret and a ClientKey but no password it logs in by
// pass-through. It does no I/O.
type Login struct {
	user  string
	sec   Secret
	state loginState

	nonce       string // client nonce
	serverSig   []byte // the server signature expected in SASLFinal
	clientFirst string // client-first-message-bare
}

type loginState uint8

const (
	loginStart loginState = iota
	loginSASLContinue
	loginSASLFinal
	loginSASLDone
	loginDone
)

// NewLogin prepares to log in as user with what is known of its password.
func NewLogin(user string, sec Secret) *Login {
	return &Login{user: user, sec: sec}
}

// Done reports whether the server has sent AuthenticationOk.
func (l *Login) Done() bool { return l.state == loginDone }

// Respond takes each whole message the server sends during
// authentication and returns the whole message to send back, or nil when
// no answer is due (AuthenticationOk; SASLFinal once the server's
// signature is verified). An ErrorResponse comes back as a
// *pgconn.PgError (28P01 for a wrong password).
func (l *Login) Respond(msg []byte) ([]byte, error) {
	if len(msg) > 0 && msg[0] == 'E' {
		b, err := body(msg, 'E')
		if err != nil {
			return nil, fmt.Errorf("server sent %w", err)
		}
		var er pgproto3.ErrorResponse
		if err := er.Decode(b); err != nil {
			return nil, fmt.Errorf("server sent an invalid ErrorResponse: %w", err)
		}
		return nil, pgconn.ErrorResponseToPgError(&er)
	}
	b, err := body(msg, 'R')
	if err != nil {
		return nil, fmt.Errorf("server sent %w during authentication", err)
	}
	if len(b) < 4 {
		return nil, errors.New("server sent a short Authentication message")
	}
	code := binary.BigEndian.Uint32(b)
	if l.state == loginDone {
		return nil, fmt.Errorf("server sent Authentication (%d) after AuthenticationOk", code)
	}
	switch code {
	case 0: // AuthenticationOk
		if l.state != loginStart && l.state != loginSASLDone {
			return nil, errors.New("server ended SCRAM authentication without proving it knows the secret")
		}
		l.state = loginDone
		return nil, nil
	case 3:
		return l.cleartext()
	case 5:
		var m pgproto3.AuthenticationMD5Password
		if err := m.Decode(b); err != nil {
			return nil, fmt.Errorf("server sent an invalid AuthenticationMD5Password: %w", err)
		}
		return l.md5(m.Salt)
	case 10:
		var m pgproto3.AuthenticationSASL
		if err := m.Decode(b); err != nil {
			return nil, fmt.Errorf("server sent an invalid AuthenticationSASL: %w", err)
		}
		return l.saslStart(m.AuthMechanisms)
	case 11:
		var m pgproto3.AuthenticationSASLContinue
		if err := m.Decode(b); err != nil || l.state != loginSASLContinue {
			return nil, errors.New("server sent an unexpected AuthenticationSASLContinue")
		}
		return l.saslContinue(string(m.Data))
	case 12:
		var m pgproto3.AuthenticationSASLFinal
		if err := m.Decode(b); err != nil || l.state != loginSASLFinal {
			return nil, errors.New("server sent an unexpected AuthenticationSASLFinal")
		}
		return nil, l.saslFinal(string(m.Data))
	}
	return nil, fmt.Errorf("server asks for %s authentication, which the proxy does not support", authName(code))
}

func authName(code uint32) string {
	switch code {
	case 2:
		return "KerberosV5"
	case 6:
		return "SCM credential"
	case 7, 8:
		return "GSSAPI"
	case 9:
		return "SSPI"
	}
	return "unknown (" + strconv.FormatUint(uint64(code), 10) + ")"
}

// missing explains why no answer can be given to a server asking for how.
func (l *Login) missing(how string) error {
	have := "no secret is stored"
	switch {
	case l.sec.MD5 != "":
		have = "only an md5 secret is stored"
	case l.sec.SCRAM != nil && how == "SCRAM-SHA-256":
		have = "only a SCRAM secret is stored and no client has logged in yet to provide a pass-through key"
	case l.sec.SCRAM != nil && len(l.sec.ClientKey) > 0:
		have = "only a SCRAM secret and a pass-through key are stored, which serve SCRAM alone"
	case l.sec.SCRAM != nil:
		have = "only a SCRAM secret is stored and no client has logged in yet to provide a pass-through key"
	}
	return fmt.Errorf("no password known for user %q: the server asks for %s but %s", l.user, how, have)
}

func (l *Login) cleartext() ([]byte, error) {
	if l.sec.Password == "" {
		return nil, l.missing("a cleartext password")
	}
	return encode(&pgproto3.PasswordMessage{Password: l.sec.Password}), nil
}

func (l *Login) md5(salt [4]byte) ([]byte, error) {
	secret := l.sec.MD5
	if l.sec.Password != "" {
		secret = md5Secret(l.sec.Password, l.user)
	}
	if secret == "" {
		return nil, l.missing("md5")
	}
	return encode(&pgproto3.PasswordMessage{Password: md5Response(secret, salt)}), nil
}

func (l *Login) saslStart(mechs []string) ([]byte, error) {
	if l.state != loginStart {
		return nil, errors.New("server sent AuthenticationSASL twice")
	}
	if !slices.Contains(mechs, scramMechanism) {
		return nil, fmt.Errorf("server offers SASL mechanisms %q, none of which the proxy supports", mechs)
	}
	if l.sec.Password == "" && (l.sec.SCRAM == nil || len(l.sec.ClientKey) == 0) {
		return nil, l.missing("SCRAM-SHA-256")
	}
	if l.sec.Password == "" && !l.sec.SCRAM.verifyClientKey(l.sec.ClientKey) {
		return nil, fmt.Errorf("logging in as %q: the pass-through key is not the stored SCRAM secret's", l.user)
	}
	n := make([]byte, 18)
	rand.Read(n)
	l.nonce = base64.StdEncoding.EncodeToString(n)
	// No channel binding ('n'); the user name is empty, as libpq sends it:
	// the server uses the startup message's.
	l.clientFirst = "n=,r=" + l.nonce
	l.state = loginSASLContinue
	return encode(&pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte("n,," + l.clientFirst)}), nil
}

// saslContinue answers the server-first message with the client proof.
func (l *Login) saslContinue(serverFirst string) ([]byte, error) {
	nonce, salt, iters, err := parseServerFirst(serverFirst)
	if err != nil {
		return nil, fmt.Errorf("server sent an invalid SCRAM server-first message: %w", err)
	}
	if !strings.HasPrefix(nonce, l.nonce) || len(nonce) == len(l.nonce) {
		return nil, errors.New("server sent a SCRAM nonce that does not extend the client's")
	}
	var clientKey, serverKey []byte
	if l.sec.Password != "" {
		if clientKey, serverKey, err = saltedKeys(l.sec.Password, salt, iters); err != nil {
			return nil, err
		}
	} else { // pass-through
		sc := l.sec.SCRAM
		if sc.Iterations != iters || !bytes.Equal(sc.Salt, salt) {
			return nil, fmt.Errorf("logging in as %q: stored SCRAM secret does not match the server's (salt or iterations differ)", l.user)
		}
		clientKey, serverKey = l.sec.ClientKey, sc.ServerKey
	}
	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,")
	authMessage := l.clientFirst + "," + serverFirst + "," + withoutProof
	proof := xor(clientKey, hmacSum(sha256Sum(clientKey), authMessage))
	l.serverSig = hmacSum(serverKey, authMessage)
	l.state = loginSASLFinal
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	return encode(&pgproto3.SASLResponse{Data: []byte(final)}), nil
}

// saslFinal checks the server's signature: proof that it knows the secret.
func (l *Login) saslFinal(serverFinal string) error {
	if e, ok := strings.CutPrefix(serverFinal, "e="); ok {
		return fmt.Errorf("server refused the SCRAM proof: %s", e)
	}
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i] // extensions
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if !ok || err != nil {
		return errors.New("server sent an invalid SCRAM server-final message")
	}
	if !hmac.Equal(sig, l.serverSig) {
		return errors.New("server's SCRAM signature is wrong: it does not know the user's secret")
	}
	l.state = loginSASLDone
	return nil
}

// parseServerFirst reads "r=<nonce>,s=<salt>,i=<iterations>[,ext]".
func parseServerFirst(s string) (nonce string, salt []byte, iters int, err error) {
	f := strings.Split(s, ",")
	if len(f) < 3 || !strings.HasPrefix(f[0], "r=") || !strings.HasPrefix(f[1], "s=") || !strings.HasPrefix(f[2], "i=") {
		return "", nil, 0, errors.New("want r=,s=,i=")
	}
	nonce = f[0][2:]
	if salt, err = base64.StdEncoding.DecodeString(f[1][2:]); err != nil || len(salt) == 0 {
		return "", nil, 0, errors.New("bad salt")
	}
	if iters, err = strconv.Atoi(f[2][2:]); err != nil || iters < 1 {
		return "", nil, 0, errors.New("bad iteration count")
	}
	return nonce, salt, iters, nil
}
