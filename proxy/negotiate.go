package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
)

// negotiate reads startup packets until a StartupMessage, the way
// PostgreSQL 15's ProcessStartupPacket does: an SSLRequest is answered
// once ('S' and a TLS handshake, or 'N'), a GSSENCRequest once ('N'), and
// a second one of either is not a startup packet at all (0A000, as its
// code reads as protocol 1234.x). A CancelRequest is served and the
// connection closed; nil and no error are returned then.
func (s *session) negotiate(ctx context.Context) (*startupMessage, error) {
	var sslDone, gssDone bool
	for {
		p, err := readStartup(s.cr)
		if err != nil {
			return nil, err
		}
		switch {
		case p.code == codeCancelRequest:
			s.serveCancel(ctx, p)
			return nil, nil
		case p.code == codeSSLRequest && !sslDone:
			if err := s.answerSSL(ctx); err != nil {
				return nil, err
			}
			// PostgreSQL then allows GSSENCRequest only if TLS was refused.
			sslDone, gssDone = true, isTLS(s.client)
		case p.code == codeGSSENCRequest && !gssDone:
			if err := s.cw.rawByte('N'); err != nil {
				return nil, onClient(err)
			}
			if s.cr.Buffered() > 0 {
				return nil, onClient(unencryptedData("GSSAPI encryption"))
			}
			// As PostgreSQL, an SSLRequest may follow a refused GSSENCRequest.
			sslDone, gssDone = false, true
		default:
			m, err := parseStartupMessage(p)
			if err != nil {
				return nil, err
			}
			if s.srv.opts.ClientTLS == ClientTLSRequire && !isTLS(s.client) {
				return nil, onClient(newClientError(codeInvalidAuthorization,
					"TLS is required: connect with sslmode=require (tls.client_mode = \"require\")"))
			}
			return m, nil
		}
	}
}

// answerSSL answers an SSLRequest: 'S' and a TLS handshake when client
// TLS is on, 'N' otherwise.
func (s *session) answerSSL(ctx context.Context) error {
	if s.srv.tlsConfig == nil || s.srv.opts.ClientTLS == ClientTLSDisable {
		if err := s.cw.rawByte('N'); err != nil {
			return onClient(err)
		}
		if s.cr.Buffered() > 0 {
			return onClient(unencryptedData("SSL"))
		}
		return nil
	}
	// Bytes sent before the handshake would be trusted plaintext
	// (CVE-2021-23214); refuse them before the handshake, which they
	// would only derail.
	if s.cr.Buffered() > 0 {
		return onClient(unencryptedData("SSL"))
	}
	if err := s.cw.rawByte('S'); err != nil {
		return onClient(err)
	}
	tconn := tls.Server(s.client, s.srv.tlsConfig)
	if err := tconn.HandshakeContext(ctx); err != nil {
		return onClient(fmt.Errorf("TLS handshake: %w", err))
	}
	s.setClient(tconn)
	return nil
}

func unencryptedData(what string) *clientError {
	return &clientError{Code: codeProtocolViolation,
		Message: fmt.Sprintf("received unencrypted data after %s request", what),
		Detail:  "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack."}
}

func isTLS(c net.Conn) bool {
	_, ok := c.(*tls.Conn)
	return ok
}

// serveCancel relays a CancelRequest to the server its key stands for.
// Unknown or malformed keys are ignored silently, as PostgreSQL does.
func (s *session) serveCancel(ctx context.Context, p startupPacket) {
	key, ok := parseCancel(p)
	if !ok {
		s.srv.log.Debug("malformed cancel request", "listener", s.ln.name, "client", s.client.RemoteAddr().String())
		return
	}
	t, ok := s.srv.cancels.lookup(key)
	if !ok {
		s.srv.log.Debug("cancel request with unknown key", "listener", s.ln.name, "client", s.client.RemoteAddr().String())
		return
	}
	addr, skey, ok := t.resolve()
	if !ok {
		s.srv.log.Debug("cancel request for a pooled client between transactions: nothing to cancel", "listener", s.ln.name)
		return
	}
	if err := s.srv.opts.Dialer.Cancel(ctx, addr, skey); err != nil && !isClosed(err) {
		s.srv.log.Warn("cancel request not delivered", "listener", s.ln.name, "backend", addr, "err", err)
		return
	}
	s.srv.log.Debug("cancel request forwarded", "listener", s.ln.name, "backend", addr)
}
