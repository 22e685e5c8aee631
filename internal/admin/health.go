package admin

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// Load balancer checks with Patroni's paths and semantics, answered for
// the proxy as a whole: a path is 200 when some member Switchyard routes
// to would answer it 200 at Patroni's REST API, so a check written for
// Patroni (HAProxy's template, a cloud load balancer) can point at
// Switchyard unchanged.
//
//	/primary /master /leader /read-write   a primary is known
//	/replica                                a healthy replica serves reads (not noloadbalance)
//	/read-only                              a primary or such a replica
//	/sync /synchronous                      a healthy synchronous standby
//	/async /asynchronous                    a healthy replica that is not synchronous
//
// The replica paths take Patroni's query parameters: lag=<max lag>
// (bytes, or with PostgreSQL's units: 16kB, 1MB, 1GB) and tag_<key>=<value>
// (the member must carry the tag).
var healthPaths = map[string]healthKind{
	"/primary": kindPrimary, "/master": kindPrimary, "/leader": kindPrimary, "/read-write": kindPrimary,
	"/replica":   kindReplica,
	"/read-only": kindReadOnly,
	"/sync":      kindSync, "/synchronous": kindSync,
	"/async": kindAsync, "/asynchronous": kindAsync,
}

type healthKind uint8

const (
	kindPrimary healthKind = iota
	kindReplica
	kindReadOnly
	kindSync
	kindAsync
)

// healthFilter is a check's query parameters.
type healthFilter struct {
	maxLag int64 // -1: any
	tags   []string
}

func parseHealthQuery(q url.Values) (healthFilter, error) {
	f := healthFilter{maxLag: -1}
	if v := q.Get("lag"); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			return f, fmt.Errorf("lag=%q: %w", v, err)
		}
		f.maxLag = n
	}
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "tag_"); ok && key != "" {
			for _, v := range vs {
				f.tags = append(f.tags, key+"="+v)
			}
		}
	}
	return f, nil
}

// parseBytes reads a size as PostgreSQL and Patroni write it: a number of
// bytes, or one with B, kB, MB, GB or TB (powers of 1024).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s[:i]), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size (bytes, or with B, kB, MB, GB, TB)")
	}
	units := map[string]int64{"": 1, "B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	u, ok := units[strings.TrimSpace(s[i:])]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (B, kB, MB, GB, TB)", s[i:])
	}
	return n * u, nil
}

// serving returns the first member of snap that answers a check of kind
// with f, and whether there is one.
func serving(snap *topology.Snapshot, kind healthKind, f healthFilter) (topology.Member, bool) {
	if kind == kindPrimary || kind == kindReadOnly {
		// The one healthy primary (two is a split brain: no writes).
		if p, ok := snap.Primary(); ok || kind == kindPrimary {
			return p, ok
		}
	}
	if snap == nil {
		return topology.Member{}, false
	}
	for _, m := range snap.Members {
		if m.Role != topology.RoleReplica || !m.Healthy || m.NoLoadBalance {
			continue
		}
		if kind == kindSync && !m.Sync || kind == kindAsync && m.Sync {
			continue
		}
		// A replica of unknown lag counts, as the router serves it under
		// a listener's max_lag.
		if f.maxLag >= 0 && m.Lag != topology.LagUnknown && m.Lag > f.maxLag {
			continue
		}
		if !hasTags(m.Tags, f.tags) {
			continue
		}
		return m, true
	}
	return topology.Member{}, false
}

// hasTags reports whether tags ("k=v" sorted, comma-separated) has every
// one of want.
func hasTags(tags string, want []string) bool {
	have := strings.Split(tags, ",")
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || strings.TrimSpace(h) == w
		}
		if !found {
			return false
		}
	}
	return true
}
