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

// Moment is when a condition polled every 10 ms was first seen: the
// poll runs in a goroutine of its own until then or until Close.
type Moment struct {
	mu     sync.Mutex
	at     time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// pollFor starts polling seen every 10 ms; done, if set, runs when the
// poll ends.
func pollFor(seen func(ctx context.Context) bool, done func()) *Moment {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Moment{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if done != nil {
			defer done()
		}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			if seen(ctx) && ctx.Err() == nil {
				m.mu.Lock()
				m.at = time.Now()
				m.mu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return m
}

// At returns when the condition was first seen, zero if not yet.
func (m *Moment) At() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.at
}

// Close stops polling.
func (m *Moment) Close() { m.cancel(); <-m.done }

// Promotion is when a node was first seen out of recovery.
type Promotion = Moment

// WatchPromotion starts polling node directly, on one connection, for
// the moment it leaves recovery; Close stops it.
func WatchPromotion(node *PatroniNode) *Promotion {
	dsn := node.dsn()
	var c *pgconn.PgConn
	return pollFor(func(ctx context.Context) bool {
		if c == nil {
			c, _ = pgconn.Connect(ctx, dsn)
		}
		if c == nil {
			return false
		}
		res := c.ExecParams(ctx, "SELECT pg_is_in_recovery()", nil, nil, nil, nil).Read()
		if res.Err != nil {
			c.Close(ctx)
			c = nil
			return false
		}
		return string(res.Rows[0][0]) == "f"
	}, func() {
		if c != nil {
			c.Close(context.Background())
		}
	})
}

// Stop is when a fresh login to a node first failed: from the moment
// PostgreSQL begins to shut down it refuses logins (57P03), and it has
// told its backends to end. The recorded moment is at or after that.
type Stop = Moment

// WatchStop starts polling node with a fresh login every 10 ms; Close
// stops it.
func WatchStop(node *PatroniNode) *Stop {
	dsn := node.dsn()
	return pollFor(func(ctx context.Context) bool {
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := pgconn.Connect(lctx, dsn)
		lcancel()
		if err == nil {
			c.Close(context.Background())
			return false
		}
		return true
	}, nil)
}
