package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/switchyard-proxy/switchyard/internal/evloop"
	"github.com/switchyard-proxy/switchyard/internal/wire"
	"golang.org/x/sys/unix"
)

// EXPERIMENT (issue 11): SWITCHYARD_EVLOOP=1 relays plain TCP sessions on
// one epoll loop instead of two goroutines.
var (
	loopOnce sync.Once
	theLoop  *evloop.Loop
)

func experimentLoop() *evloop.Loop {
	loopOnce.Do(func() {
		if os.Getenv("SWITCHYARD_EVLOOP") == "" {
			return
		}
		l, err := evloop.New()
		if err != nil {
			return
		}
		theLoop = l
		go l.Run()
	})
	return theLoop
}

func dupFd(c net.Conn) (int, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return -1, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1, false
	}
	nfd := -1
	if err := rc.Control(func(fd uintptr) {
		nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || nfd < 0 {
		return -1, false
	}
	return nfd, true
}

// relayLoop is relay on the event loop; ok is false when the session's
// connections cannot go there (TLS, bytes already buffered).
func (s *session) relayLoop(ctx context.Context) (error, bool) {
	l := experimentLoop()
	if l == nil || s.cr.Buffered() > 0 || s.server.R.Buffered() > 0 {
		return nil, false
	}
	if err := s.cw.flush(); err != nil {
		return onClient(err), true
	}
	cfd, ok := dupFd(s.client)
	if !ok {
		return nil, false
	}
	sfd, ok := dupFd(s.server.Conn)
	if !ok {
		unix.Close(cfd)
		return nil, false
	}
	// The originals leave Go's poller; the loop owns the duplicates.
	s.client.Close()
	s.server.Conn.Close()

	var terminated atomic.Bool
	var fin wire.Framer
	fout := wire.Framer{Ready: func(status byte) { s.timing.ready(status, s.totals, s.ln.obs) }}
	p := &evloop.Pair{FdA: cfd, FdB: sfd, Done: make(chan evloop.Result, 1)}
	p.Scan[evloop.A] = func(b []byte) error {
		return fin.Scan(b, func(t byte) {
			switch t {
			case 'X':
				terminated.Store(true)
				return
			case 'Q', 'S', 'F':
				s.pending.Add(1)
			case 'P':
				s.totals.ClientParses.Add(1)
			case 'B':
				s.totals.Binds.Add(1)
			}
			s.timing.begin()
		})
	}
	p.Scan[evloop.B] = func(b []byte) error {
		return fout.Scan(b, func(t byte) {
			switch t {
			case 'Z':
				s.pending.Add(-1)
			case '1':
				s.totals.ServerParses.Add(1)
			case 'E':
				s.ln.obs.Error("")
			}
		})
	}
	p.Count[evloop.A] = s.countIn
	p.Count[evloop.B] = s.countOut
	if err := l.Add(p); err != nil {
		return onServer(err), true
	}
	var r evloop.Result
	select {
	case r = <-p.Done:
	case <-ctx.Done():
		l.Stop(p, context.Cause(ctx))
		r = <-p.Done
	}
	switch {
	case r.Side == -1:
		return r.Err, true
	case r.Side == evloop.B && r.Read && errors.Is(r.Err, io.EOF) && (terminated.Load() || fout.Last() == 'E'):
		return nil, true
	case r.Side == evloop.A && r.Read && errors.Is(r.Err, io.EOF):
		return onClient(r.Err), true
	case r.Side == evloop.A:
		return onClient(&clientError{Code: codeProtocolViolation, Message: "invalid message from client: " + r.Err.Error(), cause: r.Err}), true
	}
	return onServer(&clientError{Code: codeConnectionFailure, cause: r.Err, Message: "connection to server " + s.backend.Name + " was lost; reconnect to continue"}), true
}
