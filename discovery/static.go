package discovery

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// DialFunc opens a connection; net.Dialer.DialContext fits.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// StaticOptions configure a fixed member list with TCP health checks,
// like HAProxy's "check fall 3 rise 2" on a server line.
type StaticOptions struct {
	Members  []topology.Member // Name, Addr, Role, NoLoadBalance
	Interval time.Duration     // between checks; default 1 s
	// Fall is how many checks in a row must fail before a member is down
	// and its sessions end (default 3). After one failed check a member
	// is suspect: it gets no new sessions, and keeps the ones it has.
	Fall int
	// Rise is how many checks in a row must pass before a down member
	// serves again (default 2).
	Rise int
	Dial DialFunc // default net.Dialer
}

// static is the source for a fixed member list. Its first read trusts
// every member; each later read waits the check interval, checks every
// member and applies fall and rise. A check that fails for a local reason
// (out of descriptors or ephemeral ports) says nothing about the member
// and changes nothing.
type static struct {
	members  []topology.Member
	health   []checkState
	interval time.Duration
	timeout  time.Duration // for one check
	fall     int
	rise     int
	dial     DialFunc
	log      *slog.Logger
}

// checkState counts a member's consecutive check results.
type checkState struct {
	fails, passes int
	down          bool
	local         bool // the last check could not run here (logged once)
}

// checkResult is one TCP check.
type checkResult uint8

const (
	checkPassed checkResult = iota
	checkFailed
	checkLocal // failed on our side: no verdict on the member
)

func newStatic(o StaticOptions, log *slog.Logger) *static {
	s := &static{
		members:  make([]topology.Member, len(o.Members)),
		health:   make([]checkState, len(o.Members)),
		interval: o.Interval,
		fall:     o.Fall,
		rise:     o.Rise,
		dial:     o.Dial,
		log:      log,
	}
	copy(s.members, o.Members)
	if s.interval <= 0 {
		s.interval = time.Second
	}
	s.timeout = min(s.interval, 2*time.Second)
	if s.fall <= 0 {
		s.fall = 3
	}
	if s.rise <= 0 {
		s.rise = 2
	}
	if s.dial == nil {
		s.dial = (&net.Dialer{}).DialContext
	}
	for i := range s.members {
		s.members[i].Healthy = true
	}
	return s
}

func (s *static) read(ctx context.Context, after uint64, wait time.Duration) (*topology.Snapshot, uint64, error) {
	if after > 0 {
		if err := pause(ctx, wait); err != nil {
			return nil, 0, err
		}
		results := s.check(ctx)
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		for i, r := range results {
			s.apply(i, r)
		}
	}
	t := &topology.Snapshot{Members: make([]topology.Member, len(s.members))}
	copy(t.Members, s.members)
	return t, after + 1, nil
}

// apply moves member i through up → suspect → down → up by one result.
func (s *static) apply(i int, r checkResult) {
	m, h := &s.members[i], &s.health[i]
	if r == checkLocal {
		if !h.local {
			s.log.Warn("health check could not run on this host (out of descriptors or ports): no verdict on the member until it can",
				"member", m.Name, "address", m.Addr)
		}
		h.local = true
		return
	}
	h.local = false
	switch r {
	case checkPassed:
		h.fails = 0
		m.Suspect = false
		if !h.down {
			return
		}
		if h.passes++; h.passes >= s.rise {
			h.down, h.passes, m.Healthy = false, 0, true
			s.log.Info("member is reachable again", "member", m.Name, "address", m.Addr, "rise", s.rise)
		}
	case checkFailed:
		h.passes = 0
		if h.down {
			return
		}
		h.fails++
		if h.fails >= s.fall {
			h.down, m.Healthy, m.Suspect = true, false, false
			s.log.Warn("member is unreachable: its sessions end", "member", m.Name, "address", m.Addr, "fall", s.fall)
			return
		}
		if !m.Suspect {
			s.log.Info("member failed a health check: no new sessions until it passes one",
				"member", m.Name, "address", m.Addr, "fails", h.fails, "fall", s.fall)
		}
		m.Suspect = true
	}
}

// check dials every member concurrently.
func (s *static) check(ctx context.Context) []checkResult {
	out := make([]checkResult, len(s.members))
	var wg sync.WaitGroup
	for i, m := range s.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			c, err := s.dial(cctx, "tcp", m.Addr)
			switch {
			case err == nil:
				c.Close()
				out[i] = checkPassed
			case localFailure(err):
				out[i] = checkLocal
			default:
				out[i] = checkFailed
			}
		}()
	}
	wg.Wait()
	return out
}

// localFailure reports whether a dial failed for a reason on this host —
// out of file descriptors, memory or ephemeral ports — rather than
// because the member did not answer.
func localFailure(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.EADDRNOTAVAIL, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *static) polling() bool { return false }
func (s *static) close()        {}
