package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/wire"
)

// maxLoginMsg bounds one server message before ReadyForQuery.
const maxLoginMsg = 1 << 20

// Authenticator answers the authentication requests of one server login.
type Authenticator interface {
	// Respond is given each whole Authentication ('R') message the server
	// sends and returns the whole message to send back, or nil when none
	// is due.
	Respond(msg []byte) ([]byte, error)
}

// Login sends a StartupMessage (protocol 3.0) with params on c, answers
// authentication through auth (nil when the server is expected to ask for
// none), and reads until ReadyForQuery, recording ParameterStatus into
// c.Params and BackendKeyData into c.Key. params must include "user" and
// "database"; others (application_name, options) go along. An
// ErrorResponse from the server is returned as *ServerError. ctx bounds
// the whole exchange; when it ends the socket's deadline does.
func Login(ctx context.Context, c *Conn, params map[string]string, auth Authenticator) error {
	if params["user"] == "" || params["database"] == "" {
		return errors.New("login: user and database are required")
	}
	defer watch(ctx, c)()
	startup, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := c.Write(startup); err != nil {
		return fmt.Errorf("sending startup message: %w", ctxErr(ctx, err))
	}
	for {
		msg, err := wire.ReadMessage(c.R, maxLoginMsg)
		if err != nil {
			return fmt.Errorf("reading login response: %w", ctxErr(ctx, err))
		}
		switch msg[0] {
		case 'R':
			if err := c.authenticate(ctx, msg, auth); err != nil {
				return err
			}
		case 'K':
			if len(msg) < 13 {
				return errors.New("short BackendKeyData message")
			}
			c.Key = Key{PID: binary.BigEndian.Uint32(msg[5:9]), Secret: string(msg[9:])}
		case 'S':
			c.recordParam(msg)
		case 'E':
			return newServerError(msg)
		case 'N', 'v': // NoticeResponse, NegotiateProtocolVersion
		case 'Z':
			return nil
		default:
			return fmt.Errorf("unexpected message %q during login", msg[0])
		}
	}
}

func (c *Conn) authenticate(ctx context.Context, msg []byte, auth Authenticator) error {
	if len(msg) < 9 {
		return errors.New("short Authentication message")
	}
	method := binary.BigEndian.Uint32(msg[5:9])
	if auth == nil {
		if method == 0 { // AuthenticationOk
			return nil
		}
		return fmt.Errorf("server asks for authentication (method %d) and no authenticator is set", method)
	}
	resp, err := auth.Respond(msg)
	if err != nil {
		return fmt.Errorf("authentication (method %d): %w", method, err)
	}
	if resp == nil {
		return nil
	}
	if _, err := c.Write(resp); err != nil {
		return fmt.Errorf("sending authentication response: %w", ctxErr(ctx, err))
	}
	return nil
}

func (c *Conn) recordParam(msg []byte) {
	var ps pgproto3.ParameterStatus
	if ps.Decode(msg[5:]) == nil {
		c.Params[ps.Name] = ps.Value
	}
}

// watch turns ctx ending into an expired deadline on conn until stop is
// called. Once ctx has ended the deadline stays: an exchange cut short
// leaves the connection of no further use.
func watch(ctx context.Context, conn net.Conn) (stop func()) {
	after := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return func() { after() }
}
