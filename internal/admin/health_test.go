package admin

import (
	"net/url"
	"testing"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// Each check path answers as Patroni's REST API would on some member.
func TestHealthChecks(t *testing.T) {
	snap := &topology.Snapshot{Members: []topology.Member{
		{Name: "pg1", Role: topology.RolePrimary, Healthy: true},
		{Name: "pg2", Role: topology.RoleReplica, Healthy: true, Sync: true, Lag: 10 << 20, Tags: "zone=a"},
		{Name: "pg3", Role: topology.RoleReplica, Healthy: true, Lag: 0, Tags: "nofailover=true,zone=b"},
		{Name: "pg4", Role: topology.RoleReplica, Healthy: true, NoLoadBalance: true, Lag: 0},
		{Name: "pg5", Role: topology.RoleReplica, Healthy: false, Lag: 0, Tags: "zone=c"},
		{Name: "pg6", Role: topology.RoleReplica, Healthy: true, Lag: topology.LagUnknown, Tags: "zone=d"},
	}}
	noPrimary := &topology.Snapshot{Members: snap.Members[1:]}
	primaryDown := &topology.Snapshot{Members: []topology.Member{{Name: "pg1", Role: topology.RolePrimary}}}
	splitBrain := &topology.Snapshot{Members: []topology.Member{{Name: "pg1", Role: topology.RolePrimary, Healthy: true},
		{Name: "pg2", Role: topology.RolePrimary, Healthy: true}}}
	onlyPrimary := &topology.Snapshot{Members: snap.Members[:1]}
	for _, c := range []struct {
		snap  *topology.Snapshot
		path  string
		query string
		want  string // the member that answers, "" for 503
	}{
		{snap, "/primary", "", "pg1"},
		{snap, "/master", "", "pg1"},
		{snap, "/leader", "", "pg1"},
		{snap, "/read-write", "", "pg1"},
		{noPrimary, "/primary", "", ""},
		{primaryDown, "/primary", "", ""},
		{splitBrain, "/primary", "", ""},
		{nil, "/replica", "", ""},
		{snap, "/replica", "", "pg2"},
		{snap, "/replica", "lag=1MB", "pg3"},
		{snap, "/replica", "lag=0", "pg3"},
		{snap, "/replica", "lag=10MB", "pg2"},
		{snap, "/replica", "tag_zone=b", "pg3"},
		{snap, "/replica", "tag_zone=c", ""}, // pg5 is not healthy
		{snap, "/replica", "tag_zone=a&lag=1kB", ""},
		{snap, "/replica", "tag_zone=d&lag=0", "pg6"}, // unknown lag counts, as under max_lag
		{onlyPrimary, "/replica", "", ""},
		{onlyPrimary, "/read-only", "", "pg1"},
		{noPrimary, "/read-only", "", "pg2"},
		{snap, "/sync", "", "pg2"},
		{snap, "/synchronous", "lag=1MB", ""},
		{snap, "/async", "", "pg3"},
		{snap, "/asynchronous", "tag_zone=a", ""},
	} {
		q, _ := url.ParseQuery(c.query)
		f, err := parseHealthQuery(q)
		if err != nil {
			t.Fatalf("%s?%s: %v", c.path, c.query, err)
		}
		m, ok := serving(c.snap, healthPaths[c.path], f)
		if got := map[bool]string{true: m.Name, false: ""}[ok]; got != c.want {
			t.Errorf("%s?%s answered by %q, want %q", c.path, c.query, got, c.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "16": 16, "16B": 16, "16kB": 16 << 10, "1MB": 1 << 20, "2 GB": 2 << 30, "1TB": 1 << 40} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1", "1XB", "1.5MB", "1mb"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): no error", in)
		}
	}
}
