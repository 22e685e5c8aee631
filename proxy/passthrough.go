package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/pool"
)

// maxServerLoginMsg bounds one server message before ReadyForQuery.
const maxServerLoginMsg = 1 << 20

// login relays the authentication exchange of a relay-mode session
// (authentication passes through to PostgreSQL) until the server is
// ReadyForQuery. Two things are changed on the way: the client's cancel
// key keeps the server's process ID but gets Switchyard's own secret, and
// channel-binding SASL mechanisms are not offered (see README, "SCRAM and
// TLS"). Messages are queued whole and flushed when the client must
// answer or the server has nothing more buffered.
func (s *session) login(ctx context.Context) error {
	for {
		if s.server.R.Buffered() == 0 {
			if err := s.cw.flush(); err != nil {
				return onClient(err)
			}
		}
		msg, err := wire.ReadMessage(s.server.R, maxServerLoginMsg)
		if err != nil {
			return onServer(err)
		}
		switch msg[0] {
		case 'R':
			if err := s.authenticate(ctx, msg); err != nil {
				return err
			}
		case 'K':
			if len(msg) < 13 {
				return onServer(&protocolError{err: errors.New("short BackendKeyData message")})
			}
			s.server.Key = pool.Key{PID: binary.BigEndian.Uint32(msg[5:9]), Secret: string(msg[9:])}
			s.clientKey = s.srv.cancels.register(cancelTarget{addr: s.backend.Addr, key: s.server.Key})
			s.cw.queue(backendKeyData(s.clientKey))
		case 'E':
			s.cw.queue(msg)
			s.cw.flush()
			return serverRejected(msg)
		case 'Z':
			if s.needsConfirm() {
				if err := s.confirmPrimary(ctx); err != nil {
					return err
				}
			}
			if s.needsReplicaConfirm() {
				if err := s.confirmReplica(ctx); err != nil {
					return err
				}
			}
			s.cw.queue(msg)
			if err := s.cw.flush(); err != nil {
				return onClient(err)
			}
			return nil
		case 'S':
			var ps pgproto3.ParameterStatus
			if ps.Decode(msg[5:]) == nil {
				s.server.Params[ps.Name] = ps.Value
			}
			s.cw.queue(msg)
		case 'N', 'v':
			s.cw.queue(msg)
		default:
			return onServer(&protocolError{err: fmt.Errorf("unexpected message %q during login", msg[0])})
		}
	}
}

// authenticate relays one Authentication message and, when the server
// waits for one, the client's answer.
func (s *session) authenticate(ctx context.Context, msg []byte) error {
	if len(msg) < 9 {
		return onServer(&protocolError{err: errors.New("short Authentication message")})
	}
	code := binary.BigEndian.Uint32(msg[5:9])
	if code == 10 { // AuthenticationSASL
		msg = withoutChannelBinding(msg)
	}
	s.cw.queue(msg)
	switch code {
	case 3, 5, 7, 8, 9, 10, 11: // the server waits for the client's answer
	default:
		return nil
	}
	if err := s.cw.flush(); err != nil {
		return onClient(err)
	}
	resp, err := s.readAuthResponse()
	if err != nil {
		return err
	}
	// A client told that the server offers no channel binding, though it
	// could bind itself, sends the flag 'y'; a TLS server takes that for a
	// downgrade attack. Whatever the client's own transport, such a
	// session needs a server connection without TLS.
	if code == 10 && isTLS(s.server.Conn) && gs2Flag(resp) == 'y' {
		if err := s.reconnectWithoutTLS(ctx); err != nil {
			return err
		}
	}
	if _, err := s.server.Write(resp); err != nil {
		return onServer(err)
	}
	return nil
}

// serverRejected is the error for a login the server ended with its own
// ErrorResponse, which the client already has.
func serverRejected(msg []byte) error {
	if t := serverErrorText(msg); t != "" {
		return fmt.Errorf("%w: %s", errServerRejected, t)
	}
	return errServerRejected
}

// serverErrorText is "SQLSTATE message" of a server's ErrorResponse, for
// the log; "" if it does not decode.
func serverErrorText(msg []byte) string {
	var e pgproto3.ErrorResponse
	if len(msg) < 5 || e.Decode(msg[5:]) != nil {
		return ""
	}
	return e.Code + " " + e.Message
}

