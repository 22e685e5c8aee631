package auth

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrAuthFailed is the one error for a failed authentication, whatever
// the cause (unknown user, wrong password, unusable secret), so nothing
// tells a client which it was. The caller renders it as 28P01
// `password authentication failed for user "x"` after a fixed delay.
var ErrAuthFailed = errors.New("password authentication failed")

// ProtocolError is a malformed or unexpected client message during
// authentication; the caller renders it as 08P01. Its text holds no secret.
type ProtocolError struct {
	Reason string
}

func (e *ProtocolError) Error() string { return "protocol violation: " + e.Reason }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Reason: fmt.Sprintf(format, args...)}
}

// body checks msg is one whole message of type typ (type byte, int32
// length, body) and returns its body.
func body(msg []byte, typ byte) ([]byte, error) {
	if len(msg) < 5 {
		return nil, fmt.Errorf("short message (%d bytes)", len(msg))
	}
	if msg[0] != typ {
		return nil, fmt.Errorf("expected message %q, got %q", typ, msg[0])
	}
	if n := binary.BigEndian.Uint32(msg[1:5]); int64(n) != int64(len(msg)-1) {
		return nil, fmt.Errorf("message %q: length %d but %d bytes", typ, n, len(msg)-1)
	}
	return msg[5:], nil
}

// encoder is any pgproto3 message.
type encoder interface{ Encode([]byte) ([]byte, error) }

// encode encodes a message that cannot fail to encode (its size is far
// below the protocol's limits).
func encode(m encoder) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic("auth: encoding " + fmt.Sprintf("%T", m) + ": " + err.Error())
	}
	return b
}
