package testbed

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Forwarder is a TCP forwarder on loopback in front of a server: a test
// can make the server unreachable for new connections (a failing health
// check) while the connections already made carry on.
type Forwarder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// Forward starts a forwarder to target; it ends with the test.
func Forward(t testing.TB, target string) *Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{ln: ln, target: target}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.Close)
	return f
}

// Addr is where to connect.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, s)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.copy(s, c)
		go f.copy(c, s)
	}
}

func (f *Forwarder) copy(dst, src net.Conn) {
	defer f.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// StopAccepting closes the listening socket: new connections are
// refused, established ones go on.
func (f *Forwarder) StopAccepting() { f.ln.Close() }

// Close ends everything.
func (f *Forwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
