package proxy

import "sync/atomic"

// Counters are one listener's live counters, kept as atomics so the admin
// page and metrics can read them while sessions run.
type Counters struct {
	Starting atomic.Int64 // connections that have not sent a StartupMessage
	Active   atomic.Int64 // clients counted against max_clients
	Sessions atomic.Int64 // sessions that logged in to a server, in total
	Refused  atomic.Int64 // connections refused by max_startups or max_clients
	Errors   atomic.Int64 // sessions Switchyard ended with an ErrorResponse
	Killed   atomic.Int64 // sessions ended by Switchyard (role change, shutdown)
	BytesIn  atomic.Int64 // relayed client → server
	BytesOut atomic.Int64 // relayed server → client
}