// backendKeyData encodes a BackendKeyData message for k.
func backendKeyData(k pool.Key) []byte {
	b := make([]byte, 0, 13+len(k.Secret))
	b = append(b, 'K')
	b = binary.BigEndian.AppendUint32(b, uint32(8+len(k.Secret)))
	b = binary.BigEndian.AppendUint32(b, k.PID)
	return append(b, k.Secret...)
}

// readAuthResponse reads the client's answer to an authentication request.
func (s *session) readAuthResponse() ([]byte, error) {
	msg, err := wire.ReadMessage(s.cr, maxAuthMsgLen)
	if err != nil {
		if isClosed(err) {
			return nil, onClient(err)
		}
		return nil, onClient(newClientError(codeProtocolViolation, "invalid authentication message: %v", err))
	}
	if msg[0] != 'p' {
		return nil, onClient(newClientError(codeProtocolViolation,
			"expected an authentication response, got message type %q", msg[0]))
	}
	return msg, nil
}

// gs2Flag returns the channel-binding flag ('n', 'y' or 'p') of a
// SASLInitialResponse, 0 if it has none.
func gs2Flag(msg []byte) byte {
	body := msg[5:]
	i := bytes.IndexByte(body, 0) // end of the mechanism name
	if i < 0 || len(body) < i+6 {
		return 0
	}
	return body[i+5] // after the name's NUL and the int32 data length
}

// reconnectWithoutTLS replaces the server connection by a plaintext one
// and replays the login up to the server's SASL request.
//
// SCRAM channel binding cannot cross a proxy that terminates TLS. A
// client told that the server offers no binding sends the gs2 flag 'y',
// which a TLS server rejects as a downgrade attack, and the flag is
// covered by the client's proof, so it cannot be rewritten. On a
// plaintext server connection 'y' is valid. If the server refuses the
// plaintext connection (a role allowed only over TLS), the client gets
// the server's own error.
func (s *session) reconnectWithoutTLS(ctx context.Context) error {
	d := *s.srv.opts.Dialer
	if d.TLSMode == pool.TLSRequire {
		return &clientError{Code: codeInvalidAuthorization,
			Message: "SCRAM channel binding cannot pass through Switchyard's TLS termination",
			Detail:  "connect with channel_binding=disable, or set tls.server_mode = \"prefer\" so the server connection may go without TLS"}
	}
	d.TLSMode = pool.TLSDisable
	conn, err := d.Dial(ctx, s.backend.Addr)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return &clientError{Code: codeConnectionFailure, cause: err, Message: fmt.Sprintf(
			"could not reconnect to the server for SCRAM on listener %q: %s", s.ln.name, dialReason(err))}
	}
	old := s.server
	if err := s.setServer(ctx, pool.NewConn(conn, s.backend.Name, s.backend.Addr)); err != nil {
		old.Close()
		return err
	}
	old.Close()
	if _, err := s.server.Write(s.startup.raw); err != nil {
		return onServer(err)
	}
	msg, err := wire.ReadMessage(s.server.R, maxServerLoginMsg)
	if err != nil {
		return onServer(err)
	}
	if msg[0] == 'E' {
		s.cw.queue(msg)
		s.cw.flush()
		return serverRejected(msg)
	}
	if msg[0] != 'R' || len(msg) < 9 || binary.BigEndian.Uint32(msg[5:9]) != 10 {
		return onServer(&protocolError{err: fmt.Errorf("server answered %q instead of its SASL request on reconnect", msg[0])})
	}
	s.srv.log.Debug("server connection re-opened without TLS for SCRAM channel binding",
		"session", s.id, "backend", s.backend.Name)
	return nil
}

// withoutChannelBinding drops the "-PLUS" mechanisms from an
// AuthenticationSASL message. Channel binding ties SCRAM to the TLS
// session the client sees, which ends at Switchyard, so a client that
// chose SCRAM-SHA-256-PLUS would fail against the server's certificate.
func withoutChannelBinding(msg []byte) []byte {
	var mechs []string
	for _, m := range strings.Split(string(msg[9:]), "\x00") {
		if m != "" && !strings.HasSuffix(m, "-PLUS") {
			mechs = append(mechs, m)
		}
	}
	out, err := (&pgproto3.AuthenticationSASL{AuthMechanisms: mechs}).Encode(nil)
	if err != nil {
		return msg
	}
	return out
}
