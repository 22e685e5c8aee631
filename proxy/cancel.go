package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/pool"
)

// cancelKey is a BackendKeyData pair.
type cancelKey struct {
	pid    uint32
	secret string // 4 bytes in protocol 3.0; up to 256 in 3.2
}

// cancelTarget is where a client's cancel must go: the backend that runs
// its queries and that backend's own key.
type cancelTarget struct {
	addr string
	key  cancelKey
}

// cancelMap hands clients Switchyard's own cancel keys and remembers which
// backend each one stands for, so a CancelRequest arriving on any listener
// reaches the right node.
type cancelMap struct {
	mu sync.Mutex
	m  map[cancelKey]cancelTarget
}

// register stores t under a new random key and returns the key.
func (c *cancelMap) register(t cancelTarget) cancelKey {
	var b [8]byte
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[cancelKey]cancelTarget{}
	}
	for {
		rand.Read(b[:]) // never fails (crypto/rand contract)
		k := cancelKey{pid: binary.BigEndian.Uint32(b[:4]) & 0x7fffffff, secret: string(b[4:])}
		if _, taken := c.m[k]; !taken && k.pid != 0 {
			c.m[k] = t
			return k
		}
	}
}

func (c *cancelMap) remove(k cancelKey) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *cancelMap) lookup(k cancelKey) (cancelTarget, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[k]
	return t, ok
}

// sendCancel delivers a CancelRequest for t on a fresh plain connection,
// as libpq does, and waits for the server to close it, all within the
// dialer's connect timeout.
func sendCancel(ctx context.Context, d *pool.Dialer, t cancelTarget) error {
	ctx, cancel := context.WithTimeout(ctx, d.ConnectTimeout())
	defer cancel()
	conn, err := d.DialPlain(ctx, t.addr)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", t.addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg, err := (&pgproto3.CancelRequest{ProcessID: t.key.pid, SecretKey: []byte(t.key.secret)}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("sending cancel to %s: %w", t.addr, err)
	}
	// The server answers nothing and closes once the signal is sent.
	_, err = io.Copy(io.Discard, conn)
	return err
}
