package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/switchyard-proxy/switchyard/internal/wire"
)

// rawPump is pump for a plain TCP source, with one RawConn.Read for the
// whole copy instead of one net.Conn.Read per chunk.
//
// Each net.Conn.Read resets the poller's readiness before it reads, so a
// Read that follows one that drained the socket always costs a read that
// returns EAGAIN, then a park. Inside one RawConn.Read there is no reset:
// the callback reads and forwards until a read comes back short (the
// socket is drained) or EAGAIN, and only then returns false to park; data
// that arrived meanwhile has already signalled the poller, so the park
// returns at once. Deadlines and Close still end the wait through the
// poller, as they do a Read.
//
// buffered is what the source's bufio.Reader already holds (read ahead
// during login): it goes first.
func rawPump(dst io.Writer, src *net.TCPConn, buffered []byte, f *wire.Framer, srcSide Side, count func(int), onHeader func(byte)) error {
	mark, dstMark := onServer, onClient
	if srcSide == SideClient {
		mark, dstMark = onClient, onServer
	}
	forward := func(p []byte) error {
		if ferr := f.Scan(p, onHeader); ferr != nil {
			return mark(&protocolError{err: ferr})
		}
		w, werr := dst.Write(p)
		count(w)
		if werr != nil {
			return dstMark(werr)
		}
		return nil
	}
	if len(buffered) > 0 {
		if err := forward(buffered); err != nil {
			return err
		}
	}
	rc, err := src.SyscallConn()
	if err != nil {
		return mark(err)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var done error // why the copy ends, set inside the callback
	for {
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr := syscall.Read(int(fd), buf)
				switch {
				case rerr == syscall.EINTR:
					continue
				case rerr == syscall.EAGAIN:
					return false // drained: park until the next edge
				case rerr != nil:
					done = mark(&net.OpError{Op: "read", Net: "tcp", Err: rerr})
					return true
				case n == 0:
					done = mark(io.EOF)
					return true
				}
				if err := forward(buf[:n]); err != nil {
					done = err
					return true
				}
				if n < len(buf) {
					return false // a short read drained the socket
				}
			}
		})
		if done != nil {
			return done
		}
		if err != nil { // a deadline or Close
			if errors.Is(err, net.ErrClosed) {
				return mark(err)
			}
			return mark(&net.OpError{Op: "read", Net: "tcp", Err: err})
		}
	}
}
