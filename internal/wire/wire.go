// Package wire reads and follows PostgreSQL protocol messages without
// interpreting them: whole messages with a bounded length, and message
// boundaries in a byte stream that is forwarded as it comes.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxMessageLen bounds one protocol message after startup. PostgreSQL
// itself refuses most messages over 1 GB.
const MaxMessageLen = 1 << 30

// ReadMessage reads one typed message (type, length, body) of at most max
// bytes and returns it whole, in a fresh slice. A stream that ends inside
// a message gives io.ErrUnexpectedEOF.
func ReadMessage(r *bufio.Reader, max int) ([]byte, error) {
	n, err := messageLen(r, max)
	if err != nil {
		return nil, err
	}
	return readFresh(r, n)
}

// NextMessage is ReadMessage without the copy: a message that fits in
// r's buffer is returned in place, valid only until r's next read. Only
// a larger one is read into a fresh slice.
func NextMessage(r *bufio.Reader, max int) ([]byte, error) {
	n, err := messageLen(r, max)
	if err != nil {
		return nil, err
	}
	if n > r.Size() {
		return readFresh(r, n)
	}
	msg, err := r.Peek(n)
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	r.Discard(n)
	return msg, nil
}

// messageLen peeks at the next message's header and returns its whole
// length, type byte included.
func messageLen(r *bufio.Reader, max int) (int, error) {
	hdr, err := r.Peek(5)
	if err != nil {
		if len(hdr) > 0 {
			err = unexpectedEOF(err)
		}
		return 0, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n+1 > max {
		return 0, fmt.Errorf("message %q has invalid length %d", hdr[0], n)
	}
	return n + 1, nil
}

func readFresh(r *bufio.Reader, n int) ([]byte, error) {
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, unexpectedEOF(err)
	}
	return msg, nil
}

// unexpectedEOF: a stream that ends inside a message is cut short.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Framer follows message boundaries in a byte stream without copying it:
// it reads the 5-byte headers (type, length) and skips bodies.
type Framer struct {
	// Ready, if set, is called with the status byte of each
	// ReadyForQuery ('I', 'T' or 'E') as it is scanned.
	Ready func(status byte)

	remaining int     // body bytes of the current message not yet seen
	hdr       [5]byte // partial header
	hdrN      int
	last      byte // type of the last message whose header was seen
}

// Scan advances over p, calling onHeader (if not nil) with the type of
// each message whose header completes. It fails on a length no
// PostgreSQL peer sends.
func (f *Framer) Scan(p []byte, onHeader func(typ byte)) error {
	for len(p) > 0 {
		if f.remaining > 0 {
			if f.last == 'Z' && f.remaining == 1 && f.Ready != nil {
				f.Ready(p[0])
			}
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
		if length < 4 || length > MaxMessageLen {
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

// AtBoundary reports whether everything scanned ends with a whole message.
func (f *Framer) AtBoundary() bool { return f.remaining == 0 && f.hdrN == 0 }

// Last is the type of the last message whose header was scanned.
func (f *Framer) Last() byte { return f.last }
