package discovery

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulStore reads Patroni's keys from Consul KV.
type consulStore struct {
	kv     *api.KV
	prefix string // "service/demo/": Consul keys have no leading slash
}

func newConsulStore(cfg *api.Config, prefix string) (*consulStore, error) {
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	return &consulStore{kv: c.KV(), prefix: strings.TrimPrefix(prefix, "/")}, nil
}

// Read lists the prefix with a blocking query: with after set, Consul
// answers when the prefix's index moves past it or after wait. An index
// that went backwards (a restored or re-elected server) restarts from 0.
func (s *consulStore) Read(ctx context.Context, after uint64, wait time.Duration) (Keys, uint64, error) {
	q := &api.QueryOptions{WaitIndex: after, WaitTime: wait}
	pairs, meta, err := s.kv.List(s.prefix, q.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("consul list %s: %w", s.prefix, err)
	}
	keys := make(Keys, len(pairs))
	for _, p := range pairs {
		keys[strings.TrimPrefix(p.Key, s.prefix)] = p.Value
	}
	idx := meta.LastIndex
	if idx < after {
		idx = 0
	}
	return keys, max(idx, 1), nil
}

func (s *consulStore) Close() {}
