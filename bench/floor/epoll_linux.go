package main

import (
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
)

// loop is the epoll model: every socket after login, one goroutine.
type loop struct {
	backend    string
	size       int
	epfd, evfd int
	buf        []byte
	statements *pooler.Registry // non-nil: the epoll-machine model

	mu   sync.Mutex
	adds []*end

	ends     map[int]*end
	idle     []*end // idle servers
	waitq    []*end // clients with a query waiting for a server
	nservers int
}

// end is a client or a server socket.
type end struct {
	fd       int
	isServer bool
	closed   bool
	peer     *end        // the client a server serves, or the server a client has
	pend     []byte      // a client's query waiting for a server
	params   []byte      // a client's startup parameters
	f        wire.Framer // a server's answer, to find its ReadyForQuery

	// The epoll-machine model (machine_linux.go).
	m       *pooler.Machine   // a client's
	in, out []byte            // bytes read and not yet whole messages; bytes to write
	sparams map[string]string // a server's parameters
	tag     uint64            // a server's settings fingerprint
	stmts   any               // a server's prepared statements
}

func newLoop(backend string, size int, machine bool) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		return nil, err
	}
	l := &loop{backend: backend, size: size, epfd: epfd, evfd: evfd, buf: make([]byte, 32<<10), ends: map[int]*end{}}
	if machine {
		l.statements = pooler.NewRegistry()
	}
	return l, nil
}

// detach takes c's socket out of Go's poller: a duplicate descriptor for
// the loop, the original closed.
func detach(c net.Conn) (int, error) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	c.Close()
	return fd, derr
}

// add hands a logged-in client to the loop.
func (l *loop) add(c net.Conn, params []byte) {
	fd, err := detach(c)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.adds = append(l.adds, &end{fd: fd, params: params})
	l.mu.Unlock()
	unix.Write(l.evfd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

func (l *loop) run() {
	unix.SetNonblock(l.epfd, true)
	f := os.NewFile(uintptr(l.epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		panic(err)
	}
	events := make([]unix.EpollEvent, 256)
	rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				panic(err)
			}
			if n == 0 {
				return false
			}
			for i := range events[:n] {
				l.ready(int(events[i].Fd))
			}
			// Let the scheduler run between batches: a goroutine that runs
			// for 10 ms without a break is preempted by sysmon with a
			// signal, and sysmon then polls every 20 µs.
			runtime.Gosched()
		}
	})
}

func (l *loop) ready(fd int) {
	if fd == l.evfd {
		var b [8]byte
		unix.Read(l.evfd, b[:])
		l.mu.Lock()
		adds := l.adds
		l.adds = nil
		l.mu.Unlock()
		for _, e := range adds {
			if l.statements != nil {
				l.startMachine(e)
			}
			l.register(e)
		}
		return
	}
	e := l.ends[fd]
	if e == nil || e.closed {
		return
	}
	n, err := unix.Read(fd, l.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if err != nil || n == 0 {
		l.close(e)
		return
	}
	p := l.buf[:n]
	switch {
	case l.statements != nil && e.isServer:
		e.in = append(e.in, p...)
		l.serverMessages(e)
		return
	case l.statements != nil:
		e.in = append(e.in, p...)
		l.clientMessages(e)
		return
	}
	if e.isServer {
		l.fromServer(e, p)
	} else {
		l.fromClient(e, p)
	}
}

func (l *loop) register(e *end) {
	l.ends[e.fd] = e
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, e.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(e.fd)})
}

func (l *loop) fromClient(c *end, p []byte) {
	if p[0] == 'X' {
		l.close(c)
		return
	}
	if c.peer != nil {
		l.write(c.peer, p)
		return
	}
	s := l.takeServer(c.params)
	if s == nil { // wait, and stop reading the client meanwhile
		c.pend = append(c.pend[:0], p...)
		l.waitq = append(l.waitq, c)
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: 0, Fd: int32(c.fd)})
		return
	}
	c.peer, s.peer = s, c
	l.write(s, p)
}

func (l *loop) fromServer(s *end, p []byte) {
	if s.peer != nil {
		l.write(s.peer, p)
	}
	s.f.Scan(p, nil)
	if !(s.f.AtBoundary() && s.f.Last() == 'Z') {
		return
	}
	if s.peer != nil {
		s.peer.peer = nil
		s.peer = nil
	}
	for len(l.waitq) > 0 {
		c := l.waitq[0]
		l.waitq = l.waitq[1:]
		if c.closed {
			continue
		}
		c.peer, s.peer = s, c
		l.write(s, c.pend)
		c.pend = c.pend[:0]
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)})
		return
	}
	l.idle = append(l.idle, s)
}

// takeServer returns an idle server, a new one while there are fewer than
// size, or nil.
func (l *loop) takeServer(params []byte) *end {
	for len(l.idle) > 0 {
		s := l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		if !s.closed {
			return s
		}
	}
	if l.nservers >= l.size {
		return nil
	}
	sv, err := dial(l.backend, params)
	if err != nil {
		return nil
	}
	fd, err := detach(sv.conn)
	if err != nil {
		return nil
	}
	l.nservers++
	s := &end{fd: fd, isServer: true, sparams: sv.params}
	l.register(s)
	return s
}

// write writes p whole (the toy spins on a full socket).
func (l *loop) write(e *end, p []byte) {
	for len(p) > 0 {
		n, err := unix.Write(e.fd, p)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			l.close(e)
			return
		}
		p = p[n:]
	}
}

func (l *loop) close(e *end) {
	if e.closed {
		return
	}
	e.closed = true
	delete(l.ends, e.fd)
	unix.Close(e.fd)
	if e.isServer {
		l.nservers--
	}
	if p := e.peer; p != nil { // mid-transaction: neither side can go on
		e.peer, p.peer = nil, nil
		l.close(p)
	}
}
