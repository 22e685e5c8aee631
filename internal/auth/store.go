package auth

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"sync"
	"time"
)

// QueryFunc runs auth_query as auth_user for one user. found is false
// when no row came back; a row whose secret is NULL (an expired role, as
// pgbouncer's default query gives) should come back as found with an
// empty secret, which the Store treats as not found.
type QueryFunc func(ctx context.Context, user string) (secret string, found bool, err error)

// Store looks up users' secrets: the auth_file first, then auth_query with
// a short cache of answers, both positive and negative. It also keeps the
// SCRAM ClientKeys clients have proved, for pass-through. It is safe for
// concurrent use.
type Store struct {
	query QueryFunc
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	file    map[string]string
	queries map[string]*queryEntry
	keys    map[string]savedKey
}

// queryEntry is one auth_query answer, or one under way (done open).
type queryEntry struct {
	done    chan struct{}
	secret  string
	found   bool
	err     error
	expires time.Time
}

type savedKey struct {
	scram     *SCRAMSecret
	clientKey []byte
}

// NewStore makes a Store over the auth_file's users (see ParseFile) and
// query (nil: no auth_query), whose answers are kept for cacheTTL (0: not
// kept, but concurrent lookups of one user still share one query).
func NewStore(file map[string]string, query QueryFunc, cacheTTL time.Duration) *Store {
	return &Store{
		query:   query,
		ttl:     cacheTTL,
		now:     time.Now,
		file:    maps.Clone(file),
		queries: map[string]*queryEntry{},
		keys:    map[string]savedKey{},
	}
}

// SetFile replaces the auth_file's users, on reload.
func (s *Store) SetFile(file map[string]string) {
	file = maps.Clone(file)
	s.mu.Lock()
	s.file = file
	s.mu.Unlock()
}

// Lookup finds user's secret: in the auth_file, else with auth_query. An
// empty secret from auth_query counts as not found. The Secret carries
// the user's pass-through ClientKey when one was saved for this very
// SCRAM secret. An error is auth_query's, or ctx's.
func (s *Store) Lookup(ctx context.Context, user string) (Secret, bool, error) {
	s.mu.Lock()
	secret, found := s.file[user]
	s.mu.Unlock()
	if !found && s.query != nil {
		var err error
		secret, found, err = s.runQuery(ctx, user)
		if err != nil {
			return Secret{}, false, err
		}
		found = found && secret != ""
	}
	if !found {
		return Secret{}, false, nil
	}
	sec := ParseSecret(secret)
	if sec.SCRAM != nil {
		s.mu.Lock()
		if k, ok := s.keys[user]; ok {
			if k.scram.Equal(sec.SCRAM) {
				sec.ClientKey = k.clientKey
			} else {
				delete(s.keys, user) // the secret changed
			}
		}
		s.mu.Unlock()
	}
	return sec, true, nil
}

// runQuery answers from the cache, waits for a query under way, or runs
// one. Errors are not cached; a waiter whose leader's context ended asks
// again itself.
func (s *Store) runQuery(ctx context.Context, user string) (string, bool, error) {
	for {
		s.mu.Lock()
		e, ok := s.queries[user]
		if ok {
			select {
			case <-e.done:
				if s.now().Before(e.expires) {
					s.mu.Unlock()
					return e.secret, e.found, nil
				}
				ok = false // expired
			default:
			}
		}
		if !ok {
			e = &queryEntry{done: make(chan struct{})}
			s.queries[user] = e
			s.mu.Unlock()
			return s.lead(ctx, user, e)
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false, context.Cause(ctx)
		case <-e.done:
		}
		if e.err == nil {
			return e.secret, e.found, nil
		}
		if !errors.Is(e.err, context.Canceled) && !errors.Is(e.err, context.DeadlineExceeded) {
			return "", false, e.err
		}
		if err := ctx.Err(); err != nil {
			return "", false, context.Cause(ctx)
		}
	}
}

// lead runs the query for e and publishes the answer.
func (s *Store) lead(ctx context.Context, user string, e *queryEntry) (string, bool, error) {
	secret, found, err := s.query(ctx, user)
	s.mu.Lock()
	e.secret, e.found, e.err = secret, found, err
	e.expires = s.now().Add(s.ttl)
	if err != nil || s.ttl <= 0 || len(s.queries) > maxCached && s.sweep() > maxCached {
		if s.queries[user] == e {
			delete(s.queries, user)
		}
	}
	close(e.done)
	s.mu.Unlock()
	return secret, found, err
}

// maxCached bounds the auth_query cache, which unknown user names (from
// anyone who can connect) would otherwise grow.
const maxCached = 10000

// sweep drops expired answers and returns how many entries are left.
// s.mu is held.
func (s *Store) sweep() int {
	now := s.now()
	for user, e := range s.queries {
		select {
		case <-e.done:
			if !now.Before(e.expires) {
				delete(s.queries, user)
			}
		default:
		}
	}
	return len(s.queries)
}

// SaveClientKey remembers a pass-through ClientKey for user, recovered by
// an Exchange against secret. It is kept only if it is secret's own key,
// and only while user's secret stays the same.
func (s *Store) SaveClientKey(user string, secret Secret, clientKey []byte) {
	if secret.SCRAM == nil || !secret.SCRAM.verifyClientKey(clientKey) {
		return
	}
	s.mu.Lock()
	s.keys[user] = savedKey{scram: secret.SCRAM, clientKey: bytes.Clone(clientKey)}
	s.mu.Unlock()
}
