package pool

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// closeWait bounds closing a server: the Terminate, then waiting for the
// server to close its end (its backend has then left pg_stat_activity,
// so a slot freed is really free).
const closeWait = time.Second

// Server is a pooled server connection, checked out by Get and returned
// by Put. Between the two its Conn belongs to the caller alone.
type Server struct {
	*Conn
	id   ID
	p    *pool
	gen  uint64 // p.gen when opened; a Drain or Close moves it on
	out  bool   // checked out (under the Set's lock)
	lost atomic.Bool
	// closeAtPut is set by Drain, Reconnect and Close while checked out.
	closeAtPut atomic.Bool
	// Owner is a note of who has it checked out (a session ID), for
	// SHOW SERVERS; its user sets it.
	Owner atomic.Uint64

	created, lastUsed time.Time // lastUsed under the Set's lock
}

// ID is the pool the server belongs to.
func (sv *Server) ID() ID { return sv.id }

// Lost reports that the server's member was drained while it was checked
// out: the user should finish or abandon its transaction; Put closes it.
func (sv *Server) Lost() bool { return sv.lost.Load() }

// Created is when the server was opened.
func (sv *Server) Created() time.Time { return sv.created }

// healthy checks a server about to be handed out: its socket must still
// be open with nothing unsolicited on it (a backend that was terminated
// sent a FATAL ErrorResponse and closed), then the check query, if any,
// must succeed.
func (sv *Server) healthy(ctx context.Context, query string) bool {
	if !sv.idleOpen() {
		return false
	}
	return query == "" || sv.Exec(ctx, query) == nil
}

// idleOpen peeks at the socket without blocking: an idle server has
// nothing to say, so data or EOF both mean it is gone.
func (sv *Server) idleOpen() bool {
	if sv.R.Buffered() > 0 {
		return false
	}
	nc := sv.Conn.Conn
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS: any record is unsolicited too
		nc = u.NetConn()
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if open, ok := peekSocket(sc); ok {
			return open
		}
	}
	// Not a socket (net.Pipe in tests): a read that times out at once.
	sv.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := sv.R.Peek(1)
	sv.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// terminate sends Terminate, waits (within closeWait) for the server to
// close its end, and closes the socket.
func (c *Conn) terminate() {
	c.SetDeadline(time.Now().Add(closeWait))
	if _, err := c.Write([]byte{'X', 0, 0, 0, 4}); err == nil {
		io.Copy(io.Discard, c.R)
	}
	c.Close()
}
