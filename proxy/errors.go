package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/router"
)

// SQLSTATE codes Switchyard sends.
const (
	codeProtocolViolation    = "08P01"
	codeInvalidPassword      = "28P01"
	codeSyntaxError          = "42601"
	codeIdleInTransaction    = "25P03"
	codeIdleSession          = "57P05"
	codeConnectionFailure    = "08006"
	codeFeatureNotSupported  = "0A000"
	codeInvalidAuthorization = "28000"
	codeTooManyConnections   = "53300"
	codeQueryCanceled        = "57014"
	codeAdminShutdown        = "57P01"
	codeCannotConnectNow     = "57P03"
	codeInternal             = "XX000"
)

// clientError is a failure a client sees as a FATAL ErrorResponse. Message
// and Detail are for people; nothing internal (addresses, member lists)
// goes into them: that is what cause and the log are for.
type clientError struct {
	Code    string
	Message string
	Detail  string
	cause   error // for the log only
	v2      bool  // the client speaks protocol 1 or 2: an 'E' and a NUL-terminated text
}

func (e *clientError) Error() string {
	msg := e.Message
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.cause != nil {
		msg += " (" + e.cause.Error() + ")"
	}
	return msg
}

func (e *clientError) Unwrap() error { return e.cause }

func newClientError(code, format string, args ...any) *clientError {
	return &clientError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// KillCause is why Switchyard ended a live session: a member lost the
// role the session was routed for, a shutdown, later an admin command or
// a pool drain. The client gets it as a FATAL ErrorResponse with this
// SQLSTATE and message.
type KillCause struct {
	SQLState string
	Message  string
	Reason   EndReason // for metrics; EndKilled if empty
	// Anonymous, when set, replaces Message for a client that has not
	// logged in yet: it names the listener, never a member.
	Anonymous string
}

// forClient is what a client that has (loggedIn) or has not logged in
// may be told of err.
func forClient(err error, loggedIn bool) error {
	var kc *KillCause
	if loggedIn || !errors.As(err, &kc) || kc.Anonymous == "" {
		return err
	}
	return &KillCause{SQLState: kc.SQLState, Message: kc.Anonymous, Reason: kc.Reason}
}

func (k *KillCause) Error() string { return k.Message }

// RoleLost is the cause that ends a session whose member lost the role
// it was chosen for: 57P01, naming the member and what it lost.
func RoleLost(l *router.Loss) *KillCause {
	anon := fmt.Sprintf("terminating connection because the %s server chosen for listener %q %s while connecting; reconnect",
		l.Role, l.Listener, l.Why)
	if l.Role == topology.RolePrimary {
		return &KillCause{SQLState: codeAdminShutdown, Reason: EndRoleLost, Anonymous: anon, Message: fmt.Sprintf(
			"terminating connection because server %q is no longer the primary: it %s; reconnect to reach the current primary",
			l.Backend, l.Why)}
	}
	return &KillCause{SQLState: codeAdminShutdown, Reason: EndRoleLost, Anonymous: anon, Message: fmt.Sprintf(
		"terminating connection because server %q no longer serves listener %q as a %s: it %s; reconnect",
		l.Backend, l.Listener, l.Role, l.Why)}
}

// shutdownCause ends the sessions left when shutdown_timeout runs out.
var shutdownCause = &KillCause{SQLState: codeAdminShutdown,
	Message: "terminating connection because Switchyard is shutting down"}

// Phase deadlines. errLoginTimeout becomes 57014; errStartupTimeout ends
// the connection without a word, as PostgreSQL does when no startup
// packet arrives.
var (
	errStartupTimeout = errors.New("no startup packet within limits.startup_timeout")
	errLoginTimeout   = errors.New("login not completed within limits.client_login_timeout")
)

// errServerRejected ends a login the server refused; the client already
// has the server's own ErrorResponse.
var errServerRejected = errors.New("server refused the login")

// errServerClosed ends a pooled session whose server ended it with its
// own FATAL ErrorResponse, which the client already has.
var errServerClosed = errors.New("the server ended the session")

// silentError ends a connection without a reply, where PostgreSQL itself
// closes silently (a bad first packet); the reason is logged.
type silentError struct{ reason string }

func (e *silentError) Error() string { return e.reason }

// Side says which end of a session an I/O error came from.
type Side string

// Sides of a session.
const (
	SideClient Side = "client"
	SideServer Side = "server"
)

// sideError marks an I/O error with the side it came from.
type sideError struct {
	Side Side
	Err  error
}

func (e *sideError) Error() string { return string(e.Side) + ": " + e.Err.Error() }
func (e *sideError) Unwrap() error { return e.Err }

func onClient(err error) error { return &sideError{Side: SideClient, Err: err} }
func onServer(err error) error { return &sideError{Side: SideServer, Err: err} }

// sideOf returns the side an error came from, "" if not marked.
func sideOf(err error) Side {
	var se *sideError
	if errors.As(err, &se) {
		return se.Side
	}
	return ""
}

// isClosed reports whether err is an ordinary end of stream or a closed or
// reset connection, rather than a protocol problem.
func isClosed(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &ne)
}

