package proxy

import (
	"fmt"
	"syscall"
)

// fdReserve is what Switchyard keeps for everything but client sessions:
// listeners, health checks, discovery clients, cancel requests, logs.
const fdReserve = 64

// Demand is what a configuration asks of the open-file limit.
type Demand struct {
	MaxClients, MaxStartups int // limits.max_clients, limits.max_startups
	// PerClient is the descriptors an admitted client holds: 2 when a
	// relay listener may serve it (its own and its server's), 1 when
	// every listener pools (its server is counted in Servers).
	PerClient int
	// Servers is the pooled server connections to allow for: each pooled
	// listener's default_pool_size + reserve_pool_size, once. A listener
	// whose clients use several members, databases or users opens more
	// pools; a server that cannot get a descriptor fails that request
	// only, the client keeps its connection.
	Servers int
}

// Budget is what the open-file limit allows of a Demand. A connection
// still in startup holds one descriptor.
type Budget struct {
	Limit       uint64 // RLIMIT_NOFILE (soft; Go raises it to the hard limit at start)
	MaxClients  int    // what may be admitted: the configured value or less
	MaxStartups int
	PerClient   int
	Need        int  // descriptors the configured limits need
	Capped      bool // the limit forced a value below the configured one
}

// FitDescriptors checks d's max_clients and max_startups against the
// process's open-file limit and lowers them to what it allows, so that
// running out of descriptors refuses new clients (53300, or a closed
// connection) and never fails a health check or a live session. Run it
// at start, and again on every reload: the limit may have been changed on
// the running process (prlimit), and added listeners take descriptors
// (a relay listener doubles what a client holds). The limits a proxy
// admits are fixed when it is built, so a reload only says what the
// limit allows now (internal/app does both).
func FitDescriptors(d Demand) (Budget, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return Budget{MaxClients: d.MaxClients, MaxStartups: d.MaxStartups, PerClient: d.PerClient},
			fmt.Errorf("reading the open-file limit: %w", err)
	}
	return fitDescriptors(rl.Cur, d), nil
}

func fitDescriptors(limit uint64, d Demand) Budget {
	per := max(d.PerClient, 1)
	b := Budget{Limit: limit, MaxClients: d.MaxClients, MaxStartups: d.MaxStartups, PerClient: per,
		Need: per*d.MaxClients + d.MaxStartups + d.Servers + fdReserve}
	if limit >= 1<<31 || uint64(b.Need) <= limit {
		return b
	}
	b.Capped = true
	avail := max(int(limit)-fdReserve-d.Servers, 8)
	b.MaxStartups = max(1, min(d.MaxStartups, avail/4)) // at most a quarter for connections in startup
	b.MaxClients = max(1, min(d.MaxClients, (avail-b.MaxStartups)/per))
	return b
}

// String says what the limit allows, for the start-up log.
func (b Budget) String() string {
	if b.Capped {
		return fmt.Sprintf("open-file limit %d allows %d clients (%s) and %d starting connections; the configured limits need %d",
			b.Limit, b.MaxClients, b.each(), b.MaxStartups, b.Need)
	}
	return fmt.Sprintf("open-file limit %d covers %d clients (%s) and %d starting connections (%d needed)",
		b.Limit, b.MaxClients, b.each(), b.MaxStartups, b.Need)
}

func (b Budget) each() string {
	if b.PerClient == 1 {
		return "1 descriptor each: every listener pools"
	}
	return fmt.Sprintf("%d descriptors each", b.PerClient)
}
