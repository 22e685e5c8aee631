package discovery

import (
	"fmt"
	"testing"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// member is the JSON Patroni 3.0.2 writes to members/<name>.
func member(port int, role, state string, xlog int64, tags string) []byte {
	if tags == "" {
		tags = "{}"
	}
	return fmt.Appendf(nil, `{"conn_url":"postgres://127.0.0.1:%d/postgres","api_url":"http://127.0.0.1:%d/patroni","state":%q,"role":%q,"version":"3.0.2","xlog_location":%d,"timeline":3,"tags":%s}`,
		port, port+1000, state, role, xlog, tags)
}

// healthy is a leader and two streaming replicas, as Patroni leaves them.
func patroniKeys() Keys {
	return Keys{
		"config":      []byte(`{"ttl":10,"loop_wait":2,"retry_timeout":3,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true}}`),
		"initialize":  []byte("7311438416131395613"),
		"leader":      []byte("pg1"),
		"status":      []byte(`{"optime":67110904,"slots":{"pg2":67110904,"pg3":67110904}}`),
		"history":     []byte(`[[1,50331808,"no recovery target specified","2026-11-22T00:57:57+00:00","pg2"]]`),
		"members/pg1": member(5432, "master", "running", 67110904, ""),
		"members/pg2": member(5433, "replica", "running", 67110904, ""),
		"members/pg3": member(5434, "replica", "running", 66062328, `{"noloadbalance":true,"nofailover":true}`),
	}
}

func show(t *topology.Snapshot) string {
	s := ""
	for _, m := range t.Members {
		s += fmt.Sprintf("%s:%s@%s healthy=%v lag=%d nlb=%v sync=%v;", m.Name, m.Role, m.Addr, m.Healthy, m.Lag, m.NoLoadBalance, m.Sync)
	}
	return fmt.Sprintf("%s paused=%v", s, t.Paused)
}

func TestDecodePatroni(t *testing.T) {
	base := "pg1:primary@127.0.0.1:5432 healthy=true lag=0 nlb=false sync=false;" +
		"pg2:replica@127.0.0.1:5433 healthy=true lag=0 nlb=false sync=false;" +
		"pg3:replica@127.0.0.1:5434 healthy=true lag=1048576 nlb=true sync=false; paused=false"
	for _, tc := range []struct {
		name   string
		change func(Keys)
		want   string
	}{
		{"leader, replicas, tags, lag from the status key", func(Keys) {}, base},
		{"primary spelling (Patroni 3.1+)", func(k Keys) { k["members/pg1"] = member(5432, "primary", "running", 67110904, "") }, base},
		{"optime/leader key (Patroni < 2.1) when there is no status", func(k Keys) {
			delete(k, "status")
			k["optime/leader"] = []byte("67110904")
		}, base},
		{"leader's xlog_location when there is no optime at all", func(k Keys) { delete(k, "status") }, base},
		{"sync key naming the leader marks the sync standby", func(k Keys) {
			k["sync"] = []byte(`{"leader":"pg1","sync_standby":"pg2"}`)
		}, "pg1:primary@127.0.0.1:5432 healthy=true lag=0 nlb=false sync=false;" +
			"pg2:replica@127.0.0.1:5433 healthy=true lag=0 nlb=false sync=true;" +
			"pg3:replica@127.0.0.1:5434 healthy=true lag=1048576 nlb=true sync=false; paused=false"},
		{"stale sync key (other leader) and ZooKeeper's {} mark nothing", func(k Keys) {
			k["sync"] = []byte(`{"leader":"pg9","sync_standby":"pg2"}`)
		}, base},
		{"paused config", func(k Keys) {
			k["config"] = []byte(`{"ttl":10,"loop_wait":2,"pause":true}`)
		}, base[:len(base)-len("paused=false")] + "paused=true"},
		{"switchover in progress: the leader loses the primary role", func(k Keys) {
			k["failover"] = []byte(`{"leader":"pg1","member":"pg2"}`)
		}, "pg1:unknown@127.0.0.1:5432 healthy=true lag=-1 nlb=false sync=false;" + base[len("pg1:primary@127.0.0.1:5432 healthy=true lag=0 nlb=false sync=false;"):]},
		{"scheduled switchover: nothing yet", func(k Keys) {
			k["failover"] = []byte(`{"leader":"pg1","member":"pg2","scheduled_at":"2026-11-23T03:00:00+00:00"}`)
		}, base},
		{"leader key deleted mid-switchover: no primary; the demoted member serves nothing", func(k Keys) {
			delete(k, "leader")
			k["members/pg1"] = member(5432, "demoted", "running", 67110904, "")
		}, "pg1:unknown@127.0.0.1:5432 healthy=true lag=-1 nlb=false sync=false;" +
			"pg2:replica@127.0.0.1:5433 healthy=true lag=0 nlb=false sync=false;" +
			"pg3:replica@127.0.0.1:5434 healthy=true lag=1048576 nlb=true sync=false; paused=false"},
		{"new leader key before its member says so: leader key first", func(k Keys) {
			k["leader"] = []byte("pg2")
			k["members/pg1"] = member(5432, "demoted", "stopped", 67110904, "")
		}, "pg1:unknown@127.0.0.1:5432 healthy=false lag=-1 nlb=false sync=false;" +
			"pg2:primary@127.0.0.1:5433 healthy=true lag=0 nlb=false sync=false;" +
			"pg3:replica@127.0.0.1:5434 healthy=true lag=1048576 nlb=true sync=false; paused=false"},
		{"promoted member holding the key is the primary", func(k Keys) {
			k["leader"] = []byte("pg2")
			k["members/pg2"] = member(5433, "promoted", "running", 67110904, "")
			delete(k, "members/pg1")
		}, "pg2:primary@127.0.0.1:5433 healthy=true lag=0 nlb=false sync=false;" +
			"pg3:replica@127.0.0.1:5434 healthy=true lag=1048576 nlb=true sync=false; paused=false"},
		{"crash: leader and its member key gone together", func(k Keys) {
			delete(k, "leader")
			delete(k, "members/pg1")
		}, "pg2:replica@127.0.0.1:5433 healthy=true lag=0 nlb=false sync=false;" +
			"pg3:replica@127.0.0.1:5434 healthy=true lag=1048576 nlb=true sync=false; paused=false"},
		{"standby cluster: the standby_leader is a read-only node", func(k Keys) {
			k["members/pg1"] = member(5432, "standby_leader", "running", 67110904, "")
		}, "pg1:replica@127.0.0.1:5432 healthy=true lag=0 nlb=false sync=false;" + base[len("pg1:primary@127.0.0.1:5432 healthy=true lag=0 nlb=false sync=false;"):]},
		{"replica not running, starting, or with bad JSON", func(k Keys) {
			k["members/pg2"] = member(5433, "replica", "starting", 0, "")
			k["members/pg3"] = []byte(`{"conn_url":`)
		}, "pg1:primary@127.0.0.1:5432 healthy=true lag=0 nlb=false sync=false;" +
			"pg2:replica@127.0.0.1:5433 healthy=false lag=67110904 nlb=false sync=false; paused=false"},
		{"no keys at all", func(k Keys) { clear(k) }, " paused=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := patroniKeys()
			tc.change(k)
			if got := show(decodePatroni(k)); got != tc.want {
				t.Errorf("\ngot  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// On ZooKeeper Patroni rewrites the new leader's member node by deleting
// and creating it; a read in between must still find the new primary.
func TestLeaderMemberKeptAcrossRewrite(t *testing.T) {
	before := patroniKeys()
	prev := keepLeaderMember(before, nil)

	mid := patroniKeys()
	mid["leader"] = []byte("pg2")
	delete(mid, "members/pg2")
	prev = keepLeaderMember(mid, prev)
	got := show(decodePatroni(mid))
	if want := "pg1:unknown@127.0.0.1:5432 healthy=true lag=-1 nlb=false sync=false;pg2:primary@127.0.0.1:5433 healthy=true lag=0 nlb=false sync=false;pg3:replica@127.0.0.1:5434 healthy=true lag=1048576 nlb=true sync=false; paused=false"; got != want {
		t.Errorf("leader's member key missing for one read:\n got %s\nwant %s", got, want)
	}

	// A member that is not the leader and is gone is gone.
	after := patroniKeys()
	after["leader"] = []byte("pg2")
	delete(after, "members/pg3")
	keepLeaderMember(after, prev)
	if _, ok := after["members/pg3"]; ok {
		t.Error("a departed replica was carried over")
	}
}
