package main

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
)

// The epoll-machine model: the epoll loop, with Switchyard's pooled-client
// state machine (proxy/pooler, transaction mode, statements tracked)
// deciding what each message does — the event-loop driver behind the same
// machine that issue 11 asks to prototype. Whole messages are fed to the
// machine as they are complete in a socket's buffer; what it forwards is
// written once per readiness report.

// startMachine gives a client its machine, as a pooled login does.
func (l *loop) startMachine(c *end) {
	settings, _ := pooler.StartupSettings(startupParams(c.params))
	want := make(map[string]string, len(settings))
	for k, v := range settings {
		want[k] = v
	}
	c.m = pooler.New(pooler.Transaction, want)
	c.m.Startup(settings)
	c.m.TrackStatements(l.statements, maxStatements)
}

// message returns the whole message at the start of in, or nil; bad
// reports a length no message can have.
func message(in []byte) (msg []byte, bad bool) {
	if len(in) < 5 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(in[1:5]))
	if n < 4 || n > wire.MaxMessageLen {
		return nil, true
	}
	if len(in) < n+1 {
		return nil, false
	}
	return in[:n+1], false
}

// clientMessages feeds c's complete messages to its machine until they
// run out, the client leaves, or it must wait for a server.
func (l *loop) clientMessages(c *end) {
	in := c.in
	defer func() {
		if !c.closed {
			c.in = c.in[:copy(c.in, in)]
		}
	}()
	for {
		msg, bad := message(in)
		if bad {
			l.close(c)
			return
		}
		if msg == nil {
			break
		}
		st := c.m.Client(msg)
		if st.Need {
			s := l.takeServer(c.params)
			if s == nil { // wait, and stop reading the client meanwhile
				l.waitq = append(l.waitq, c)
				unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: 0, Fd: int32(c.fd)})
				break
			}
			c.peer, s.peer = s, c
			s.out = append(s.out, c.m.Attach(s.sparams, &s.tag, &s.stmts)...)
			st = c.m.Client(msg)
		}
		switch {
		case st.Terminate:
			l.flush(c.peer)
			l.close(c)
			return
		case st.Reply != nil:
			c.out = append(c.out, st.Reply...)
		case st.Forward && st.Send != nil:
			c.peer.out = append(c.peer.out, st.Send...)
		case st.Forward:
			c.peer.out = append(c.peer.out, msg...)
		}
		in = in[len(msg):]
	}
	l.flush(c.peer)
	l.flush(c)
}

// serverMessages feeds s's complete messages to its client's machine and
// forwards what it says; a released server goes to the next waiting
// client or back to the idle list.
func (l *loop) serverMessages(s *end) {
	c := s.peer
	in := s.in
	released := false
	for !released {
		msg, bad := message(in)
		if bad {
			l.close(s)
			return
		}
		if msg == nil {
			break
		}
		in = in[len(msg):]
		if c == nil { // nobody to tell (a notice between transactions)
			continue
		}
		st := c.m.Server(msg, s.sparams)
		if st.Fatal {
			l.close(s)
			return
		}
		c.out = append(c.out, st.Before...)
		switch {
		case !st.Forward:
		case st.Send != nil:
			c.out = append(c.out, st.Send...)
		default:
			c.out = append(c.out, msg...)
		}
		c.out = append(c.out, st.After...)
		released = st.Release
	}
	s.in = s.in[:copy(s.in, in)]
	if c != nil {
		l.flush(c)
	}
	if !released {
		return
	}
	c.peer, s.peer = nil, nil
	for len(l.waitq) > 0 {
		w := l.waitq[0]
		l.waitq = l.waitq[1:]
		if w.closed {
			continue
		}
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, w.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(w.fd)})
		l.idle = append(l.idle, s)
		l.clientMessages(w)
		return
	}
	l.idle = append(l.idle, s)
}

// flush writes what is buffered for e.
func (l *loop) flush(e *end) {
	if e == nil || e.closed || len(e.out) == 0 {
		return
	}
	out := e.out
	e.out = e.out[:0]
	l.write(e, out)
}
