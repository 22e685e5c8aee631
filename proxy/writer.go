package proxy

import (
	"net"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/wire"
)

// errorWriteGrace is how long a session being ended may take to hand its
// client the ErrorResponse that says why.
const errorWriteGrace = time.Second

// clientWriter is the only way bytes reach a client once it has sent a
// startup packet. It knows where the last whole message it delivered
// ended, counting only bytes the socket accepted, so an ErrorResponse is
// only ever appended after a whole message: after a short write (a
// deadline while the session is being ended) the client has half a
// message and gets nothing more.
//
// Login messages are queued whole and flushed at the points where the
// client must answer; the relay writes its stream through Write. Only the
// session goroutine uses it (interrupt sets deadlines on session.client,
// the same socket).
type clientWriter struct {
	conn net.Conn

	buf   []byte      // whole messages queued, not yet written
	f     wire.Framer // over the bytes the socket accepted
	total int64       // bytes the socket accepted
}

func (w *clientWriter) setConn(c net.Conn) { w.conn = c }

// rawByte writes a one-byte answer to SSLRequest or GSSENCRequest. It is
// not a message and is never followed by a partial one.
func (w *clientWriter) rawByte(b byte) error {
	_, err := w.conn.Write([]byte{b})
	return err
}

// queue appends whole messages to be written at the next flush.
func (w *clientWriter) queue(msg []byte) { w.buf = append(w.buf, msg...) }

// discard drops what is queued.
func (w *clientWriter) discard() { w.buf = w.buf[:0] }

// flush writes what is queued.
func (w *clientWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// Write flushes the queue and writes p, a piece of the server's message
// stream (it need not end at a boundary).
func (w *clientWriter) Write(p []byte) (int, error) {
	if err := w.flush(); err != nil {
		return 0, err
	}
	return w.write(p)
}

func (w *clientWriter) write(p []byte) (int, error) {
	n, err := w.conn.Write(p)
	w.total += int64(n)
	// A whole-message stream cannot fail to frame; if it does, the framer
	// stays off a boundary and no error will be appended.
	_ = w.f.Scan(p[:n], nil)
	return n, err
}

// atBoundary reports whether the client has been sent a whole number of
// messages.
func (w *clientWriter) atBoundary() bool { return w.f.AtBoundary() }

// last is the type of the last message the client was sent.
func (w *clientWriter) last() byte { return w.f.Last() }

// sendError tells the client why its session ends, if it is at a message
// boundary: queued messages first, then one FATAL ErrorResponse, within
// errorWriteGrace.
func (w *clientWriter) sendError(err error) {
	if !w.atBoundary() {
		return
	}
	w.queue(encodeError(err))
	w.conn.SetWriteDeadline(time.Now().Add(errorWriteGrace))
	w.flush()
}
