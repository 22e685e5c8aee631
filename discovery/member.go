package discovery

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// The member rules every source shares.

// running reports whether an HA agent's state word means PostgreSQL is
// up and serving: Patroni says "running", or "streaming" for a replica
// (Patroni 3.0.4+).
func running(state string) bool { return state == "running" || state == "streaming" }

// defaultPort is PostgreSQL's, for addresses that name none.
const defaultPort = 5432

// hostPort joins host and port, PostgreSQL's port when port is 0; "" when
// there is no host.
func hostPort(host string, port int) string {
	if host == "" {
		return ""
	}
	if port == 0 {
		port = defaultPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// connAddr turns Patroni's conn_url (postgres://host:port/db) into host:port.
func connAddr(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		return ""
	}
	port, _ := strconv.Atoi(u.Port())
	return hostPort(u.Hostname(), port)
}

// finish applies the rules every decoded member list ends with: a member
// without an address serves nothing, and members are ordered by name so
// that equal clusters compare equal.
func finish(t *topology.Snapshot) *topology.Snapshot {
	for i := range t.Members {
		if m := &t.Members[i]; m.Addr == "" {
			m.Role, m.Healthy = topology.RoleUnknown, false
		}
	}
	slices.SortFunc(t.Members, func(a, b topology.Member) int { return strings.Compare(a.Name, b.Name) })
	return t
}

// tagList renders tags for display: "k=v" sorted, comma-separated.
func tagList(tags map[string]any) string {
	parts := make([]string, 0, len(tags))
	for k, v := range tags {
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func tagTrue(tags map[string]any, name string) bool {
	switch v := tags[name].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}
