package pool_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/pool"
)

// fakePG opens in-memory servers over net.Pipe. Each answers like an idle
// PostgreSQL (CommandComplete, ReadyForQuery 'I') through a real
// pgproto3.Backend, and ends at Terminate or when killed.
type fakePG struct {
	mu     sync.Mutex
	opens  int                 // Opener calls
	fail   error               // returned by the next opens while set
	gate   chan struct{}       // when set, each open takes a token first
	server map[uint32]net.Conn // by PID, the live servers' ends
	wg     sync.WaitGroup
}

func newFake(t *testing.T) *fakePG {
	f := &fakePG{server: map[uint32]net.Conn{}}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { f.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("%d fake servers still open: a server was neither put nor closed", f.live())
			f.mu.Lock()
			for _, c := range f.server {
				c.Close()
			}
			f.mu.Unlock()
			<-done
		}
	})
	return f
}

func (f *fakePG) open(ctx context.Context, id pool.ID, addr string) (*pool.Conn, error) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if f.fail != nil {
		return nil, f.fail
	}
	client, server := net.Pipe()
	pid := uint32(f.opens)
	f.server[pid] = server
	f.wg.Go(func() { f.serve(pid, server) })
	c := pool.NewConn(client, id.Member, addr)
	c.Key = pool.Key{PID: pid, Secret: "abcd"}
	return c, nil
}

func (f *fakePG) serve(pid uint32, conn net.Conn) {
	defer func() {
		conn.Close()
		f.mu.Lock()
		delete(f.server, pid)
		f.mu.Unlock()
	}()
	be := pgproto3.NewBackend(conn, conn)
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		switch msg.(type) {
		case *pgproto3.Query:
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Sync:
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			return
		default:
			continue
		}
		if be.Flush() != nil {
			return
		}
	}
}

// kill closes a server's end, as a backend that was terminated does.
func (f *fakePG) kill(pid uint32) {
	f.mu.Lock()
	c := f.server[pid]
	f.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (f *fakePG) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.server)
}

func (f *fakePG) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens
}

func (f *fakePG) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}
