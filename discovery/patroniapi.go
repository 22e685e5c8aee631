package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// patroniAPI polls GET /cluster on Patroni's REST API: the view of the
// DCS that any member's Patroni has. It is for setups where Switchyard
// may not talk to the DCS itself. URLs are tried in turn, starting with
// the one that answered last.
type patroniAPI struct {
	urls   []string
	client *http.Client
	good   int // index of the URL that answered last
}

// apiCluster is Patroni's /cluster answer.
type apiCluster struct {
	Members []struct {
		Name  string          `json:"name"`
		Role  string          `json:"role"` // leader | standby_leader | sync_standby | replica
		State string          `json:"state"`
		Host  string          `json:"host"`
		Port  int             `json:"port"`
		Lag   json.RawMessage `json:"lag"` // bytes or "unknown"
		Tags  map[string]any  `json:"tags"`
		TL    int64           `json:"timeline"`
	} `json:"members"`
	Pause bool `json:"pause"`
}

func (p *patroniAPI) read(ctx context.Context, after uint64, wait time.Duration) (*topology.Snapshot, uint64, error) {
	if after > 0 {
		if err := pause(ctx, wait); err != nil { // the poll interval
			return nil, 0, err
		}
	}
	var errs []error
	for i := range p.urls {
		k := (p.good + i) % len(p.urls)
		c, err := p.get(ctx, p.urls[k])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.good = k
		return c.topology(), after + 1, nil
	}
	return nil, 0, errors.Join(errs...)
}

func (p *patroniAPI) get(ctx context.Context, base string) (*apiCluster, error) {
	u := strings.TrimSuffix(base, "/") + "/cluster"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var c apiCluster
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&c); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return &c, nil
}

func (c *apiCluster) topology() *topology.Snapshot {
	t := &topology.Snapshot{Paused: c.Pause}
	for _, am := range c.Members {
		m := topology.Member{
			Name:          am.Name,
			State:         am.State,
			Timeline:      am.TL,
			Tags:          tagList(am.Tags),
			Addr:          hostPort(am.Host, am.Port),
			Healthy:       running(am.State),
			NoLoadBalance: tagTrue(am.Tags, "noloadbalance"),
			Sync:          am.Role == "sync_standby",
			Lag:           topology.LagUnknown,
		}
		switch am.Role {
		case "leader", "master", "primary":
			m.Role, m.Lag = topology.RolePrimary, 0
		case "replica", "sync_standby", "standby_leader":
			m.Role = topology.RoleReplica
			if n, err := strconv.ParseInt(string(am.Lag), 10, 64); err == nil {
				m.Lag = n
			}
		}
		t.Members = append(t.Members, m)
	}
	return finish(t)
}

func (p *patroniAPI) close() { p.client.CloseIdleConnections() }

func (p *patroniAPI) polling() bool { return true }
