package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Discovery modes.
var discoveries = []string{"static", "etcd", "consul", "zookeeper", "patroni-api", "probe"}

// validateDiscovery checks [cluster] and the section of the chosen
// discovery; sections of other modes must be empty, so that a typo in
// discovery cannot silently ignore the section the user wrote.
func (c *Config) validateDiscovery(v *validator) {
	cl := &c.Cluster
	v.oneOf("cluster.discovery", cl.Discovery, discoveries...)
	v.oneOf("cluster.dcs_failure", cl.DCSFailure, DCSKeepLast, DCSFailClosed)
	v.duration("cluster.dcs_grace", cl.DCSGrace)
	v.duration("cluster.leader_wait", cl.LeaderWait)
	if !strings.HasPrefix(cl.Namespace, "/") {
		v.errorf("cluster.namespace", "%q must start with \"/\" as Patroni's namespace does (\"/service\")", cl.Namespace)
	}

	used := map[string]bool{
		"static":      len(cl.Static.Members) > 0,
		"etcd":        len(cl.Etcd.Endpoints) > 0 || cl.Etcd.Username != "" || cl.Etcd.CA != "",
		"consul":      cl.Consul.Address != "" || cl.Consul.Token != "",
		"zookeeper":   len(cl.ZooKeeper.Servers) > 0,
		"patroni-api": len(cl.PatroniAPI.URLs) > 0,
		"probe":       len(cl.Probe.Members) > 0 || cl.Probe.User != "",
	}
	for _, d := range discoveries {
		if used[d] && d != cl.Discovery {
			v.errorf("cluster."+strings.ReplaceAll(d, "-", "_"),
				"is set but cluster.discovery is %q; remove the section or set discovery = %q", cl.Discovery, d)
		}
	}

	switch cl.Discovery {
	case "static":
		v.duration("cluster.static.check_interval", cl.Static.CheckInterval)
		if cl.Static.Fall < 0 {
			v.errorf("cluster.static.fall", "must be 1 or more (failed checks in a row before a member is down), got %d", cl.Static.Fall)
		}
		if cl.Static.Rise < 0 {
			v.errorf("cluster.static.rise", "must be 1 or more (passed checks in a row before a member is up again), got %d", cl.Static.Rise)
		}
		v.members("cluster.static.members", cl.Static.Members, true)
	case "etcd":
		e := cl.Etcd
		v.addresses("cluster.etcd.endpoints", e.Endpoints, true)
		if (e.Username == "") != (e.Password == "") {
			v.errorf("cluster.etcd.password", "username and password go together")
		}
		if (e.Cert == "") != (e.Key == "") {
			v.errorf("cluster.etcd.key", "cert and key go together")
		}
	case "consul":
		if cl.Consul.Address == "" {
			cl.Consul.Address = "127.0.0.1:8500"
		}
		v.address("cluster.consul.address", cl.Consul.Address)
		v.oneOf("cluster.consul.scheme", cl.Consul.Scheme, "http", "https")
		if (cl.Consul.Cert == "") != (cl.Consul.Key == "") {
			v.errorf("cluster.consul.key", "cert and key go together")
		}
	case "zookeeper":
		v.addresses("cluster.zookeeper.servers", cl.ZooKeeper.Servers, false)
		v.duration("cluster.zookeeper.session_timeout", cl.ZooKeeper.SessionTimeout)
	case "patroni-api":
		a := cl.PatroniAPI
		v.duration("cluster.patroni_api.interval", a.Interval)
		if len(a.URLs) == 0 {
			v.errorf("cluster.patroni_api.urls", "at least one Patroni REST API URL is required (\"http://host:8008\")")
		}
		for i, u := range a.URLs {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				v.errorf(fmt.Sprintf("cluster.patroni_api.urls[%d]", i), "%q is not an http:// or https:// URL", u)
			}
		}
	case "probe":
		p := cl.Probe
		v.duration("cluster.probe.interval", p.Interval)
		v.members("cluster.probe.members", p.Members, false)
		if p.User == "" {
			v.errorf("cluster.probe.user", "is required: the role Switchyard logs in as to ask pg_is_in_recovery()")
		}
		if p.Password != "" && p.PasswordFile != "" {
			v.errorf("cluster.probe.password_file", "set password or password_file, not both")
		}
	}
}

// addresses checks a non-empty list of host:port, where etcd endpoints may
// also be written as URLs.
func (v *validator) addresses(key string, list []string, urls bool) {
	if len(list) == 0 {
		v.errorf(key, "at least one host:port is required")
	}
	for i, a := range list {
		if urls {
			if u, err := url.Parse(a); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
				a = u.Host
			}
		}
		v.address(fmt.Sprintf("%s[%d]", key, i), a)
	}
}

// members checks a member list; roles only where the file sets them.
func (v *validator) members(key string, ms []Member, withRole bool) {
	if len(ms) == 0 {
		v.errorf(key, "at least one member is required")
		return
	}
	names := map[string]bool{}
	primaries := 0
	for i, m := range ms {
		p := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case m.Name == "":
			v.errorf(p+".name", "is required")
		case names[m.Name]:
			v.errorf(p+".name", "%q names two members", m.Name)
		}
		names[m.Name] = true
		v.address(p+".address", m.Address)
		if !withRole {
			if m.Role != "" {
				v.errorf(p+".role", "is found out by asking the server; remove it")
			}
			continue
		}
		v.oneOf(p+".role", m.Role, RolePrimary, RoleReplica)
		if m.Role == RolePrimary {
			primaries++
			if primaries == 2 {
				v.errorf(p+".role", "a cluster has one primary; %q is the second", m.Name)
			}
		}
		for k, val := range m.Tags {
			switch k {
			case "noloadbalance", "nofailover", "nosync", "nostream", "clonefrom":
				if _, ok := val.(bool); !ok {
					v.errorf(p+".tags."+k, "must be true or false")
				}
			}
		}
	}
}
