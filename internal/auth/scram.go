package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// saslInitial handles SASLInitialResponse: the client-first message.
func (e *Exchange) saslInitial(b []byte) ([]byte, error) {
	var m pgproto3.SASLInitialResponse
	if err := m.Decode(b); err != nil {
		return nil, protocolErrorf("invalid SASLInitialResponse")
	}
	if n := int32(binary.BigEndian.Uint32(b[len(m.AuthMechanism)+1:])); int(n) != len(m.Data) {
		return nil, protocolErrorf("invalid SASLInitialResponse: data length %d but %d bytes", n, len(m.Data))
	}
	if m.AuthMechanism != scramMechanism {
		return nil, protocolErrorf("client selected an invalid SASL authentication mechanism")
	}
	first := string(m.Data)
	// The proxy offers no channel binding: 'n' (client has none) and 'y'
	// (client has it but sees the server has not) are fine; 'p' is not.
	switch {
	case strings.HasPrefix(first, "p"):
		return nil, protocolErrorf("malformed SCRAM message: the client selected channel binding, which is not offered")
	case !strings.HasPrefix(first, "n,") && !strings.HasPrefix(first, "y,"):
		return nil, protocolErrorf("malformed SCRAM message: bad GS2 header")
	}
	serverFirst, err := e.conv.Step(first)
	if err != nil {
		return nil, protocolErrorf("malformed SCRAM client-first message")
	}
	// client-first-message-bare: after the GS2 header "<flag>,[a=authzid],".
	_, rest, _ := strings.Cut(first, ",")
	_, e.clientFirst, _ = strings.Cut(rest, ",")
	e.serverFirst = serverFirst
	e.state = stateSASLResponse
	return encode(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)}), nil
}

// saslResponse handles the client-final message: it checks the proof,
// recovers the ClientKey, and answers with the server signature.
func (e *Exchange) saslResponse(b []byte) ([]byte, error) {
	final := string(b)
	serverFinal, err := e.conv.Step(final)
	switch {
	case err != nil && serverFinal == scram.ErrInvalidProof:
		return nil, ErrAuthFailed
	case err != nil:
		return nil, protocolErrorf("malformed SCRAM client-final message")
	case !e.conv.Valid() || !e.found:
		return nil, ErrAuthFailed
	}
	if e.passThrough {
		// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), the
		// same computation the library just did without exposing it.
		i := strings.LastIndex(final, ",p=")
		if i < 0 {
			return nil, protocolErrorf("malformed SCRAM proof")
		}
		proof, err := base64.StdEncoding.DecodeString(final[i+3:])
		if err != nil || len(proof) != scramKeyLen {
			return nil, protocolErrorf("malformed SCRAM proof")
		}
		authMessage := e.clientFirst + "," + e.serverFirst + "," + final[:i]
		key := xor(proof, hmacSum(e.scram.StoredKey, authMessage))
		if !e.scram.verifyClientKey(key) {
			return nil, ErrAuthFailed
		}
		e.clientKey = key
	}
	e.state = stateDone
	return encode(&pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)}), nil
}

// processKey is a random key for this process, from which mock salts are
// derived (PostgreSQL keeps its mock_auth_nonce in pg_control). It is the
// package's one global: lazily made, never changed.
var processKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
})

// mockSalt is a salt that is the same for a user each time within this
// process and tells nothing of whether the user exists, as PostgreSQL's
// scram_mock_salt.
func mockSalt(user string) []byte {
	m := hmac.New(sha256.New, processKey())
	m.Write([]byte("switchyard mock salt\x00"))
	m.Write([]byte(user))
	return m.Sum(nil)[:scramSaltLen]
}

// mockSCRAM is a secret no proof matches: random keys under the mock salt.
func mockSCRAM(user string) *SCRAMSecret {
	keys := make([]byte, 2*scramKeyLen)
	rand.Read(keys)
	return &SCRAMSecret{Iterations: DefaultSCRAMIterations, Salt: mockSalt(user),
		StoredKey: keys[:scramKeyLen], ServerKey: keys[scramKeyLen:]}
}
