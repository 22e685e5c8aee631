package main

import (
	"bufio"
	"net"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
)

// The goroutines-machine model: the goroutine model with Switchyard's
// pooled-client state machine deciding what each message does, so that
// against epoll-machine only the I/O driver differs. Requests are served
// one at a time: after a flush point the client's goroutine reads the
// server's answer itself until the machine owes the client nothing (no
// pipelining, no COPY; pgbench needs neither).

// maxStatements is max_prepared_statements' default.
const maxStatements = 200

// machineClient serves one logged-in client.
func (p *chanPool) machineClient(c net.Conn, params []byte) {
	defer c.Close()
	settings, _ := pooler.StartupSettings(startupParams(params))
	want := make(map[string]string, len(settings))
	for k, v := range settings {
		want[k] = v
	}
	m := pooler.New(pooler.Transaction, want)
	m.Startup(settings)
	m.TrackStatements(p.statements, maxStatements)
	defer m.Close()
	br := bufio.NewReaderSize(c, 8<<10)
	var s *server
	var toServer, toClient []byte
	fail := func() {
		if s != nil {
			s.conn.Close()
			<-p.slots
		}
	}
	for {
		msg, err := wire.NextMessage(br, wire.MaxMessageLen)
		if err != nil {
			fail()
			return
		}
		st := m.Client(msg)
		if st.Need {
			if s, err = p.get(params); err != nil {
				return
			}
			toServer = append(toServer, m.Attach(s.params, &s.tag, &s.stmts)...)
			st = m.Client(msg)
		}
		switch {
		case st.Terminate:
			if s != nil {
				p.idle <- s
			}
			return
		case st.Reply != nil:
			toClient = append(toClient, st.Reply...)
		case st.Forward && st.Send != nil:
			toServer = append(toServer, st.Send...)
		case st.Forward:
			toServer = append(toServer, msg...)
		}
		if br.Buffered() > 0 && !st.Flush {
			continue
		}
		if len(toServer) > 0 {
			if _, err := s.conn.Write(toServer); err != nil {
				fail()
				return
			}
			toServer = toServer[:0]
		}
		released := false
		for s != nil && m.Busy() && !released {
			msg, err := wire.NextMessage(s.br, wire.MaxMessageLen)
			if err != nil {
				fail()
				return
			}
			st := m.Server(msg, s.params)
			toClient = append(toClient, st.Before...)
			switch {
			case !st.Forward:
			case st.Send != nil:
				toClient = append(toClient, st.Send...)
			default:
				toClient = append(toClient, msg...)
			}
			toClient = append(toClient, st.After...)
			released = st.Release
		}
		if released {
			p.idle <- s
			s = nil
		}
		if len(toClient) > 0 {
			if _, err := c.Write(toClient); err != nil {
				fail()
				return
			}
			toClient = toClient[:0]
		}
	}
}
