package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/pool"
)

// ConsoleDatabases are the database names that reach the admin console
// instead of a server: pgbouncer's, and ours.
var ConsoleDatabases = []string{"pgbouncer", "switchyard"}

// Console answers the admin console's simple queries, as pgbouncer's
// console does. The proxy carries the protocol (login, messages); what
// the commands mean is the Console's.
type Console interface {
	// Access says whether user may use the console, and whether with
	// every command (admin) or SHOW only.
	Access(user string) (admin, ok bool)
	// Exec runs one query string (one command, a trailing ';' allowed).
	// An error the client should see is a *ConsoleError.
	Exec(ctx context.Context, c ConsoleClient, query string) ([]Result, error)
}

// ConsoleClient is who runs a console command.
type ConsoleClient struct {
	ID    uint64 // the session's, as SHOW CLIENTS shows it
	User  string
	Admin bool // may change things, not only SHOW
}

// Result is one command's answer: rows (for SHOW) and a command tag.
type Result struct {
	Columns []Column
	Rows    [][]*string // text values; nil is NULL
	Tag     string      // "SHOW", "PAUSE", ...
	Notice  string      // sent as a NOTICE before the rows, if set
	// ShuttingDown: the command stopped Switchyard (SHUTDOWN). After the
	// answer the console connection ends with 57P01 at once, as every
	// other session does when its turn comes, and reads no more commands.
	ShuttingDown bool
}

// Column is a result column: its name and type OID, as pgbouncer sends
// them (text 25, int4 23, int8 20, numeric 1700).
type Column struct {
	Name string
	OID  uint32
}

// ConsoleError is a console command's failure: an ERROR, after which
// the client goes on.
type ConsoleError struct {
	Code    string
	Message string
}

func (e *ConsoleError) Error() string { return e.Message }

// IsConsole reports whether a client asking for database db reaches the
// admin console.
func IsConsole(db string) bool {
	for _, d := range ConsoleDatabases {
		if db == d {
			return true
		}
	}
	return false
}

// maxConsoleQuery bounds one console message.
const maxConsoleQuery = 64 << 10

// runConsole is the life of an admin console client: authenticated as a
// pooled client is, it may then send simple queries until it leaves.
func (s *session) runConsole(ctx, loginCtx context.Context) error {
	con := s.srv.opts.Console
	user := s.startup.params["user"]
	s.totals = &Totals{} // console traffic is no database's
	if s.startup.replication() {
		return onClient(newClientError(codeFeatureNotSupported, "replication connections are not supported by the admin console"))
	}
	// As pgbouncer: who is not listed is refused before any password
	// exchange, with its words and SQLSTATE.
	admin, ok := con.Access(user)
	if !ok {
		return onClient(newClientError(codeProtocolViolation, "not allowed"))
	}
	if err := s.phase(loginCtx, func() error { return s.authenticateClient(loginCtx) }); err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"server_version", consoleServerVersion}, {"client_encoding", "UTF8"}, {"server_encoding", "UTF8"},
		{"DateStyle", "ISO"}, {"TimeZone", "GMT"}, {"standard_conforming_strings", "on"},
		{"is_superuser", "on"}, {"integer_datetimes", "on"},
		{"application_name", s.startup.params["application_name"]},
	} {
		s.cw.queue(encodeMsg(&pgproto3.ParameterStatus{Name: kv[0], Value: kv[1]}))
	}
	s.clientKey = s.srv.cancels.register(cancelTarget{key: pool.Key{PID: fakePID(), Secret: "0000"},
		current: func() (string, pool.Key, bool) { return "", pool.Key{}, false }})
	s.cw.queue(backendKeyData(s.clientKey))
	s.cw.queue(readyForQueryIdle)
	if err := s.cw.flush(); err != nil {
		return onClient(err)
	}
	s.ln.stats.Sessions.Add(1)
	cc := ConsoleClient{ID: s.id, User: user, Admin: admin}
	return s.phase(ctx, func() error {
		for {
			msg, err := wire.NextMessage(s.cr, maxConsoleQuery)
			if err != nil {
				if isClosed(err) {
					return onClient(err)
				}
				return onClient(newClientError(codeProtocolViolation, "invalid message from client: %v", err))
			}
			s.countIn(len(msg))
			switch msg[0] {
			case 'X':
				return nil
			case 'Q':
			default:
				// pgbouncer's answer: an ERROR, ReadyForQuery, and a FATAL.
				text := fmt.Sprintf("unsupported packet type for admin console: %d", msg[0])
				if msg[0] == 'P' || msg[0] == 'B' || msg[0] == 'E' {
					text = "extended query protocol not supported by admin console"
				}
				if err := s.consoleAnswer(nil, &ConsoleError{Code: codeProtocolViolation, Message: text}); err != nil {
					return err
				}
				return onClient(newClientError(codeProtocolViolation, "bad packet"))
			}
			q := strings.TrimRight(string(msg[5:]), "\x00")
			res, err := con.Exec(ctx, cc, q)
			if err := s.consoleAnswer(res, err); err != nil {
				return err
			}
			if slices.ContainsFunc(res, func(r Result) bool { return r.ShuttingDown }) {
				return shutdownCause
			}
		}
	})
}

// consoleServerVersion is what the console reports as server_version:
// pgbouncer's style, which tools that check it recognise.
const consoleServerVersion = "1.24.1/switchyard"

// consoleAnswer sends a command's results, or its error, and
// ReadyForQuery.
func (s *session) consoleAnswer(res []Result, err error) error {
	var ce *ConsoleError
	switch {
	case errors.As(err, &ce):
		s.cw.queue(encodeMsg(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: ce.Code, Message: ce.Message}))
		s.ln.obs.Error(sqlstateClass(ce.Code))
	case err != nil:
		return err
	}
	for _, r := range res {
		if r.Notice != "" {
			s.cw.queue(encodeMsg(&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: r.Notice}))
		}
		if r.Columns != nil {
			rd := &pgproto3.RowDescription{}
			for _, c := range r.Columns {
				size := int16(-1)
				switch c.OID {
				case 20:
					size = 8
				case 23:
					size = 4
				}
				rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(c.Name), DataTypeOID: c.OID,
					DataTypeSize: size, TypeModifier: -1})
			}
			s.cw.queue(encodeMsg(rd))
			for _, row := range r.Rows {
				dr := &pgproto3.DataRow{Values: make([][]byte, len(row))}
				for i, v := range row {
					if v != nil {
						dr.Values[i] = []byte(*v)
					}
				}
				s.cw.queue(encodeMsg(dr))
			}
		}
		s.cw.queue(encodeMsg(&pgproto3.CommandComplete{CommandTag: []byte(r.Tag)}))
	}
	if len(res) == 0 && ce == nil {
		s.cw.queue(encodeMsg(&pgproto3.EmptyQueryResponse{}))
	}
	s.cw.queue(readyForQueryIdle)
	n := len(s.cw.buf)
	if err := s.cw.flush(); err != nil {
		return onClient(err)
	}
	s.countOut(n)
	return nil
}

// encodeMsg encodes a backend message Switchyard composes itself; one
// that cannot be encoded (absurd sizes only) becomes an ERROR saying so.
func encodeMsg(m pgproto3.BackendMessage) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		b, _ = (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: codeInternal,
			Message: fmt.Sprintf("could not encode the answer: %v", err)}).Encode(nil)
	}
	return b
}

// sqlstateClass is the class (first two characters) of a SQLSTATE.
func sqlstateClass(code string) string {
	if len(code) < 2 {
		return ""
	}
	return code[:2]
}
