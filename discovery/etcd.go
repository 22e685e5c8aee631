package discovery

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdStore reads Patroni's keys from etcd with the v3 API.
type etcdStore struct {
	cli    *clientv3.Client
	prefix string // "/service/demo/"
}

func newEtcdStore(o EtcdOptions, tc *tls.Config, prefix string) (*etcdStore, error) {
	eps := make([]string, len(o.Endpoints))
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
	}
	for i, e := range o.Endpoints {
		if u, err := url.Parse(e); err == nil && u.Host != "" {
			eps[i] = e
		} else {
			eps[i] = scheme + e
		}
	}
	// DialTimeout 0 keeps New from blocking: Switchyard starts, and keeps
	// retrying, while etcd is down. Keepalives notice a dead endpoint.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		Username:             o.Username,
		Password:             o.Password,
		TLS:                  tc,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return &etcdStore{cli: cli, prefix: prefix}, nil
}

// Read waits for an event under the prefix after revision `after` (a watch
// from after+1, so nothing between two reads is missed), then reads the
// whole prefix again. A watch that ends any other way — compaction, lost
// leader (WithRequireLeader), the wait running out — also leads to a full
// read, so a lost watch can never leave a stale view.
func (s *etcdStore) Read(ctx context.Context, after uint64, wait time.Duration) (Keys, uint64, error) {
	if after > 0 {
		wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), wait)
		ch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(int64(after)+1))
		select {
		case <-ch:
		case <-wctx.Done():
		}
		cancel()
		for range ch { // the client closes ch once the watch is cancelled
		}
	}
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd get %s: %w", s.prefix, err)
	}
	keys := make(Keys, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys[strings.TrimPrefix(string(kv.Key), s.prefix)] = kv.Value
	}
	return keys, uint64(resp.Header.Revision), nil
}

func (s *etcdStore) Close() { s.cli.Close() }
