package pool

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/wire"
)

// maxResultMsg bounds one server message of a result.
const maxResultMsg = 64 << 20

// Exec runs sql with the simple query protocol and reads to ReadyForQuery,
// recording ParameterStatus into c.Params. The first ErrorResponse is
// returned as *ServerError (the connection stays usable); the server must
// end outside a transaction block. When ctx ends the connection is left
// with an expired deadline and is of no further use.
func (c *Conn) Exec(ctx context.Context, sql string) error {
	defer watch(ctx, c)()
	msg, err := (&pgproto3.Query{String: sql}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("sending query: %w", ctxErr(ctx, err))
	}
	return c.readResult(ctx, nil)
}

// QueryRow runs sql with the extended protocol (unnamed statement, args
// as text parameters, text results) and returns the first row, a NULL
// column as nil; found is false when there was no row. Errors as Exec.
func (c *Conn) QueryRow(ctx context.Context, sql string, args ...string) (row []*string, found bool, err error) {
	defer watch(ctx, c)()
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	var buf []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: sql},
		&pgproto3.Bind{Parameters: params},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	} {
		if buf, err = m.Encode(buf); err != nil {
			return nil, false, err
		}
	}
	if _, err := c.Write(buf); err != nil {
		return nil, false, fmt.Errorf("sending query: %w", ctxErr(ctx, err))
	}
	err = c.readResult(ctx, func(msg []byte) error {
		if found {
			return nil
		}
		var dr pgproto3.DataRow
		if err := dr.Decode(msg[5:]); err != nil {
			return err
		}
		row, found = make([]*string, len(dr.Values)), true
		for i, v := range dr.Values {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return row, found, nil
}

// readResult reads to ReadyForQuery, handing DataRows to onRow.
func (c *Conn) readResult(ctx context.Context, onRow func(msg []byte) error) error {
	var first error
	for {
		msg, err := wire.ReadMessage(c.R, maxResultMsg)
		if err != nil {
			return fmt.Errorf("reading result: %w", ctxErr(ctx, err))
		}
		switch msg[0] {
		case 'D':
			if onRow != nil && first == nil {
				first = onRow(msg)
			}
		case 'E':
			if first == nil {
				first = newServerError(msg)
			}
		case 'S':
			c.recordParam(msg)
		case 'G', 'H', 'W':
			// COPY would need the caller's data; the connection cannot go on.
			return errors.New("query started a COPY")
		case 'Z':
			if first != nil {
				return first
			}
			if len(msg) < 6 || msg[5] != 'I' {
				return fmt.Errorf("server not idle after the query (status %q)", msg[5:])
			}
			return nil
		}
	}
}
