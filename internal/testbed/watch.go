package testbed

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/discovery"
)

// LeaderWatch follows Patroni's leader key with its own DCS store and
// records when each value first appeared: the clock failover is measured
// against.
type LeaderWatch struct {
	mu     sync.Mutex
	seen   map[string]time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// WatchLeader starts watching; Close stops it and closes st.
func WatchLeader(st discovery.Store) *LeaderWatch {
	ctx, cancel := context.WithCancel(context.Background())
	lw := &LeaderWatch{seen: map[string]time.Time{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		defer st.Close()
		var after uint64
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			keys, tok, err := st.Read(rctx, after, 2*time.Second)
			rcancel()
			if err != nil {
				after = 0
				continue
			}
			after = tok
			if l := string(keys["leader"]); l != "" {
				lw.mu.Lock()
				if _, ok := lw.seen[l]; !ok {
					lw.seen[l] = time.Now()
				}
				lw.mu.Unlock()
			}
		}
	}()
	return lw
}

// Forget drops what was seen, before a change to measure.
func (lw *LeaderWatch) Forget() {
	lw.mu.Lock()
	lw.seen = map[string]time.Time{}
	lw.mu.Unlock()
}

// At returns when the leader key first named name since the last Forget.
func (lw *LeaderWatch) At(name string) (time.Time, bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	t, ok := lw.seen[name]
	return t, ok
}

// Close stops the watch.
func (lw *LeaderWatch) Close() { lw.cancel(); <-lw.done }

// Promotion polls a node directly every 10 ms and records when it was
// first seen out of recovery.
type Promotion struct {
	mu     sync.Mutex
	at     time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// WatchPromotion starts polling node; Close stops it.
func WatchPromotion(node *PatroniNode) *Promotion {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Promotion{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		dsn := node.dsn()
		var c *pgconn.PgConn
		defer func() {
			if c != nil {
				c.Close(context.Background())
			}
		}()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			if c == nil {
				c, _ = pgconn.Connect(ctx, dsn)
			}
			if c != nil {
				res := c.ExecParams(ctx, "SELECT pg_is_in_recovery()", nil, nil, nil, nil).Read()
				switch {
				case res.Err != nil:
					c.Close(ctx)
					c = nil
				case string(res.Rows[0][0]) == "f":
					p.mu.Lock()
					p.at = time.Now()
					p.mu.Unlock()
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return p
}

// At returns when the node was first seen writable, zero if not yet.
func (p *Promotion) At() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at
}

// Close stops polling.
func (p *Promotion) Close() { p.cancel(); <-p.done }

// Stop polls a node with a fresh login every 10 ms and records when one
// first failed: from the moment PostgreSQL begins to shut down it refuses
// logins (57P03), and it has told its backends to end. The recorded
// moment is at or after that.
type Stop struct {
	mu     sync.Mutex
	at     time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// WatchStop starts polling node; Close stops it.
func WatchStop(node *PatroniNode) *Stop {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		dsn := node.dsn()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := pgconn.Connect(lctx, dsn)
			lcancel()
			if err == nil {
				c.Close(context.Background())
			} else if ctx.Err() == nil {
				s.mu.Lock()
				s.at = time.Now()
				s.mu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return s
}

// At returns when a login to the node first failed, zero if none has.
func (s *Stop) At() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at
}

// Close stops polling.
func (s *Stop) Close() { s.cancel(); <-s.done }
