package discovery

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// zkStore reads Patroni's znodes. ZooKeeper watches fire once, so every
// read re-arms the watches that fired; znodes whose watch is still armed
// are read without a new one, so that watches never pile up.
type zkStore struct {
	conn *zk.Conn
	base string // "/service/demo"

	// Used by the watcher's goroutine only.
	armed  map[string]<-chan zk.Event // path (+"/" for children) → armed watch
	cached Keys
	token  uint64
}

func newZKStore(servers []string, sessionTimeout time.Duration, base string) (*zkStore, error) {
	conn, _, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(zkQuiet{}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	return &zkStore{conn: conn, base: strings.TrimSuffix(base, "/"), armed: map[string]<-chan zk.Event{}}, nil
}

// errNotConnected means the ZooKeeper client has no session right now.
var errNotConnected = errors.New("not connected")

type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// Read waits for any armed watch to fire (or for wait), then reads the
// tree again. When nothing fired it only checks the session is alive and
// returns the cached view: nothing under the prefix changed.
func (s *zkStore) Read(ctx context.Context, after uint64, wait time.Duration) (Keys, uint64, error) {
	if after != 0 && after == s.token {
		fired, err := s.waitAny(ctx, wait)
		if err != nil {
			return nil, 0, err
		}
		if !fired {
			if st := s.conn.State(); st != zk.StateHasSession {
				return nil, 0, fmt.Errorf("zookeeper: %w (state %s)", errNotConnected, st)
			}
			if _, _, err := s.conn.Exists(s.base); err != nil {
				return nil, 0, fmt.Errorf("zookeeper exists %s: %w", s.base, err)
			}
			return s.cached, s.token, nil
		}
	}
	if st := s.conn.State(); st != zk.StateHasSession {
		return nil, 0, fmt.Errorf("zookeeper: %w (state %s)", errNotConnected, st)
	}
	keys, err := s.readTree()
	if err != nil {
		return nil, 0, err
	}
	s.token++
	s.cached = keys
	return keys, s.token, nil
}

// waitAny blocks until an armed watch fires, wait passes or ctx ends, and
// disarms every watch that fired.
func (s *zkStore) waitAny(ctx context.Context, wait time.Duration) (bool, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	paths := make([]string, 0, len(s.armed))
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
	}
	for p, ch := range s.armed {
		paths = append(paths, p)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	i, _, _ := reflect.Select(cases)
	switch i {
	case 0:
		return false, ctx.Err()
	case 1:
		return false, nil
	}
	for j, p := range paths { // collect every watch that has fired by now
		select {
		case <-s.armed[p]:
			delete(s.armed, p)
		default:
			if j == i-2 {
				delete(s.armed, p)
			}
		}
	}
	return true, nil
}

// readTree reads base's children and data, and members' children, arming
// a watch on each that has none.
func (s *zkStore) readTree() (Keys, error) {
	for p, ch := range s.armed { // watches that fired unseen (a lost session) must be re-armed
		select {
		case <-ch:
			delete(s.armed, p)
		default:
		}
	}
	keys := Keys{}
	children, err := s.children(s.base)
	if errors.Is(err, zk.ErrNoNode) {
		// No cluster yet: watch for its creation.
		if _, ok := s.armed[s.base]; !ok {
			_, _, ch, err := s.conn.ExistsW(s.base)
			if err != nil {
				return nil, fmt.Errorf("zookeeper exists %s: %w", s.base, err)
			}
			s.armed[s.base] = ch
		}
		return keys, nil
	}
	if err != nil {
		return nil, err
	}
	for _, c := range children {
		p := path.Join(s.base, c)
		if c == "members" {
			names, err := s.children(p)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				if err := s.data(keys, "members/"+n); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := s.data(keys, c); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func (s *zkStore) children(p string) ([]string, error) {
	key := p + "/"
	if _, ok := s.armed[key]; ok {
		c, _, err := s.conn.Children(p)
		return c, err
	}
	c, _, ch, err := s.conn.ChildrenW(p)
	if err != nil {
		return nil, err
	}
	s.armed[key] = ch
	return c, nil
}

// data reads one znode into keys; a znode deleted meanwhile is skipped
// (its parent's child watch has fired and a new read follows).
func (s *zkStore) data(keys Keys, rel string) error {
	p := path.Join(s.base, rel)
	var (
		b   []byte
		err error
	)
	if _, ok := s.armed[p]; ok {
		b, _, err = s.conn.Get(p)
	} else {
		var ch <-chan zk.Event
		b, _, ch, err = s.conn.GetW(p)
		if err == nil {
			s.armed[p] = ch
		}
	}
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil
	case err != nil:
		return fmt.Errorf("zookeeper get %s: %w", p, err)
	}
	keys[rel] = b
	return nil
}

func (s *zkStore) Close() { s.conn.Close() }
