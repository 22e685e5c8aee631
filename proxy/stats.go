package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Counters are one listener's live counters, kept as atomics so the admin
// page and metrics can read them while sessions run.
type Counters struct {
	Starting atomic.Int64 // connections that have not sent a StartupMessage
	Active   atomic.Int64 // clients counted against max_clients
	Waiting  atomic.Int64 // pooled clients waiting for a server now
	Sessions atomic.Int64 // sessions that logged in, in total
	Refused  atomic.Int64 // connections refused by max_startups or max_clients
	Errors   atomic.Int64 // sessions Switchyard ended with an ErrorResponse
	Killed   atomic.Int64 // sessions ended by Switchyard (role change, shutdown, console)
	BytesIn  atomic.Int64 // client → server
	BytesOut atomic.Int64 // server → client
}

// Totals are pgbouncer's SHOW STATS counters for one "database": a
// relay listener, or one database of a pooled listener. Times are in
// microseconds, as pgbouncer keeps them.
type Totals struct {
	Assignments  atomic.Int64 // server checkouts (server_assignment_count)
	Xacts        atomic.Int64 // transactions ended (ReadyForQuery idle)
	Queries      atomic.Int64 // requests answered (ReadyForQuery)
	Received     atomic.Int64 // bytes from clients
	Sent         atomic.Int64 // bytes to clients
	XactTime     atomic.Int64 // µs in transactions
	QueryTime    atomic.Int64 // µs in requests
	WaitTime     atomic.Int64 // µs clients waited for a server
	ClientParses atomic.Int64 // Parse messages from clients
	ServerParses atomic.Int64 // Parse messages servers completed (Switchyard's own re-prepares too)
	Binds        atomic.Int64 // Bind messages from clients
}

// TotalsSnapshot is Totals read at one moment.
type TotalsSnapshot struct {
	Database                                                  string
	Assignments, Xacts, Queries, Received, Sent               int64
	XactTime, QueryTime, WaitTime, ClientParses, ServerParses int64
	Binds                                                     int64
}

func (t *Totals) snapshot(db string) TotalsSnapshot {
	return TotalsSnapshot{Database: db, Assignments: t.Assignments.Load(), Xacts: t.Xacts.Load(),
		Queries: t.Queries.Load(), Received: t.Received.Load(), Sent: t.Sent.Load(),
		XactTime: t.XactTime.Load(), QueryTime: t.QueryTime.Load(), WaitTime: t.WaitTime.Load(),
		ClientParses: t.ClientParses.Load(), ServerParses: t.ServerParses.Load(), Binds: t.Binds.Load()}
}

// totalsTable holds a pooled listener's Totals by database.
type totalsTable struct {
	mu sync.Mutex
	m  map[string]*Totals
}

func (t *totalsTable) get(db string) *Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*Totals{}
	}
	tt := t.m[db]
	if tt == nil {
		tt = &Totals{}
		t.m[db] = tt
	}
	return tt
}

// Observer receives, per listener, the events the metrics turn into
// histograms and labelled counters. It is called on the data path: it
// must be cheap and never block.
type Observer interface {
	Query(d time.Duration)  // a request was answered (ReadyForQuery)
	Xact(d time.Duration)   // a transaction ended
	Wait(d time.Duration)   // a client got a server after waiting d
	Error(class string)     // the client was sent an ErrorResponse of this SQLSTATE class ("" if unread)
	Ended(reason EndReason) // a session ended
}

// EndReason is a bounded name for why a session ended, for metrics.
type EndReason string

// Why sessions end.
const (
	EndClient        EndReason = "client_closed"      // the client said goodbye or went away
	EndRoleLost      EndReason = "role_lost"          // its member lost the role (Switchyard ended it)
	EndKilled        EndReason = "killed"             // shutdown or a console KILL
	EndServerLost    EndReason = "server_lost"        // the server went away
	EndServerRefused EndReason = "server_refused"     // the server refused the login or ended the session
	EndRefused       EndReason = "refused"            // Switchyard refused it (limits, auth, no server)
	EndTimeout       EndReason = "timeout"            // a startup, login or idle timeout
	EndProtocol      EndReason = "protocol_violation" // bad input
	EndCancelRequest EndReason = "cancel_request"     // a cancel request served
	EndInternal      EndReason = "internal_error"
)

type nopObserver struct{}

func (nopObserver) Query(time.Duration) {}
func (nopObserver) Xact(time.Duration)  {}
func (nopObserver) Wait(time.Duration)  {}
func (nopObserver) Error(string)        {}
func (nopObserver) Ended(EndReason)     {}

// timing measures requests and transactions from the client's side: a
// request starts with the first message after the last ReadyForQuery,
// a transaction with the first request after an idle ReadyForQuery. The
// client goroutine starts them; the server goroutine ends them.
type timing struct {
	query, xact atomic.Int64 // unix nanos of the start, 0 when none runs
	last        atomic.Int64 // unix nanos of the last request's start
}

// begin notes a client message.
func (t *timing) begin() {
	if t.query.Load() == 0 {
		now := time.Now().UnixNano()
		t.query.Store(now)
		t.last.Store(now)
		if t.xact.Load() == 0 {
			t.xact.Store(now)
		}
	}
}

// ready notes a ReadyForQuery with status and counts it into tot and obs.
func (t *timing) ready(status byte, tot *Totals, obs Observer) {
	now := time.Now().UnixNano()
	tot.Queries.Add(1)
	if start := t.query.Swap(0); start != 0 {
		d := time.Duration(now - start)
		tot.QueryTime.Add(d.Microseconds())
		obs.Query(d)
	}
	if status != 'I' {
		return
	}
	tot.Xacts.Add(1)
	if start := t.xact.Swap(0); start != 0 {
		d := time.Duration(now - start)
		tot.XactTime.Add(d.Microseconds())
		obs.Xact(d)
	}
}
