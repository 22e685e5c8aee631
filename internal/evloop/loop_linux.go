// Package evloop copies bytes between pairs of sockets on one epoll loop:
// no goroutine per direction, and a socket is read only when epoll says it
// is readable (level-triggered, one read per report), so a relayed round
// trip costs the four useful system calls and a share of one epoll_wait.
package evloop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Side names the end of a pair.
type Side int

const (
	A Side = iota
	B
)

// Result is why a pair ended: the side whose read or write failed (or
// saw EOF: Err is io.EOF), or Err given to Stop with Side -1.
type Result struct {
	Side Side
	Err  error
	// Read is true when the error came from reading Side (EOF included),
	// false when writing to it failed.
	Read bool
}

// Pair is two connected stream sockets whose bytes the loop copies both
// ways. The loop owns both descriptors from Add until Done delivers, and
// closes them before it does.
type Pair struct {
	FdA, FdB int
	// Scan, if set, sees each chunk read from a side before it is written
	// to the other; an error ends the pair with Result{Side: from, Read: true}.
	Scan [2]func(p []byte) error
	// Count, if set, is told how many bytes were written to the other side.
	Count [2]func(n int)
	// Done receives the pair's result once (buffered).
	Done chan Result

	ends [2]*end
}

// end is one socket of a pair.
type end struct {
	fd    int
	pair  *Pair
	side  Side
	peer  *end
	pend  []byte // bytes read from peer not yet written to this socket
	inter uint32 // epoll interest registered
	gone  bool
}

// Loop is one epoll instance and the goroutine that serves it.
type Loop struct {
	epfd, evfd int
	buf        []byte // shared read buffer: a chunk is written on before the next read

	mu      sync.Mutex
	adds    []*Pair
	stops   []stop
	closing bool

	ends map[int]*end
}

type stop struct {
	p   *Pair
	err error
}

// New creates a loop; Run serves it.
func New() (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return &Loop{epfd: epfd, evfd: evfd, buf: make([]byte, 32<<10), ends: map[int]*end{}}, nil
}

// ErrClosed ends the pairs a closing loop still holds.
var ErrClosed = errors.New("event loop closed")

// Add hands p to the loop.
func (l *Loop) Add(p *Pair) error {
	if p.Done == nil || cap(p.Done) < 1 {
		return errors.New("evloop: Pair.Done must be buffered")
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return ErrClosed
	}
	l.adds = append(l.adds, p)
	l.mu.Unlock()
	l.wake()
	return nil
}

// Stop ends p with err (Result.Side -1) unless it has ended already.
func (l *Loop) Stop(p *Pair, err error) {
	l.mu.Lock()
	l.stops = append(l.stops, stop{p, err})
	l.mu.Unlock()
	l.wake()
}

// Close ends every pair with ErrClosed and stops Run.
func (l *Loop) Close() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.wake()
}

func (l *Loop) wake() {
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:]) //nolint:errcheck // EAGAIN: a wake is already pending
}

// Run serves the loop until Close. It waits in Go's own poller (the
// epoll descriptor is itself pollable), never in a blocking epoll_wait:
// a goroutine blocked in a system call holds its P, and the runtime's
// sysmon, retaking it, wakes every 20 µs.
func (l *Loop) Run() {
	defer unix.Close(l.evfd)
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		panic(fmt.Sprintf("evloop: %v", err))
	}
	f := os.NewFile(uintptr(l.epfd), "epoll")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		panic(fmt.Sprintf("evloop: %v", err))
	}
	events := make([]unix.EpollEvent, 256)
	rc.Read(func(fd uintptr) bool { //nolint:errcheck // ends only with the loop
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				panic(fmt.Sprintf("evloop: epoll_wait: %v", err))
			}
			if n == 0 {
				return false // park until the epoll descriptor is readable
			}
			if l.dispatch(events[:n]) {
				return true
			}
		}
	})
}

// dispatch handles one batch of events; it reports whether the loop closes.
func (l *Loop) dispatch(events []unix.EpollEvent) bool {
	for i := range events {
		ev := &events[i]
		if int(ev.Fd) == l.evfd {
			if l.commands() {
				return true
			}
			continue
		}
		e := l.ends[int(ev.Fd)]
		if e == nil || e.gone {
			continue
		}
		l.ready(e, ev.Events)
	}
	return false
}