// protocolError is a peer sending something that is not pgwire.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "protocol violation: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// renderable reports whether the client should be told about err: not
// when the client itself went away, the server already sent its own
// error, or PostgreSQL would close without a word.
func renderable(err error) bool {
	var (
		ce *clientError
		kc *KillCause
		se *silentError
	)
	switch {
	case errors.As(err, &se):
		return false
	case errors.As(err, &ce), errors.As(err, &kc), errors.Is(err, errLoginTimeout):
		return true
	case errors.Is(err, errServerRejected), errors.Is(err, errServerClosed):
		return false
	}
	return sideOf(err) == SideServer
}

// errorResponse renders err, the reason a session is ending, as the FATAL
// ErrorResponse its client gets, or a failed request (*requestError) as
// an ERROR. This is the only place errors become wire messages.
func errorResponse(err error) *pgproto3.ErrorResponse {
	var (
		ce *clientError
		kc *KillCause
		re *requestError
	)
	e := &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL"}
	switch {
	case errors.As(err, &re): // the client survives it
		e.Severity, e.SeverityUnlocalized = "ERROR", "ERROR"
		e.Code, e.Message, e.Detail, e.Hint = re.Code, re.Message, re.Detail, re.Hint
	case errors.As(err, &kc):
		e.Code, e.Message = kc.SQLState, kc.Message
	case errors.As(err, &ce):
		e.Code, e.Message, e.Detail = ce.Code, ce.Message, ce.Detail
	case errors.Is(err, errLoginTimeout):
		e.Code, e.Message = codeQueryCanceled, "canceling login: not completed within limits.client_login_timeout"
	case sideOf(err) == SideServer:
		e.Code, e.Message = codeConnectionFailure, "the server connection was lost; reconnect to continue"
	default:
		e.Code, e.Message = codeInternal, "internal error in Switchyard; see its log"
	}
	return e
}

// encodeError returns the wire bytes of errorResponse(err), or of the
// protocol 2 error a client of protocol 1 or 2 understands, as
// PostgreSQL sends it.
func encodeError(err error) []byte {
	var ce *clientError
	if errors.As(err, &ce) && ce.v2 {
		return append([]byte("EFATAL:  "+ce.Message+"\n"), 0)
	}
	b, encErr := errorResponse(err).Encode(nil)
	if encErr != nil { // only on absurd sizes; fall back to a fixed message
		b, _ = (&pgproto3.ErrorResponse{Severity: "FATAL", Code: codeInternal, Message: "internal error"}).Encode(nil)
	}
	return b
}

// requestError is the failure of one request that the client survives:
// a pooled client that could not get a server, or whose transaction died
// with its server. It is sent as an ERROR, not FATAL, and the client
// keeps its connection.
type requestError struct {
	Code    string
	Message string
	Detail  string
	Hint    string
	cause   error // for the log only
}

func (e *requestError) Error() string {
	msg := e.Message
	if e.cause != nil {
		msg += " (" + e.cause.Error() + ")"
	}
	return msg
}

func (e *requestError) Unwrap() error { return e.cause }

// encode renders the ErrorResponse the client gets.
func (e *requestError) encode() []byte { return encodeError(e) }

// errorCode is the SQLSTATE of an ErrorResponse message (type byte
// included), "" if it has none.
func errorCode(msg []byte) string {
	if len(msg) < 5 {
		return ""
	}
	body := msg[5:]
	for len(body) > 0 && body[0] != 0 {
		field := body[0]
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			return ""
		}
		if field == 'C' {
			return string(body[1 : 1+end])
		}
		body = body[2+end:]
	}
	return ""
}
