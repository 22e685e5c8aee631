// Command floor is a minimal transaction pooler for pgbench -S (trust
// auth), in four models, to measure what a transaction pooler written in
// Go costs at the least — the floor under Switchyard's pooled path — for
// issue 11's event-loop experiment:
//
//   - -model goroutines: one goroutine per client reads its query, takes an
//     idle server from a channel, writes the query, reads the answer up to
//     ReadyForQuery itself and hands the server back (simple query only);
//   - -model epoll: after the login, every client and server socket sits in
//     one level-triggered epoll set served by one goroutine (which waits in
//     Go's poller on the epoll descriptor), one read per readiness report;
//   - -model goroutines-machine and epoll-machine: the same two I/O models
//     with Switchyard's own pooled-client state machine (proxy/pooler,
//     transaction mode, prepared statements tracked) deciding what every
//     message does, so -M extended and -M prepared work too, and the two
//     differ only in the I/O driver.
//
// It takes the listener's and the member's address from a Switchyard
// configuration file (-config), so the benches can run it in place of
// Switchyard (bench/syscalls -variant). Not a product: no authentication,
// no TLS, no cancel, no pool limits beyond default_pool_size, no
// pipelining or COPY in goroutines-machine, and a client or server that
// misbehaves is closed.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
)

func main() {
	path := flag.String("config", "switchyard.toml", "Switchyard configuration: [[listener]] address, the first member's address, [pool] default_pool_size")
	model := flag.String("model", "goroutines", "goroutines | epoll | goroutines-machine | epoll-machine")
	flag.Parse()
	var cfg struct {
		Listener []struct{ Address string }
		Cluster  struct {
			Static struct{ Members []struct{ Address string } }
		}
		Pool struct {
			DefaultPoolSize int `toml:"default_pool_size"`
		}
	}
	if _, err := toml.DecodeFile(*path, &cfg); err != nil || len(cfg.Listener) == 0 || len(cfg.Cluster.Static.Members) == 0 {
		fmt.Fprintln(os.Stderr, "floor: config:", err)
		os.Exit(2)
	}
	size := cfg.Pool.DefaultPoolSize
	if size <= 0 {
		size = 20
	}
	ln, err := net.Listen("tcp", cfg.Listener[0].Address)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	backend := cfg.Cluster.Static.Members[0].Address
	var serve func(c net.Conn, params []byte)
	switch *model {
	case "goroutines":
		p := &chanPool{backend: backend, idle: make(chan *server, size), slots: make(chan struct{}, size)}
		serve = p.client
	case "goroutines-machine":
		p := &chanPool{backend: backend, idle: make(chan *server, size), slots: make(chan struct{}, size),
			statements: pooler.NewRegistry()}
		serve = p.machineClient
	case "epoll", "epoll-machine":
		l, err := newLoop(backend, size, *model == "epoll-machine")
		if err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		go l.run()
		serve = l.add
	default:
		fmt.Fprintln(os.Stderr, "floor: unknown -model", *model)
		os.Exit(2)
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		os.Exit(0)
	}()
	fmt.Fprintln(os.Stderr, "floor: listening on", ln.Addr(), "model", *model)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			params, err := login(c)
			if err != nil {
				c.Close()
				return
			}
			serve(c, params)
		}()
	}
}

// login answers the client's startup (an SSLRequest with 'N') as a server
// with trust authentication and returns the startup's parameters.
func login(c net.Conn) ([]byte, error) {
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < 8 || n > 10000 {
			return nil, errors.New("bad startup length")
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(c, body); err != nil {
			return nil, err
		}
		switch binary.BigEndian.Uint32(hdr[4:]) {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil, err
			}
			continue
		case 196608:
		default:
			return nil, errors.New("unsupported startup")
		}
		var out []byte
		out = append(out, 'R', 0, 0, 0, 8, 0, 0, 0, 0)
		for _, kv := range [][2]string{{"server_version", "15"}, {"client_encoding", "UTF8"},
			{"standard_conforming_strings", "on"}, {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}} {
			out = append(out, 'S', 0, 0, 0, byte(4+len(kv[0])+1+len(kv[1])+1))
			out = append(append(append(append(out, kv[0]...), 0), kv[1]...), 0)
		}
		out = append(out, 'K', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 1, 'Z', 0, 0, 0, 5, 'I')
		_, err := c.Write(out)
		return body, err
	}
}

// server is one logged-in server connection.
type server struct {
	conn   net.Conn
	br     *bufio.Reader
	params map[string]string // from its ParameterStatus messages
	tag    uint64            // the machine models': its settings fingerprint
	stmts  any               // ... and its prepared statements
}

// dial opens a server connection and logs in with the client's startup
// parameters (trust), reading up to its first ReadyForQuery.
func dial(backend string, params []byte) (*server, error) {
	c, err := net.Dial("tcp", backend)
	if err != nil {
		return nil, err
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	msg = binary.BigEndian.AppendUint32(msg, 196608)
	if _, err := c.Write(append(msg, params...)); err != nil {
		c.Close()
		return nil, err
	}
	s := &server{conn: c, br: bufio.NewReaderSize(c, 32<<10), params: map[string]string{}}
	for {
		m, err := wire.NextMessage(s.br, 1<<20)
		if err != nil || m[0] == 'E' {
			c.Close()
			return nil, fmt.Errorf("server login failed: %v", err)
		}
		switch m[0] {
		case 'S':
			if k, rest, ok := cutZero(m[5:]); ok {
				v, _, _ := cutZero(rest)
				s.params[k] = v
			}
		case 'Z':
			return s, nil
		}
	}
}

// startupParams decodes a startup packet's parameters (name, value, ...,
// a final NUL).
func startupParams(b []byte) map[string]string {
	params := map[string]string{}
	for {
		k, rest, ok := cutZero(b)
		if !ok || k == "" {
			return params
		}
		v, rest, ok := cutZero(rest)
		if !ok {
			return params
		}
		params[k] = v
		b = rest
	}
}

func cutZero(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
