package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/switchyard-proxy/switchyard/internal/wire"
)

// relay copies whole messages both ways until either side ends or the
// session is cancelled, and returns why it ended: nil for a goodbye,
// otherwise the error the client should get (serve renders it). The
// client-to-server copy runs in its own goroutine; this goroutine copies
// server to client and is the only writer to the client.
func (s *session) relay(ctx context.Context) error {
	var terminated atomic.Bool // the client sent Terminate ('X')
	done := make(chan struct{})
	go func() {
		defer close(done)
		var f wire.Framer
		err := pump(s.server, s.cr, &f, SideClient, s.countIn, func(t byte) {
			switch t {
			case 'X':
				terminated.Store(true)
				return
			case 'Q', 'S', 'F': // each is answered by one ReadyForQuery
				s.pending.Add(1)
			case 'E': // runs a portal, Sync or not (Execute and Flush)
				s.executed.Store(true)
			case 'P':
				s.totals.ClientParses.Add(1)
			case 'B':
				s.totals.Binds.Add(1)
			}
			s.timing.begin()
		})
		s.cancel(err)
	}()
	f := wire.Framer{Ready: func(status byte) { s.timing.ready(status, s.totals, s.ln.obs) }}
	outErr := pump(&s.cw, s.server.R, &f, SideServer, s.countOut, func(t byte) {
		switch t {
		case 'Z':
			s.pending.Add(-1)
			s.executed.Store(false)
		case '1':
			s.totals.ServerParses.Add(1)
		case 'E':
			s.ln.obs.Error("")
		}
	})
	s.cancel(outErr)
	<-done

	cause := context.Cause(ctx)
	var pe *protocolError
	switch {
	case sideOf(cause) == SideServer && isClosed(cause) && (terminated.Load() || s.cw.last() == 'E'):
		// The client said goodbye, or the server sent its own FATAL.
		return nil
	case sideOf(cause) == SideClient && isClosed(cause):
		return cause
	case sideOf(cause) == SideClient && errors.As(cause, &pe):
		return onClient(&clientError{Code: codeProtocolViolation, Message: "invalid message from client: " + pe.err.Error(), cause: cause})
	case sideOf(cause) == SideServer:
		return onServer(&clientError{Code: codeConnectionFailure, cause: cause, Message: fmt.Sprintf(
			"connection to server %s was lost; reconnect to continue", s.backend.Name)})
	}
	return cause
}

func (s *session) countIn(n int) {
	s.bytesIn.Add(int64(n))
	s.ln.stats.BytesIn.Add(int64(n))
	s.totals.Received.Add(int64(n))
}

func (s *session) countOut(n int) {
	s.bytesOut.Add(int64(n))
	s.ln.stats.BytesOut.Add(int64(n))
	s.totals.Sent.Add(int64(n))
}

const copyBufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// pump copies src to dst in whole reads, checking message framing on the
// way (f, onHeader) before anything is written, and counting what was
// written. It returns the first error, marked with its side.
func pump(dst io.Writer, src io.Reader, f *wire.Framer, srcSide Side, count func(int), onHeader func(byte)) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	mark, dstMark := onServer, onClient
	if srcSide == SideClient {
		mark, dstMark = onClient, onServer
	}
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if ferr := f.Scan(buf[:n], onHeader); ferr != nil {
				return mark(&protocolError{err: ferr})
			}
			w, werr := dst.Write(buf[:n])
			count(w)
			if werr != nil {
				return dstMark(werr)
			}
		}
		if err != nil {
			return mark(err)
		}
	}
}
