package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Startup packet codes (the first 4 bytes after the length).
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	protocolV3        = 3 << 16
)

// Limits on what a client may send before it is authenticated.
const (
	maxStartupLen = 10000   // as PostgreSQL's MAX_STARTUP_PACKET_LENGTH
	maxAuthMsgLen = 1 << 16 // one password / SASL / GSS message
)

// startupPacket is one length-prefixed packet of the startup phase.
type startupPacket struct {
	code uint32
	raw  []byte // the whole packet, length prefix included
}

// readStartup reads one startup-phase packet with its length bounded.
func readStartup(r *bufio.Reader) (startupPacket, error) {
	var hdr [4]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if n > 0 && errors.Is(err, io.ErrUnexpectedEOF) {
			return startupPacket{}, onClient(newClientError(codeProtocolViolation, "incomplete startup packet"))
		}
		return startupPacket{}, onClient(err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > maxStartupLen {
		return startupPacket{}, onClient(newClientError(codeProtocolViolation,
			"invalid length of startup packet (%d bytes; a PostgreSQL client sends 8 to %d)", n, maxStartupLen))
	}
	raw := make([]byte, n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[4:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return startupPacket{}, onClient(newClientError(codeProtocolViolation, "incomplete startup packet"))
		}
		return startupPacket{}, onClient(err)
	}
	return startupPacket{code: binary.BigEndian.Uint32(raw[4:8]), raw: raw}, nil
}

// parseStartupMessage decodes a protocol 3 StartupMessage.
func parseStartupMessage(p startupPacket) (*pgproto3.StartupMessage, error) {
	if major := p.code >> 16; major != 3 {
		return nil, onClient(&clientError{Code: codeFeatureNotSupported,
			Message: fmt.Sprintf("unsupported frontend protocol %d.%d: Switchyard supports protocol 3", major, p.code&0xffff)})
	}
	var m pgproto3.StartupMessage
	if err := m.Decode(p.raw[4:]); err != nil {
		return nil, onClient(newClientError(codeProtocolViolation, "invalid startup packet layout: %v", err))
	}
	if m.Parameters["user"] == "" {
		return nil, onClient(newClientError(codeInvalidAuthorization, "no PostgreSQL user name specified in startup packet"))
	}
	return &m, nil
}

// parseCancel decodes a CancelRequest.
func parseCancel(p startupPacket) (cancelKey, error) {
	var m pgproto3.CancelRequest
	if err := m.Decode(p.raw[4:]); err != nil {
		return cancelKey{}, onClient(newClientError(codeProtocolViolation, "invalid cancel request: %v", err))
	}
	return cancelKey{pid: m.ProcessID, secret: string(m.SecretKey)}, nil
}

// readMessage reads one typed protocol message (type, length, body) of at
// most max bytes and returns it whole. The slice is freshly allocated.
func readMessage(r *bufio.Reader, max int) ([]byte, error) {
	hdr, err := r.Peek(5)
	if err != nil {
		if len(hdr) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n+1 > max {
		return nil, fmt.Errorf("message %q has invalid length %d", hdr[0], n)
	}
	msg := make([]byte, n+1)
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}
