package proxy

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// maxMessageLen bounds one protocol message after startup. PostgreSQL
// itself refuses most messages over 1 GB.
const maxMessageLen = 1 << 30

// framer follows message boundaries in a byte stream without copying it:
// it reads the 5-byte headers (type, length) and skips bodies. A relay
// forwards whole reads and still always knows whether the peer has been
// sent a whole number of messages, which is when an ErrorResponse may be
// injected.
type framer struct {
	remaining int     // body bytes of the current message not yet seen
	hdr       [5]byte // partial header
	hdrN      int
	last      byte // type of the last message whose header was seen
}

// scan advances over p. It fails on a length no PostgreSQL peer sends.
func (f *framer) scan(p []byte, onHeader func(typ byte)) error {
	for len(p) > 0 {
		if f.remaining > 0 {
			n := min(f.remaining, len(p))
			f.remaining -= n
			p = p[n:]
			continue
		}
		n := copy(f.hdr[f.hdrN:], p)
		f.hdrN += n
		p = p[n:]
		if f.hdrN < 5 {
			return nil
		}
		length := int(binary.BigEndian.Uint32(f.hdr[1:]))
		if length < 4 || length > maxMessageLen {
			return fmt.Errorf("message %q has invalid length %d", f.hdr[0], length)
		}
		f.last = f.hdr[0]
		f.hdrN = 0
		f.remaining = length - 4
		if onHeader != nil {
			onHeader(f.last)
		}
	}
	return nil
}

// atBoundary reports whether everything scanned ends with a whole message.
func (f *framer) atBoundary() bool { return f.remaining == 0 && f.hdrN == 0 }

const copyBufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// pump copies src to dst in whole reads while framing them. It returns the
// bytes written and the first error, marked with its side.
func pump(dst io.Writer, src io.Reader, f *framer, srcSide Side, onHeader func(byte)) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	mark := onServer
	dstMark := onClient
	if srcSide == SideClient {
		mark, dstMark = onClient, onServer
	}
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if ferr := f.scan(buf[:n], onHeader); ferr != nil {
				return total, mark(&protocolError{err: ferr})
			}
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, dstMark(werr)
			}
		}
		if err != nil {
			return total, mark(err)
		}
	}
}

// protocolError is a peer sending something that is not pgwire.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "protocol violation: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }
