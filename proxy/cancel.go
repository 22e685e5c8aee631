package proxy

import (
	"crypto/rand"
	"sync"

	"github.com/switchyard-proxy/switchyard/pool"
)

// cancelTarget is where a client's cancel must go: the server running its
// queries, and that server's own key.
type cancelTarget struct {
	addr string
	key  pool.Key
	// current, when set, names the server of the moment instead: a
	// transaction-pooled client has none between transactions.
	current func() (addr string, key pool.Key, ok bool)
}

// resolve is where a cancel for t must go now.
func (t cancelTarget) resolve() (string, pool.Key, bool) {
	if t.current != nil {
		return t.current()
	}
	return t.addr, t.key, true
}

// cancelMap remembers, for every key handed to a client, which server it
// stands for, so that a CancelRequest arriving on any listener reaches
// the right node. A client's key carries its server's real process ID
// (pg_terminate_backend and NOTIFY senders then match what the client
// was told) and a secret of Switchyard's own: the server's secret never
// leaves Switchyard, and a client can only cancel through it.
type cancelMap struct {
	mu sync.Mutex
	m  map[pool.Key]cancelTarget
}

// register hands out the client key for t: t's process ID and a new
// random secret as long as t's (4 bytes in protocol 3.0, up to 256 in
// 3.2), unique among the keys in use.
func (c *cancelMap) register(t cancelTarget) pool.Key {
	b := make([]byte, max(4, len(t.key.Secret)))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[pool.Key]cancelTarget{}
	}
	for {
		rand.Read(b) // never fails (crypto/rand contract)
		k := pool.Key{PID: t.key.PID, Secret: string(b)}
		if _, taken := c.m[k]; !taken {
			c.m[k] = t
			return k
		}
	}
}

func (c *cancelMap) remove(k pool.Key) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *cancelMap) lookup(k pool.Key) (cancelTarget, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[k]
	return t, ok
}