// commands takes pairs added and stopped; it reports whether the loop closes.
func (l *Loop) commands() bool {
	var b [8]byte
	unix.Read(l.evfd, b[:]) //nolint:errcheck
	l.mu.Lock()
	adds, stops, closing := l.adds, l.stops, l.closing
	l.adds, l.stops = nil, nil
	l.mu.Unlock()
	for _, p := range adds {
		l.register(p)
	}
	for _, s := range stops {
		if e := s.p.ends[0]; e != nil && !e.gone {
			l.end(s.p, Result{Side: -1, Err: s.err})
		}
	}
	if closing {
		for _, e := range l.ends {
			if !e.gone {
				l.end(e.pair, Result{Side: -1, Err: ErrClosed})
			}
		}
		return true
	}
	return false
}

func (l *Loop) register(p *Pair) {
	a := &end{fd: p.FdA, pair: p, side: A}
	b := &end{fd: p.FdB, pair: p, side: B}
	a.peer, b.peer = b, a
	p.ends = [2]*end{a, b}
	l.ends[a.fd], l.ends[b.fd] = a, b
	for _, e := range p.ends {
		e.inter = unix.EPOLLIN | unix.EPOLLRDHUP
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, e.fd, &unix.EpollEvent{Events: e.inter, Fd: int32(e.fd)}); err != nil {
			l.end(p, Result{Side: e.side, Err: fmt.Errorf("epoll_ctl: %w", err)})
			return
		}
	}
}

// ready handles epoll's report for e.
func (l *Loop) ready(e *end, events uint32) {
	if events&unix.EPOLLOUT != 0 && len(e.pend) > 0 {
		if !l.flush(e) {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && len(e.peer.pend) == 0 {
		l.read(e)
	}
}

// read reads once from e and writes what it got to its peer.
func (l *Loop) read(e *end) {
	n, err := unix.Read(e.fd, l.buf)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case err != nil:
		l.end(e.pair, Result{Side: e.side, Err: err, Read: true})
		return
	case n == 0:
		l.end(e.pair, Result{Side: e.side, Err: io.EOF, Read: true})
		return
	}
	p := l.buf[:n]
	if scan := e.pair.Scan[e.side]; scan != nil {
		if err := scan(p); err != nil {
			l.end(e.pair, Result{Side: e.side, Err: err, Read: true})
			return
		}
	}
	dst := e.peer
	w, err := write(dst.fd, p)
	if c := e.pair.Count[e.side]; c != nil && w > 0 {
		c(w)
	}
	if err != nil {
		l.end(e.pair, Result{Side: dst.side, Err: err})
		return
	}
	if w < n { // the peer's socket is full: keep the rest, stop reading e
		dst.pend = append(dst.pend[:0], p[w:]...)
		l.interest(dst)
		l.interest(e)
	}
}

// flush writes e's pending bytes; it reports whether e's pair lives on.
func (l *Loop) flush(e *end) bool {
	w, err := write(e.fd, e.pend)
	if c := e.pair.Count[e.peer.side]; c != nil && w > 0 {
		c(w)
	}
	if err != nil {
		l.end(e.pair, Result{Side: e.side, Err: err})
		return false
	}
	e.pend = e.pend[w:]
	if len(e.pend) == 0 {
		e.pend = nil
		l.interest(e)
		l.interest(e.peer)
	}
	return true
}

// interest registers what e waits for: readable unless its peer has a
// backlog, writable while it has one.
func (l *Loop) interest(e *end) {
	var want uint32
	if len(e.peer.pend) == 0 {
		want |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if len(e.pend) > 0 {
		want |= unix.EPOLLOUT
	}
	if want == e.inter {
		return
	}
	e.inter = want
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, e.fd, &unix.EpollEvent{Events: want, Fd: int32(e.fd)}); err != nil {
		l.end(e.pair, Result{Side: e.side, Err: fmt.Errorf("epoll_ctl: %w", err)})
	}
}

// write writes p to a non-blocking socket until it is all written or the
// socket is full (EAGAIN is not an error).
func write(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(fd, p[done:])
		if n > 0 {
			done += n
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return done, nil
		case err != nil:
			return done, err
		}
	}
	return done, nil
}

// end closes p's sockets and delivers r.
func (l *Loop) end(p *Pair, r Result) {
	for _, e := range p.ends {
		if e == nil || e.gone {
			continue
		}
		e.gone = true
		delete(l.ends, e.fd)
		unix.Close(e.fd) // also removes it from the epoll set
	}
	p.Done <- r
}
