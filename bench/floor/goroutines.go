package main

import (
	"bufio"
	"net"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
)

// chanPool is the goroutine model: idle servers in a channel, at most
// cap(slots) of them.
type chanPool struct {
	backend    string
	idle       chan *server
	slots      chan struct{}
	statements *pooler.Registry // the goroutines-machine model's (machine.go)
}

func (p *chanPool) get(params []byte) (*server, error) {
	select {
	case s := <-p.idle:
		return s, nil
	default:
	}
	select {
	case s := <-p.idle:
		return s, nil
	case p.slots <- struct{}{}:
		s, err := dial(p.backend, params)
		if err != nil {
			<-p.slots
		}
		return s, err
	}
}

// client serves one logged-in client: each Query goes to a server taken
// for it, whose answer this goroutine copies back up to ReadyForQuery.
func (p *chanPool) client(c net.Conn, params []byte) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 8<<10)
	buf := make([]byte, 32<<10)
	for {
		m, err := wire.NextMessage(br, 1<<20)
		if err != nil || m[0] == 'X' {
			return
		}
		if m[0] != 'Q' {
			return
		}
		s, err := p.get(params)
		if err != nil {
			return
		}
		if _, err := s.conn.Write(m); err != nil {
			s.conn.Close()
			<-p.slots
			return
		}
		var f wire.Framer
		done := false
		for !done {
			n, err := s.br.Read(buf)
			if err != nil {
				s.conn.Close()
				<-p.slots
				return
			}
			f.Scan(buf[:n], nil)
			done = f.AtBoundary() && f.Last() == 'Z'
			if _, err := c.Write(buf[:n]); err != nil {
				s.conn.Close()
				<-p.slots
				return
			}
		}
		p.idle <- s
	}
}
