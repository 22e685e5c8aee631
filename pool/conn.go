package pool

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Key is a BackendKeyData pair: what a CancelRequest must name.
type Key struct {
	PID    uint32
	Secret string // 4 bytes in protocol 3.0; up to 256 in 3.2
}

// Conn is one server connection, as relay mode and pooling both use it:
// the socket, a buffered reader that every read goes through (so nothing
// read ahead is lost between login and relay), the server's cancel key
// and the parameters it reported.
type Conn struct {
	net.Conn
	R      *bufio.Reader
	Member string // the member's name
	Addr   string // host:port dialled
	Key    Key    // zero until the server sent BackendKeyData
	Params map[string]string
	// Tag is its user's note of the state it left the connection in (the
	// pooler's fingerprint of the settings in Params); 0 = unknown.
	Tag uint64
	// Statements is its user's note of the prepared statements on the
	// connection (proxy/pooler's *Statements); nil = none known.
	Statements any
}

// NewConn wraps c, dialled to member at addr.
func NewConn(c net.Conn, member, addr string) *Conn {
	return &Conn{Conn: c, R: bufio.NewReaderSize(c, 8<<10), Member: member, Addr: addr,
		Params: map[string]string{}}
}

// Cancel asks the server to cancel whatever this connection is running,
// with a CancelRequest on a connection of its own, as libpq does. A
// server that is idle ignores it.
func (c *Conn) Cancel(ctx context.Context, d *Dialer) error {
	if c.Key == (Key{}) {
		return nil
	}
	return d.Cancel(ctx, c.Addr, c.Key)
}

// Cancel delivers a CancelRequest for key to addr on a fresh plain
// connection and waits for the server to close it, all within the
// connect timeout.
func (d *Dialer) Cancel(ctx context.Context, addr string, key Key) error {
	ctx, cancel := context.WithTimeout(ctx, d.ConnectTimeout())
	defer cancel()
	conn, err := d.dialTCP(ctx, addr)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg, err := (&pgproto3.CancelRequest{ProcessID: key.PID, SecretKey: []byte(key.Secret)}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("sending cancel to %s: %w", addr, err)
	}
	// The server answers nothing and closes once the signal is sent.
	_, err = io.Copy(io.Discard, conn)
	return err
}
