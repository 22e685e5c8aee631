package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard-proxy/switchyard/pool"
)

// Startup packet codes (the first 4 bytes after the length).
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
)

// Limits on what a client may send before it is authenticated.
const (
	maxStartupLen = 10000   // PostgreSQL's MAX_STARTUP_PACKET_LENGTH: the body after the length word
	maxAuthMsgLen = 1 << 16 // one password / SASL / GSS message
)

// startupPacket is one length-prefixed packet of the startup phase.
type startupPacket struct {
	code uint32
	raw  []byte // the whole packet, length prefix included
}

// readStartup reads one startup-phase packet with its length bounded.
// Like PostgreSQL's ProcessStartupPacket, a client that sends nothing, a
// partial packet or an impossible length gets no reply: the error is a
// silentError (or the client's own EOF) for the log only.
func readStartup(r *bufio.Reader) (startupPacket, error) {
	var hdr [4]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if n > 0 && errors.Is(err, io.ErrUnexpectedEOF) {
			return startupPacket{}, onClient(&silentError{"incomplete startup packet"})
		}
		return startupPacket{}, onClient(err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n-4 > maxStartupLen {
		return startupPacket{}, onClient(&silentError{fmt.Sprintf(
			"invalid length of startup packet (%d bytes; a PostgreSQL client sends 8 to %d)", n, maxStartupLen+4)})
	}
	raw := make([]byte, n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[4:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return startupPacket{}, onClient(&silentError{"incomplete startup packet"})
		}
		return startupPacket{}, onClient(err)
	}
	return startupPacket{code: binary.BigEndian.Uint32(raw[4:8]), raw: raw}, nil
}

// startupMessage is a client's StartupMessage, decoded.
type startupMessage struct {
	major, minor uint16
	params       map[string]string // includes _pq_. protocol options
	raw          []byte            // as the client sent it, forwarded unchanged
}

// parseStartupMessage decodes a StartupMessage as PostgreSQL 15 does: a
// major version other than 3 is 0A000; any 3.x is accepted and passed on
// unchanged, so the server answers a newer minor version (3.1, 3.2) or
// unknown _pq_. options with NegotiateProtocolVersion and a normal
// login. The layout must end in exactly one terminator, and a user must
// be named.
func parseStartupMessage(p startupPacket) (*startupMessage, error) {
	m := &startupMessage{major: uint16(p.code >> 16), minor: uint16(p.code), raw: p.raw, params: map[string]string{}}
	if m.major != 3 {
		// A client of protocol 1 or 2 gets the error in its own format.
		return nil, onClient(&clientError{Code: codeFeatureNotSupported, v2: m.major < 3,
			Message: fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", m.major, m.minor)})
	}
	body := p.raw[8:]
	for len(body) > 0 && body[0] != 0 {
		name, rest, ok := bytes.Cut(body, []byte{0})
		if !ok {
			break
		}
		value, rest2, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			break
		}
		m.params[string(name)] = string(value)
		body = rest2
	}
	if len(body) != 1 || body[0] != 0 {
		return nil, onClient(newClientError(codeProtocolViolation, "invalid startup packet layout: expected terminator as last byte"))
	}
	if m.params["user"] == "" {
		return nil, onClient(newClientError(codeInvalidAuthorization, "no PostgreSQL user name specified in startup packet"))
	}
	if m.params["database"] == "" {
		m.params["database"] = m.params["user"]
	}
	return m, nil
}

// replication reports whether the client asked for a replication
// connection: "database" (logical) or a true boolean (physical), as
// PostgreSQL reads the parameter. A value PostgreSQL rejects is left to
// the server to refuse.
func (m *startupMessage) replication() bool {
	switch v := strings.ToLower(m.params["replication"]); v {
	case "", "false", "off", "no", "0", "f", "n":
		return false
	}
	return true
}

// parseCancel decodes a CancelRequest's key: process ID and a secret of 4
// bytes (protocol 3.0) up to 256 (3.2). A malformed one is ignored
// silently.
func parseCancel(p startupPacket) (pool.Key, bool) {
	if len(p.raw) < 16 || len(p.raw) > 16+252 {
		return pool.Key{}, false
	}
	return pool.Key{PID: binary.BigEndian.Uint32(p.raw[8:12]), Secret: string(p.raw[12:])}, true
}
