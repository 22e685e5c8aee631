package pool

import (
	"context"
	"log/slog"
	"time"
)

// ID identifies a pool: the server connections of one member for one
// database and user.
type ID struct{ Member, Database, User string }

// Options are pgbouncer's pool settings, under pgbouncer's names. The zero
// value is a usable pool of 20 per ID with no other limit.
type Options struct {
	Size           int           // default_pool_size: servers per ID (20 if 0)
	MinSize        int           // min_pool_size: kept open, for pools used at least once
	ReserveSize    int           // reserve_pool_size: more servers for a pool whose waiter waited ReserveTimeout
	ReserveTimeout time.Duration // reserve_pool_timeout (5 s if 0)
	MaxDBConns     int           // max_db_connections: per member and database, across users; 0 = no limit
	MaxUserConns   int           // max_user_connections: per member and user, across databases; 0 = no limit
	IdleTimeout    time.Duration // server_idle_timeout: close servers idle longer (0 = never)
	Lifetime       time.Duration // server_lifetime: close servers older, when idle or at Put (0 = never)
	// LoginRetry is server_login_retry: after the server rejected a login
	// (a ServerError other than 57P03, 57P01 or class 08), new opens for
	// that ID fail at once with the same error for this long. Network
	// errors are returned and not remembered.
	LoginRetry time.Duration
	// QueryWaitTimeout is query_wait_timeout: how long Get waits for a
	// server (0 = no limit) before it returns *ExhaustedError.
	QueryWaitTimeout time.Duration
	// CheckDelay is server_check_delay: a server idle longer is checked
	// with CheckQuery before it is handed out (0 = every time). Whatever
	// it is, an idle server's socket is checked (a non-blocking peek: open,
	// nothing unsolicited on it) every time; a dead server is closed and
	// another one used.
	CheckDelay time.Duration
	// CheckQuery is server_check_query; "" = the socket check alone.
	CheckQuery string
	// ResetQuery is server_reset_query, run by Put(sv, Reset).
	ResetQuery string
	Logger     *slog.Logger
}

// Defaults of pgbouncer's.
const (
	defaultSize           = 20
	defaultReserveTimeout = 5 * time.Second
	resetTimeout          = 10 * time.Second // bounds the reset query in Put
)

func (o *Options) size() int {
	if o.Size > 0 {
		return o.Size
	}
	return defaultSize
}

func (o *Options) reserveTimeout() time.Duration {
	if o.ReserveTimeout > 0 {
		return o.ReserveTimeout
	}
	return defaultReserveTimeout
}

// Opener opens and logs in a new server connection for id at addr: dial
// and Login, with whatever credentials and timeouts the caller has.
type Opener func(ctx context.Context, id ID, addr string) (*Conn, error)

// Release says in what state Put gets a server back.
type Release uint8

const (
	Idle  Release = iota // clean: reuse it as it is
	Reset                // run the reset query, then reuse it
	Close                // dirty or broken: close it
)

// Stats describe one pool, as pgbouncer's SHOW POOLS does.
type Stats struct {
	ID      ID
	Addr    string
	Active  int           // checked out
	Idle    int           // ready for reuse
	Login   int           // being opened
	Closing int           // being closed (they still count against the limits)
	Waiting int           // Gets waiting
	MaxWait time.Duration // how long the oldest waiter has waited
	Opened  uint64        // servers opened, ever
	Closed  uint64        // servers closed, ever
}

// pool is the bookkeeping of one ID, under the Set's lock. Every server
// of it is in exactly one of idle, busy, opening and closing; total is
// their sum, and is what the limits count.
type pool struct {
	id      ID
	addr    string
	idle    []*Server // least recently used first; reuse takes the last
	busy    map[*Server]struct{}
	opening int
	closing int
	total   int
	waiters []*waiter // FIFO
	used    bool      // a Get came since the last Drain: min_pool_size applies

	gen    uint64 // moves on at Drain and Close: opens under an older one are discarded
	reconn uint64 // moves on at Reconnect: opens under an older one close at Put

	loginErr   error // the last rejected login, for server_login_retry
	loginUntil time.Time
	failLogged time.Time // when a failed open was last logged

	opened, closed uint64
}

func (p *pool) loginFailing(now time.Time) bool {
	return p.loginErr != nil && now.Before(p.loginUntil)
}

// waiter is one Get in a pool's queue.
type waiter struct {
	p       *pool
	since   time.Time
	reserve bool       // waited reserve_pool_timeout: the reserve is open to it
	done    chan grant // buffered, so handing over never blocks
}

// grant is what a waiter is handed: an idle server, a slot to open one
// in (counted already), or an error.
type grant struct {
	sv          *Server
	p           *pool // with open
	open        bool
	gen, reconn uint64
	err         error
}
