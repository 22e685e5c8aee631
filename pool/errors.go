package pool

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Errors a Get can return besides the Opener's and *ExhaustedError.
var (
	// ErrDrained: the member lost its role while the Get waited or its
	// server was being opened; the caller routes the client again.
	ErrDrained = errors.New("pool: member drained")
	// ErrClosed: the Set is closed.
	ErrClosed = errors.New("pool: closed")
)

// ServerError is an ErrorResponse the server sent. Raw is the whole 'E'
// message as received, so a proxy can forward it to its client verbatim.
type ServerError struct {
	Raw      []byte
	Severity string // unlocalized when the server sent it (V), else S
	Code     string // SQLSTATE
	Message  string
	Detail   string
}

func (e *ServerError) Error() string { return "server error " + e.Code + ": " + e.Message }

// newServerError decodes a whole 'E' message; Raw keeps msg itself.
func newServerError(msg []byte) error {
	var er pgproto3.ErrorResponse
	if len(msg) < 5 {
		return errors.New("short ErrorResponse message")
	}
	if err := er.Decode(msg[5:]); err != nil {
		return fmt.Errorf("decoding ErrorResponse: %w", err)
	}
	sev := er.SeverityUnlocalized
	if sev == "" {
		sev = er.Severity
	}
	return &ServerError{Raw: msg, Severity: sev, Code: er.Code, Message: er.Message, Detail: er.Detail}
}

// rejected reports whether err is a login the server refused for good
// (bad password, no such database or role), as opposed to one it could
// not serve now (starting up, shutting down, connection trouble): only
// those are remembered for server_login_retry.
func rejected(err error) bool {
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	switch {
	case se.Code == "57P03", se.Code == "57P01", strings.HasPrefix(se.Code, "08"):
		return false
	}
	return true
}

// ExhaustedError is what Get returns when no server was free within
// query_wait_timeout. Limit names the limit that held it back, such as
// "default_pool_size = 10" or "max_db_connections = 5"; InUse is how
// many connections that limit counted.
type ExhaustedError struct {
	ID     ID
	Limit  string
	InUse  int
	Waited time.Duration
}

func (e *ExhaustedError) Error() string {
	why := "pool is paused"
	if e.Limit != "paused" {
		why = fmt.Sprintf("all %d in use (%s)", e.InUse, e.Limit)
	}
	return fmt.Sprintf("no server connection for pool %q on member %s within query_wait_timeout (%s): %s",
		e.ID.Database+"/"+e.ID.User, e.ID.Member, seconds(e.Waited), why)
}

// seconds writes d as pgbouncer's settings do: "120s", "1.5s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', -1, 64) + "s"
}
