package proxy

import (
	"fmt"
	"syscall"
)

// fdReserve is what Switchyard keeps for everything but client sessions:
// listeners, health checks, discovery clients, cancel requests, logs.
const fdReserve = 64

// Budget is what the open-file limit allows of the configured limits. A
// relayed client holds two descriptors (its own and its server's); a
// connection still in startup holds one.
type Budget struct {
	Limit       uint64 // RLIMIT_NOFILE (soft; Go raises it to the hard limit at start)
	MaxClients  int    // what may be admitted: the configured value or less
	MaxStartups int
	Need        int  // descriptors the configured limits need
	Capped      bool // the limit forced a value below the configured one
}

// FitDescriptors checks maxClients and maxStartups against the process's
// open-file limit and lowers them to what it allows, so that running out
// of descriptors refuses new clients (53300, or a closed connection) and
// never fails a health check or a live session. Run it at start, and
// again on every reload: the limit may have been changed on the running
// process (prlimit), and added listeners take descriptors from the
// reserve. The limits a proxy admits are fixed when it is built, so a
// reload only says what the limit allows now (internal/app does both).
func FitDescriptors(maxClients, maxStartups int) (Budget, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return Budget{MaxClients: maxClients, MaxStartups: maxStartups}, fmt.Errorf("reading the open-file limit: %w", err)
	}
	return fitDescriptors(rl.Cur, maxClients, maxStartups), nil
}

func fitDescriptors(limit uint64, maxClients, maxStartups int) Budget {
	b := Budget{Limit: limit, MaxClients: maxClients, MaxStartups: maxStartups, Need: 2*maxClients + maxStartups + fdReserve}
	if limit >= 1<<31 || uint64(b.Need) <= limit {
		return b
	}
	b.Capped = true
	avail := max(int(limit)-fdReserve, 8)
	b.MaxStartups = max(1, min(maxStartups, avail/4)) // at most a quarter for connections in startup
	b.MaxClients = max(1, min(maxClients, (avail-b.MaxStartups)/2))
	return b
}

// String says what the limit allows, for the start-up log.
func (b Budget) String() string {
	if b.Capped {
		return fmt.Sprintf("open-file limit %d allows %d clients (2 descriptors each) and %d starting connections; the configured limits need %d",
			b.Limit, b.MaxClients, b.MaxStartups, b.Need)
	}
	return fmt.Sprintf("open-file limit %d covers %d clients (2 descriptors each) and %d starting connections (%d needed)",
		b.Limit, b.MaxClients, b.MaxStartups, b.Need)
}
