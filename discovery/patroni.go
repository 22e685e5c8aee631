package discovery

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// Keys is everything a DCS holds under one Patroni cluster's prefix, by
// name relative to it: "leader", "members/pg1", "sync", "status", ...
type Keys map[string][]byte

// patroniMember is the JSON Patroni writes to members/<name>.
type patroniMember struct {
	ConnURL      string         `json:"conn_url"`
	State        string         `json:"state"`
	Role         string         `json:"role"`
	XLogLocation *int64         `json:"xlog_location"`
	Timeline     int64          `json:"timeline"`
	Tags         map[string]any `json:"tags"`
}

// decodePatroni turns Patroni's key layout into a topology. The leader
// key decides the primary; a member's own JSON decides the rest:
//
//   - the leader key holder is the primary unless it calls itself demoted,
//     or is a standby cluster's standby_leader (a read-only node);
//   - other members are replicas if they say so, and nothing otherwise
//     (a primary without the leader key is on its way down);
//   - healthy means Patroni reports PostgreSQL running (or streaming);
//   - replica lag is the leader's optime (the status key, else
//     optime/leader, else the leader's xlog_location) minus the member's
//     xlog_location;
//   - the sync key marks synchronous standbys when it names the current
//     leader (Patroni leaves "{}" or a stale one behind);
//   - a switchover or failover requested now (the failover key naming the
//     current leader, or no leader, and a candidate, with no schedule)
//     takes the primary role from the leader at once: Patroni is about to
//     shut it down, and its write sessions are better ended by Switchyard
//     with a clear reason, and new ones held (leader_wait) for the new
//     leader, than cut by the shutdown.
//
// Members whose JSON does not parse are left out, never guessed.
func decodePatroni(keys Keys) *topology.Snapshot {
	leader := strings.TrimSpace(string(keys["leader"]))
	members := map[string]patroniMember{}
	for k, v := range keys {
		name, ok := strings.CutPrefix(k, "members/")
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		var m patroniMember
		if json.Unmarshal(v, &m) != nil {
			continue
		}
		members[name] = m
	}

	leaderOptime, known := optime(keys)
	if lm, ok := members[leader]; ok && !known && lm.XLogLocation != nil {
		leaderOptime, known = *lm.XLogLocation, true
	}
	sync := syncStandbys(keys["sync"], leader)
	steppingDown := switchoverFrom(keys["failover"], leader)

	var cfg struct {
		Pause bool `json:"pause"`
	}
	_ = json.Unmarshal(keys["config"], &cfg)

	t := &topology.Snapshot{Paused: cfg.Pause}
	for name, pm := range members {
		m := topology.Member{
			Name:          name,
			Addr:          connAddr(pm.ConnURL),
			State:         pm.State,
			Timeline:      pm.Timeline,
			Tags:          tagList(pm.Tags),
			Healthy:       running(pm.State),
			NoLoadBalance: tagTrue(pm.Tags, "noloadbalance"),
			Sync:          sync[name],
			Lag:           topology.LagUnknown,
		}
		switch {
		case name == leader && steppingDown:
			m.Why = "is handing over to a new primary (switchover in progress)"
		case name == leader && pm.Role != "demoted" && pm.Role != "standby_leader":
			m.Role, m.Lag = topology.RolePrimary, 0
		case name == leader && pm.Role == "standby_leader":
			m.Role = topology.RoleReplica
		case pm.Role == "replica" || pm.Role == "standby" || pm.Role == "sync_standby":
			m.Role = topology.RoleReplica
		}
		if m.Role == topology.RoleReplica && known && pm.XLogLocation != nil {
			m.Lag = max(0, leaderOptime-*pm.XLogLocation)
		}
		t.Members = append(t.Members, m)
	}
	return finish(t)
}

// switchoverFrom reports whether the failover key asks leader to step
// down now: {"leader": "pg1", "member": "pg2"} without "scheduled_at".
func switchoverFrom(raw []byte, leader string) bool {
	var f struct {
		Leader      string `json:"leader"`
		Member      string `json:"member"`
		ScheduledAt string `json:"scheduled_at"`
	}
	if leader == "" || json.Unmarshal(raw, &f) != nil || f.ScheduledAt != "" {
		return false
	}
	return (f.Leader == leader || (f.Leader == "" && f.Member != "")) && f.Member != leader
}

// optime is the leader's last known WAL position.
func optime(keys Keys) (int64, bool) {
	var st struct {
		Optime *int64 `json:"optime"`
	}
	if json.Unmarshal(keys["status"], &st) == nil && st.Optime != nil {
		return *st.Optime, true
	}
	if v, ok := keys["optime/leader"]; ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
}

// syncStandbys reads the sync key: {"leader": "pg1", "sync_standby": "pg2,pg3"}.
func syncStandbys(raw []byte, leader string) map[string]bool {
	var s struct {
		Leader      string `json:"leader"`
		SyncStandby string `json:"sync_standby"`
	}
	out := map[string]bool{}
	if json.Unmarshal(raw, &s) != nil || s.Leader == "" || s.Leader != leader {
		return out
	}
	for _, n := range strings.Split(s.SyncStandby, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out[n] = true
		}
	}
	return out
}
