package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/router"
)

// SQLSTATE codes Switchyard sends.
const (
	codeProtocolViolation    = "08P01"
	codeConnectionFailure    = "08006"
	codeFeatureNotSupported  = "0A000"
	codeInvalidAuthorization = "28000"
	codeTooManyConnections   = "53300"
	codeCannotConnectNow     = "57P03"
	codeAdminShutdown        = "57P01"
	codeInternal             = "XX000"
)

// clientError is a failure a client sees as a FATAL ErrorResponse. Message
// is for people; nothing internal goes into it.
type clientError struct {
	Code    string
	Message string
	Detail  string
	cause   error // for the log only
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

// errorResponse renders err, the reason a session is ending, as the FATAL
// ErrorResponse its client gets. This is the only place errors become
// wire messages.
func errorResponse(err error) *pgproto3.ErrorResponse {
	var (
		ce *clientError
		kc *router.KillCause
	)
	switch {
	case errors.As(err, &kc):
		return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: kc.SQLState, Message: kc.Message}
	case errors.As(err, &ce):
		return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: ce.Code, Message: ce.Message, Detail: ce.Detail}
	case sideOf(err) == SideServer:
		return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeConnectionFailure,
			Message: "the server connection was lost; reconnect to continue"}
	}
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeInternal,
		Message: "internal error in Switchyard; see its log"}
}

// encodeError returns the wire bytes of errorResponse(err).
func encodeError(err error) []byte {
	b, encErr := errorResponse(err).Encode(nil)
	if encErr != nil { // only on absurd sizes; fall back to a fixed message
		b, _ = (&pgproto3.ErrorResponse{Severity: "FATAL", Code: codeInternal, Message: "internal error"}).Encode(nil)
	}
	return b
}
