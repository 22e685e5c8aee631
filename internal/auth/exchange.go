package auth

import (
	"crypto/hmac"
	"crypto/rand"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// scramMechanism is the only SASL mechanism offered (no -PLUS: the proxy
// offers no channel binding).
const scramMechanism = "SCRAM-SHA-256"

// Exchange is the server side of one client's authentication: a state
// machine over whole protocol messages, with no I/O. It does not send
// AuthenticationOk: once it reports done, the caller does, followed by
// the rest of the startup.
type Exchange struct {
	user   string
	found  bool // a real user with a usable secret
	secret Secret
	state  exchangeState

	md5     bool // MethodMD5 with an md5 or cleartext secret
	md5Salt [4]byte

	conv        *scram.ServerConversation
	scram       *SCRAMSecret
	passThrough bool   // scram is a stored secret: its ClientKey is worth keeping
	clientFirst string // client-first-message-bare
	serverFirst string
	clientKey   []byte
}

type exchangeState uint8

const (
	stateDone     exchangeState = iota // authenticated
	statePassword                      // waiting for a PasswordMessage (plain or md5)
	stateSASLInitial
	stateSASLResponse
	stateFailed
)

// Begin starts verifying user, whose secret is sec (found=false: unknown
// user). It returns the first Authentication message to send. For
// MethodTrust it returns no message: a known user is authenticated at
// once (the caller sends AuthenticationOk) and an unknown one fails with
// ErrAuthFailed, as pgbouncer's trust wants the user to exist.
//
// The method follows pgbouncer and PostgreSQL: md5 turns into SCRAM for a
// user with a SCRAM secret, and for an unknown user (as PostgreSQL does
// with its default password_encryption); SCRAM with a cleartext secret
// builds a SCRAM secret ad hoc (not usable for pass-through). An unknown
// user, or one whose secret cannot serve the method (SCRAM with an md5
// secret, an empty secret), gets a mock exchange that looks like a real
// one, SCRAM salt included, and fails at the end.
func Begin(m Method, user string, sec Secret, found bool) (*Exchange, []byte, error) {
	e := &Exchange{user: user, found: found && !sec.IsZero(), secret: sec}
	switch {
	case m == MethodTrust:
		if !found {
			e.state = stateFailed
			return nil, nil, ErrAuthFailed
		}
		e.state = stateDone
		return e, nil, nil
	case m == MethodPlain:
		e.state = statePassword
		return e, encode(&pgproto3.AuthenticationCleartextPassword{}), nil
	case m == MethodMD5 && e.found && sec.SCRAM == nil:
		e.state, e.md5 = statePassword, true
		rand.Read(e.md5Salt[:])
		return e, encode(&pgproto3.AuthenticationMD5Password{Salt: e.md5Salt}), nil
	case m == MethodMD5 || m == MethodSCRAM:
		if err := e.startSCRAM(); err != nil {
			return nil, nil, err
		}
		return e, encode(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}), nil
	}
	return nil, nil, protocolErrorf("unknown authentication method %v", m)
}

// startSCRAM picks the SCRAM secret to verify against: the stored one, one
// built from a cleartext password, or a mock.
func (e *Exchange) startSCRAM() error {
	e.state = stateSASLInitial
	switch {
	case e.found && e.secret.SCRAM != nil:
		e.scram, e.passThrough = e.secret.SCRAM, true
	case e.found && e.secret.Password != "":
		// The salt is the mock one: stable for a user, like a stored
		// secret's, so it does not tell a cleartext entry from a mock.
		sc, err := scramFromPassword(e.secret.Password, mockSalt(e.user), DefaultSCRAMIterations)
		if err != nil {
			return err
		}
		e.scram = sc
	default:
		e.found = false
		e.scram = mockSCRAM(e.user)
	}
	srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) {
		// The SCRAM user name is ignored, as PostgreSQL does: libpq sends
		// "n=," and the startup message's user is the one that counts.
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(e.scram.Salt), Iters: e.scram.Iterations},
			StoredKey:  e.scram.StoredKey,
			ServerKey:  e.scram.ServerKey,
		}, nil
	})
	if err != nil {
		return err
	}
	e.conv = srv.NewConversation()
	return nil
}

// Step takes the client's whole 'p' message and returns the next message
// to send; done reports that the client is authenticated (after sending
// reply, if any, the caller sends AuthenticationOk). A failed login gives
// ErrAuthFailed, a malformed message a *ProtocolError; either ends the
// exchange.
func (e *Exchange) Step(msg []byte) (reply []byte, done bool, err error) {
	reply, err = e.step(msg)
	switch {
	case err != nil:
		e.state = stateFailed
		e.clientKey = nil
	case e.state == stateDone:
		done = true
	}
	return reply, done, err
}

func (e *Exchange) step(msg []byte) ([]byte, error) {
	b, err := body(msg, 'p')
	if err != nil && e.state != stateDone && e.state != stateFailed {
		return nil, &ProtocolError{Reason: err.Error()}
	}
	switch e.state {
	case statePassword:
		var pm pgproto3.PasswordMessage
		if len(b) == 0 || b[len(b)-1] != 0 || pm.Decode(b) != nil || len(pm.Password) != len(b)-1 {
			return nil, protocolErrorf("invalid password message")
		}
		if !e.checkPassword(pm.Password) {
			return nil, ErrAuthFailed
		}
		e.state = stateDone
		return nil, nil
	case stateSASLInitial:
		return e.saslInitial(b)
	case stateSASLResponse:
		return e.saslResponse(b)
	}
	return nil, protocolErrorf("unexpected message after authentication ended")
}

// checkPassword verifies a PasswordMessage: an md5 response, or else a
// cleartext password against whatever secret is stored.
func (e *Exchange) checkPassword(got string) bool {
	sec := e.secret
	switch {
	case !e.found || got == "": // PostgreSQL refuses empty passwords
		return false
	case e.md5:
		stored := sec.MD5
		if stored == "" {
			stored = md5Secret(sec.Password, e.user)
		}
		return hmac.Equal([]byte(got), []byte(md5Response(stored, e.md5Salt)))
	case sec.Password != "":
		return hmac.Equal([]byte(got), []byte(sec.Password))
	case sec.MD5 != "":
		return hmac.Equal([]byte(md5Secret(got, e.user)), []byte(sec.MD5))
	case sec.SCRAM != nil:
		ck, _, err := saltedKeys(got, sec.SCRAM.Salt, sec.SCRAM.Iterations)
		if err != nil || !sec.SCRAM.verifyClientKey(ck) {
			return false
		}
		e.clientKey = ck // it matches the stored secret: good for pass-through
		return true
	}
	return false
}

// ClientKey is the SCRAM ClientKey of the stored SCRAM secret, recovered
// from the client's proof (or derived from its cleartext password), once
// the client is authenticated; nil otherwise, and for a secret built ad
// hoc. Store.SaveClientKey keeps it for pass-through logins.
func (e *Exchange) ClientKey() []byte {
	if e.state != stateDone {
		return nil
	}
	return e.clientKey
}
