package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/events"
)

// source is one way of learning the cluster: a DCS store with Patroni's
// layout, Patroni's REST API, probing the nodes, or a static list.
//
// read returns the whole current state and a token for it. With after set
// to the token of the previous successful read, it first waits up to wait
// for the state to change (a watch, a blocking query, or a poll interval);
// with after = 0 it reads at once. An error means the source could not be
// reached; the watcher then reads again from scratch.
type source interface {
	read(ctx context.Context, after uint64, wait time.Duration) (*topology.Snapshot, uint64, error)
	// polling reports whether the source learns of a promotion only after
	// it happened (it asks the nodes or their agents), rather than from a
	// leader key that changes before it.
	polling() bool
	close()
}

// storeSource adapts a DCS Store: it decodes Patroni's keys.
type storeSource struct {
	Store
	members Keys // the member keys of the previous read
}

func (s *storeSource) read(ctx context.Context, after uint64, wait time.Duration) (*topology.Snapshot, uint64, error) {
	keys, tok, err := s.Read(ctx, after, wait)
	if err != nil {
		return nil, 0, err
	}
	s.members = keepLeaderMember(keys, s.members)
	return decodePatroni(keys), tok, nil
}

// keepLeaderMember fills in the leader's member key from the previous
// read when this one lacks it, and returns this read's member keys.
// On ZooKeeper, Patroni rewrites a member by deleting its ephemeral node
// and creating it again (after a promotion, or a change of tags); a read
// between the two sees a leader key naming no member. The holder of the
// leader key is in the cluster, so its last known entry stands in: without
// it the new primary would look like it had left the cluster.
func keepLeaderMember(keys, prev Keys) Keys {
	leader := "members/" + strings.TrimSpace(string(keys["leader"]))
	if _, ok := keys[leader]; !ok && leader != "members/" {
		if v, ok := prev[leader]; ok {
			keys[leader] = v
		}
	}
	cur := Keys{}
	for k, v := range keys {
		if strings.HasPrefix(k, "members/") {
			cur[k] = v
		}
	}
	return cur
}

func (s *storeSource) polling() bool { return false }
func (s *storeSource) close()        { s.Close() }

// Store is what a DCS adapter does: read every key under the cluster's
// prefix, first waiting up to wait for a change since the read that
// returned after (0: read at once). The domain logic — decoding, retry,
// staleness — lives once, in Watcher.
type Store interface {
	Read(ctx context.Context, after uint64, wait time.Duration) (Keys, uint64, error)
	Close()
}

// Watcher runs one source and publishes a snapshot whenever what it says
// changes. It retries with backoff after errors, and while the source is
// unreachable it keeps the last snapshot for Grace (keep-last), then
// publishes it without a primary (fail-closed) until the source answers.
type Watcher struct {
	src        source
	name       string        // for logs: "etcd 127.0.0.1:2379"
	publish    Publish       //
	failClosed bool          // fail closed at once instead of after grace
	grace      time.Duration // how long keep-last trusts the last snapshot
	wait       time.Duration // longest wait for a change: bounds staleness detection
	timeout    time.Duration // for one read after the wait
	log        *slog.Logger
	events     *events.Log
	mode       Mode
	status     status
}

// Polling reports whether the source learns of a promotion only after it
// happened (patroni-api, probe), so that new replica sessions must check
// in-band that their node is still in recovery.
func (w *Watcher) Polling() bool { return w.src.polling() }

// Name says which source the watcher runs, for logs and the stats page.
func (w *Watcher) Name() string { return w.name }

// Run watches until ctx ends, and returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.src.close()
	var (
		after     uint64
		last      *topology.Snapshot // last snapshot read, as read
		rev       uint64
		lastOK    time.Time
		failSince time.Time // zero while the source answers
		closed    bool      // the published snapshot is last without its primary
		backoff   = 100 * time.Millisecond
		timer     = time.NewTimer(0)
	)
	<-timer.C
	defer timer.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, w.wait+w.timeout)
		t, tok, err := w.src.read(rctx, after, w.wait)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		if err == nil {
			after, lastOK, backoff = tok, now, 100*time.Millisecond
			if !failSince.IsZero() {
				down := now.Sub(failSince).Round(time.Millisecond)
				w.log.Info("discovery source answers again", "source", w.name, "down_for", down)
				w.events.Add(events.Discovery, "%s answers again after %s", w.name, down)
				failSince = time.Time{}
			}
			changed := last == nil || closed || !t.Equal(last)
			if changed {
				rev++
				t.Revision, t.Source = rev, w.name
				w.logChange(last, t, closed)
				last, closed = t, false
			}
			w.status.update(func(s *Status) {
				s.State, s.LastAnswer, s.DownSince, s.LastError = StateFresh, now, time.Time{}, ""
				if changed {
					s.Revision, s.LastChange = rev, now
				}
			})
			if changed {
				w.publish(t)
			}
			continue
		}

		after = 0
		if failSince.IsZero() {
			failSince = now
			mode := fmt.Sprintf("keeping the last topology for dcs_grace (%s)", w.grace)
			if w.failClosed || last == nil {
				mode = "no primary until it answers (fail-closed)"
			}
			w.log.Warn("discovery source unreachable; "+mode, "source", w.name, "err", err)
			w.events.Add(events.Discovery, "%s unreachable: %s; %s", w.name, err, mode)
		}
		if !closed && last != nil && (w.failClosed || now.Sub(lastOK) >= w.grace) {
			rev++
			closed = true
			w.status.update(func(s *Status) { s.Revision, s.LastChange = rev, now })
			w.publish(withoutPrimary(last, rev))
			w.log.Error("discovery source silent beyond dcs_grace: new write sessions get 57P03 and writers were disconnected until it answers",
				"source", w.name, "last_answer", lastOK.Format(time.RFC3339Nano))
			w.events.Add(events.Discovery, "%s silent beyond dcs_grace: no primary until it answers (fail-closed)", w.name)
		}
		w.status.update(func(s *Status) {
			s.DownSince, s.LastError = failSince, err.Error()
			s.State = StateStale
			if closed || last == nil {
				s.State = StateFailClosed
			}
		})

		d := backoff + rand.N(backoff/4+1)
		backoff = min(2*backoff, 2*time.Second)
		if !closed && last != nil {
			if until := lastOK.Add(w.grace).Sub(now); until < d {
				d = max(until, time.Millisecond)
			}
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// withoutPrimary is t with its primary demoted to unknown: writes route
// nowhere, reads keep going to the replicas last seen.
func withoutPrimary(t *topology.Snapshot, rev uint64) *topology.Snapshot {
	out := *t
	out.Revision = rev
	out.Members = make([]topology.Member, len(t.Members))
	for i, m := range t.Members {
		if m.Role == topology.RolePrimary {
			m.Role, m.Why = topology.RoleUnknown, "cannot be confirmed: the discovery source is unreachable beyond dcs_grace"
		}
		out.Members[i] = m
	}
	return &out
}

// logChange logs a new snapshot: at info when who does what changed, at
// debug when only details (lag) did.
func (w *Watcher) logChange(old, t *topology.Snapshot, reopened bool) {
	level := slog.LevelDebug
	if old == nil || reopened || old.Summary() != t.Summary() {
		level = slog.LevelInfo
	}
	w.log.Log(context.Background(), level, "topology", "source", w.name, "revision", t.Revision,
		"members", t.Summary(), "paused", t.Paused)
}

// pause waits d or until ctx ends: the poll interval of the polling
// sources.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
