package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

// errServerRejected ends a login the server refused; the client already
// has the server's own ErrorResponse.
var errServerRejected = errors.New("server refused the login")

// maxServerLoginMsg bounds one server message before ReadyForQuery.
const maxServerLoginMsg = 1 << 20

// connect chooses a backend for the listener and connects to it, trying
// the candidates in order, and sends it the client's StartupMessage.
func (s *session) connect(ctx context.Context, startup []byte) error {
	cands, err := s.srv.opts.Router.Candidates(ctx, s.ln.name)
	if err != nil {
		return err
	}
	if len(cands) == 0 {
		return newClientError(codeCannotConnectNow,
			"no %s server is available for listener %q; try again shortly", s.ln.role, s.ln.name)
	}
	var reasons []string
	for _, m := range cands {
		conn, err := s.srv.opts.Dialer.Dial(ctx, m.Addr)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			reasons = append(reasons, fmt.Sprintf("%s (%s): %s", m.Name, m.Addr, dialReason(err)))
			continue
		}
		s.backend = m
		if err := s.setServer(ctx, conn); err != nil {
			return err
		}
		sess := router.Session{
			ID: s.id, Listener: s.ln.name, Role: m.Role.String(), Backend: m.Name, Client: s.client.RemoteAddr().String(),
		}
		entry := s.srv.opts.Registry.Add(sess, s.cancel)
		s.unregister = func() { s.srv.opts.Registry.Remove(entry) }
		// A topology update between Candidates and Add found no session to
		// end; look again now that this one is registered.
		if kc := s.srv.opts.Router.Check(sess); kc != nil {
			return kc
		}
		s.startup = startup
		if _, err := conn.Write(startup); err != nil {
			return onServer(err)
		}
		return nil
	}
	return &clientError{Code: codeConnectionFailure,
		Message: fmt.Sprintf("could not connect to any server for listener %q", s.ln.name),
		Detail:  strings.Join(reasons, "; ")}
}

// dialReason is a short, client-safe description of a dial failure.
func dialReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return "connection failed"
}

// login relays the authentication exchange unchanged, except that the
// client gets Switchyard's cancel key and no channel-binding SASL
// mechanisms, until the server is ReadyForQuery.
func (s *session) login(ctx context.Context, cw *bufio.Writer) error {
	for {
		if s.sr.Buffered() == 0 {
			if err := cw.Flush(); err != nil {
				return onClient(err)
			}
		}
		msg, err := readMessage(s.sr, maxServerLoginMsg)
		if err != nil {
			return onServer(err)
		}
		switch msg[0] {
		case 'R':
			if len(msg) < 9 {
				return onServer(&protocolError{err: errors.New("short Authentication message")})
			}
			code := binary.BigEndian.Uint32(msg[5:9])
			if code == 10 { // AuthenticationSASL
				msg = withoutChannelBinding(msg)
			}
			if _, err := cw.Write(msg); err != nil {
				return onClient(err)
			}
			switch code {
			case 3, 5, 7, 8, 9, 10, 11: // the server waits for the client's answer
				if err := cw.Flush(); err != nil {
					return onClient(err)
				}
				resp, err := s.readAuthResponse()
				if err != nil {
					return err
				}
				if code == 10 && isTLS(s.client) && isTLS(s.server) && gs2Flag(resp) == 'y' {
					if err := s.reconnectWithoutTLS(ctx); err != nil {
						return err
					}
				}
				if _, err := s.server.Write(resp); err != nil {
					return onServer(err)
				}
			}
		case 'K':
			if len(msg) < 13 {
				return onServer(&protocolError{err: errors.New("short BackendKeyData message")})
			}
			s.cancelKey = s.srv.cancels.register(cancelTarget{addr: s.backend.Addr, key: cancelKey{
				pid: binary.BigEndian.Uint32(msg[5:9]), secret: string(msg[9:]),
			}})
			own, _ := (&pgproto3.BackendKeyData{ProcessID: s.cancelKey.pid, SecretKey: []byte(s.cancelKey.secret)}).Encode(nil)
			if _, err := cw.Write(own); err != nil {
				return onClient(err)
			}
		case 'E':
			cw.Write(msg)
			cw.Flush()
			var e pgproto3.ErrorResponse
			if err := e.Decode(msg[5:]); err == nil {
				return fmt.Errorf("%w: %s %s", errServerRejected, e.Code, e.Message)
			}
			return errServerRejected
		case 'Z':
			if s.needsConfirm() {
				if err := s.confirmPrimary(ctx); err != nil {
					return err
				}
			}
			if s.needsReplicaConfirm() {
				if err := s.confirmReplica(); err != nil {
					return err
				}
			}
			if _, err := cw.Write(msg); err != nil {
				return onClient(err)
			}
			if err := cw.Flush(); err != nil {
				return onClient(err)
			}
			return nil
		case 'S', 'N', 'v':
			if _, err := cw.Write(msg); err != nil {
				return onClient(err)
			}
		default:
			return onServer(&protocolError{err: fmt.Errorf("unexpected message %q during login", msg[0])})
		}
	}
}

// readAuthResponse reads the client's answer to an authentication request.
func (s *session) readAuthResponse() ([]byte, error) {
	msg, err := readMessage(s.cr, maxAuthMsgLen)
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

func isTLS(c net.Conn) bool {
	_, ok := c.(*tls.Conn)
	return ok
}

// reconnectWithoutTLS replaces the server connection by a plaintext one
// and replays the login up to the server's SASL request.
//
// SCRAM channel binding cannot cross a proxy that terminates TLS. A TLS
// client told that the server offers no binding sends the gs2 flag 'y',
// which a TLS server rejects as a downgrade attack, and the flag is
// covered by the client's proof, so it cannot be rewritten. On a
// plaintext server connection 'y' is valid.
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
		return &clientError{Code: codeConnectionFailure, Message: fmt.Sprintf(
			"could not reconnect to server %s (%s) for SCRAM", s.backend.Name, s.backend.Addr), cause: err}
	}
	s.mu.Lock()
	old := s.server
	s.mu.Unlock()
	old.Close()
	if err := s.setServer(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.Write(s.startup); err != nil {
		return onServer(err)
	}
	msg, err := readMessage(s.sr, maxServerLoginMsg)
	if err != nil {
		return onServer(err)
	}
	if msg[0] != 'R' || len(msg) < 9 || binary.BigEndian.Uint32(msg[5:9]) != 10 {
		return onServer(&protocolError{err: fmt.Errorf("server answered %q instead of its SASL request on reconnect", msg[0])})
	}
	s.srv.log.Debug("server connection re-opened without TLS for SCRAM from a TLS client",
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
