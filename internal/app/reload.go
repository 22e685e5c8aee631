package app

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/auth"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/internal/events"
	"github.com/switchyard-proxy/switchyard/router"
)

// Reload re-reads the configuration file (SIGHUP, the console's RELOAD)
// and applies what can change live, without dropping a session:
//
//   - pool settings of every pooled listener (sizes, timeouts, queries);
//   - the auth file's users and secrets;
//   - the log level; the console's users and stats users;
//   - listeners added (bound and served at once) and removed (they stop
//     accepting and drain: their sessions go on until they end).
//
// Each reload also checks the open-file limit again, as the start does,
// and logs what it allows against what Switchyard admits.
//
// A file that does not load keeps the running configuration, and every
// error in it is logged and returned. What cannot change live (discovery,
// TLS, auth type, limits, the admin endpoint, a listener's address, role
// or pool mode) is logged as needing a restart. What loads but fails to
// apply (a listener whose address is taken, or whose name a removed
// listener still holds while it drains; pool settings) is logged, shown
// as an event and returned, and stays out of the running configuration:
// the next reload tries it again.
func (a *App) Reload() error {
	if a.opts.Path == "" {
		return errors.New("reload: Switchyard was not started from a configuration file")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next, err := config.LoadFile(a.opts.Path)
	if err != nil {
		a.reloadFailed(err)
		return err
	}
	var file map[string]string
	if next.Auth.File != "" {
		if file, err = auth.LoadFile(next.Path(next.Auth.File)); err != nil {
			err = fmt.Errorf("%s: auth.file: %w", a.opts.Path, err)
			a.reloadFailed(err)
			return err
		}
	}
	cur := a.cfg
	restart := needsRestart(cur, next)
	var applied []string

	if next.Log.Level != cur.Log.Level && a.opts.Level != nil {
		var lv slog.Level
		_ = lv.UnmarshalText([]byte(next.Log.Level)) // validated
		a.opts.Level.Set(lv)
		applied = append(applied, "log.level = "+next.Log.Level)
	}
	if !slices.Equal(next.Admin.Users, cur.Admin.Users) || !slices.Equal(next.Admin.StatsUsers, cur.Admin.StatsUsers) {
		a.Admin.Console().SetUsers(next.Admin.Users, next.Admin.StatsUsers)
		applied = append(applied, "admin.users, admin.stats_users")
	}
	if a.store != nil && next.Auth.File != "" {
		a.store.SetFile(file)
		applied = append(applied, fmt.Sprintf("auth.file (%d users)", len(file)))
	}

	// Listeners: routing first (a new listener's sessions route at once;
	// a removed one's draining sessions keep their port until they end,
	// across later reloads too), then sockets.
	// What does not apply stays out of the running configuration, so that
	// the next reload tries it again.
	old := map[string]int{}
	for i, l := range cur.Listeners {
		old[l.Name] = i
	}
	now := map[string]int{}
	for i, l := range next.Listeners {
		now[l.Name] = i
	}
	var errs []error
	failed := map[string]bool{} // listeners of next not added
	notApplied := func(what string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
		a.log.Error("reload: not applied; the running configuration keeps its value and a later reload tries again",
			"file", a.opts.Path, "what", what, "err", err)
		a.Events.Add(events.Reload, "%s not applied (a later reload tries again): %v", what, err)
	}
	for _, l := range next.Listeners {
		// A listener removed by an earlier reload keeps its name until
		// its sessions end: the new one can only be added after that.
		if _, had := old[l.Name]; !had && a.proxy.Addr(l.Name) != nil {
			failed[l.Name] = true
			notApplied(fmt.Sprintf("listener %q", l.Name), errors.New("a removed listener of that name is still draining"))
		}
	}
	for name := range a.draining {
		if a.proxy.Addr(name) == nil {
			delete(a.draining, name) // drained
		}
	}
	for _, l := range cur.Listeners {
		if _, kept := now[l.Name]; !kept {
			a.draining[l.Name] = routerPort(cur, l)
		}
	}
	a.Router.SetPorts(a.ports(withoutListeners(next, failed)))
	keptPool := map[string]config.Pool{} // listeners whose pool settings did not apply
	for i, l := range next.Listeners {
		j, had := old[l.Name]
		switch {
		case failed[l.Name]:
		case !had:
			if err := a.proxy.AddListener(proxyListener(next, i)); err != nil {
				failed[l.Name] = true
				notApplied(fmt.Sprintf("listener[%d] %q", i, l.Name), err)
				continue
			}
			delete(a.draining, l.Name)
			applied = append(applied, fmt.Sprintf("listener %q added on %s", l.Name, a.proxy.Addr(l.Name)))
		case l.Pooled() && cur.Listeners[j].PoolMode == l.PoolMode && !reflect.DeepEqual(cur.PoolFor(j), next.PoolFor(i)):
			if err := a.proxy.SetPoolOptions(l.Name, poolOptions(next.PoolFor(i))); err != nil {
				keptPool[l.Name] = cur.PoolFor(j)
				notApplied(fmt.Sprintf("listener %q pool settings", l.Name), err)
				continue
			}
			applied = append(applied, fmt.Sprintf("listener %q pool settings", l.Name))
		}
	}
	for _, l := range cur.Listeners {
		if _, kept := now[l.Name]; !kept {
			if err := a.proxy.RemoveListener(l.Name); err != nil {
				errs = append(errs, err)
				a.log.Error("reload: listener not removed", "file", a.opts.Path, "listener", l.Name, "err", err)
				continue
			}
			applied = append(applied, fmt.Sprintf("listener %q removed: it accepts no one and drains", l.Name))
		}
	}

	// What applied is now the running configuration; what needs a restart
	// keeps its old value in it, so a later reload reports it again, and
	// what failed is left out of it (a listener) or keeps its running
	// value (pool settings), so a later reload applies it again.
	merged := *withoutListeners(next, failed)
	keepRestartOnly(&merged, cur)
	for i, l := range merged.Listeners {
		if p, ok := keptPool[l.Name]; ok {
			merged.Listeners[i].Pool = &p // every key set: PoolFor(i) is the running settings
		}
	}
	if len(failed) > 0 {
		a.Router.SetPorts(a.ports(&merged))
	}
	a.cfg = &merged
	if len(applied) == 0 {
		applied = append(applied, "nothing changed that applies live")
	}
	a.log.Info("configuration reloaded", "file", a.opts.Path, "applied", strings.Join(applied, "; "))
	a.Events.Add(events.Reload, "reloaded %s: %s", a.opts.Path, strings.Join(applied, "; "))
	for _, key := range restart {
		a.log.Warn("configuration change needs a restart to apply; the running value stays", "file", a.opts.Path, "key", key)
		a.Events.Add(events.Reload, "%s changed: needs a restart to apply", key)
	}
	a.recheckDescriptors(&merged)
	return errors.Join(errs...)
}

// ports are the routing policies of c's listeners and of the removed
// listeners still draining, whose sessions route (and are ended by role
// changes) as before their removal.
func (a *App) ports(c *config.Config) []router.Port {
	ports := routerPorts(c)
	for name, p := range a.draining {
		if !slices.ContainsFunc(c.Listeners, func(l config.Listener) bool { return l.Name == name }) {
			ports = append(ports, p)
		}
	}
	return ports
}

// withoutListeners is c without the listeners named in drop; its
// Listeners are a copy either way, so that the result can be changed
// without changing c.
func withoutListeners(c *config.Config, drop map[string]bool) *config.Config {
	out := *c
	out.Listeners = slices.DeleteFunc(slices.Clone(c.Listeners), func(l config.Listener) bool { return drop[l.Name] })
	return &out
}

// reloadFailed logs a file that did not load: every error, one line each.
func (a *App) reloadFailed(err error) {
	var ce *config.Errors
	if errors.As(err, &ce) {
		for _, e := range ce.List {
			a.log.Error("reload refused: the running configuration stays", "file", ce.File, "line", e.Line, "key", e.Key, "err", e.Msg)
		}
	} else {
		a.log.Error("reload refused: the running configuration stays", "file", a.opts.Path, "err", err)
	}
	a.Events.Add(events.Reload, "reload of %s refused, running configuration kept: %v", a.opts.Path, err)
}

// needsRestart lists the keys that changed but apply only at start.
func needsRestart(cur, next *config.Config) []string {
	var keys []string
	diff := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	diff("cluster", cur.Cluster, next.Cluster)
	diff("tls", cur.TLS, next.TLS)
	diff("limits", cur.Limits, next.Limits)
	diff("log.format", cur.Log.Format, next.Log.Format)
	diff("auth.type", cur.Auth.Type, next.Auth.Type)
	diff("auth.user", cur.Auth.User, next.Auth.User)
	diff("auth.query", cur.Auth.Query, next.Auth.Query)
	diff("auth.database", cur.Auth.Database, next.Auth.Database)
	if (cur.Auth.File == "") != (next.Auth.File == "") {
		keys = append(keys, "auth.file")
	}
	ca, na := cur.Admin, next.Admin
	ca.Users, ca.StatsUsers, na.Users, na.StatsUsers = nil, nil, nil, nil
	diff("admin (listen, http_user, http_password_file, cert, key)", ca, na)
	byName := map[string]config.Listener{}
	for _, l := range cur.Listeners {
		byName[l.Name] = l
	}
	for _, l := range next.Listeners {
		o, ok := byName[l.Name]
		if !ok {
			continue
		}
		o.Pool, l.Pool = nil, nil
		diff(fmt.Sprintf("listener %q (address, role, pool_mode, balance, fallback, max_lag)", l.Name), o, l)
	}
	return keys
}

// keepRestartOnly puts back into next the running values of what needs a
// restart.
func keepRestartOnly(next, cur *config.Config) {
	next.Cluster, next.TLS, next.Limits = cur.Cluster, cur.TLS, cur.Limits
	next.Log.Format = cur.Log.Format
	next.Auth.Type, next.Auth.User, next.Auth.Query, next.Auth.Database = cur.Auth.Type, cur.Auth.User, cur.Auth.Query, cur.Auth.Database
	users, stats := next.Admin.Users, next.Admin.StatsUsers
	next.Admin = cur.Admin
	next.Admin.Users, next.Admin.StatsUsers = users, stats
	byName := map[string]config.Listener{}
	for _, l := range cur.Listeners {
		byName[l.Name] = l
	}
	for i, l := range next.Listeners {
		if o, ok := byName[l.Name]; ok {
			pool := l.Pool
			if o.PoolMode != l.PoolMode {
				pool = o.Pool
			}
			next.Listeners[i] = o
			next.Listeners[i].Pool = pool
		}
	}
}

// configRows are SHOW CONFIG's rows: pgbouncer's name where pgbouncer has
// the setting (so pgbouncer_exporter and runbooks find it), Switchyard's
// key otherwise; value, default, and whether RELOAD changes it.
func (a *App) configRows() [][4]string {
	a.mu.Lock()
	c := a.cfg
	a.mu.Unlock()
	p := c.Pool
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'g', -1, 64) }
	itoa := strconv.Itoa
	yes, no := "yes", "no"
	return [][4]string{
		{"admin_users", strings.Join(c.Admin.Users, ","), "", yes},
		{"auth_dbname", c.Auth.Database, "postgres", no},
		{"auth_file", c.Auth.File, "", yes},
		{"auth_query", c.Auth.Query, config.DefaultAuthQuery, no},
		{"auth_type", c.Auth.Type, config.AuthSCRAM, no},
		{"auth_user", c.Auth.User, "", no},
		{"client_idle_timeout", secs(p.ClientIdleTimeout.Duration), "0", yes},
		{"client_login_timeout", secs(c.Limits.ClientLoginTimeout.Duration), secs(config.DefaultClientLoginTimeout), no},
		{"default_pool_size", itoa(*p.DefaultPoolSize), itoa(config.DefaultPoolSize), yes},
		{"idle_transaction_timeout", secs(p.IdleTransactionTimeout.Duration), "0", yes},
		{"listen_addr", c.Admin.Listen, config.DefaultAdminListen, no},
		{"log_level", c.Log.Level, "info", yes},
		{"max_client_conn", itoa(c.Limits.MaxClients), itoa(config.DefaultMaxClients), no},
		{"max_db_connections", itoa(*p.MaxDBConnections), "0", yes},
		{"max_prepared_statements", itoa(*p.MaxPreparedStatements), itoa(config.DefaultMaxPrepared), yes},
		{"max_user_connections", itoa(*p.MaxUserConnections), "0", yes},
		{"min_pool_size", itoa(*p.MinPoolSize), "0", yes},
		{"query_wait_timeout", secs(p.QueryWaitTimeout.Duration), secs(config.DefaultQueryWaitTimeout), yes},
		{"reserve_pool_size", itoa(*p.ReservePoolSize), "0", yes},
		{"reserve_pool_timeout", secs(p.ReservePoolTimeout.Duration), secs(config.DefaultReservePoolTimeout), yes},
		{"server_check_delay", secs(p.ServerCheckDelay.Duration), secs(config.DefaultServerCheckDelay), yes},
		{"server_check_query", *p.ServerCheckQuery, config.DefaultServerCheckQuery, yes},
		{"server_connect_timeout", secs(c.Limits.ConnectTimeout.Duration), secs(config.DefaultConnectTimeout), no},
		{"server_idle_timeout", secs(p.ServerIdleTimeout.Duration), secs(config.DefaultServerIdleTimeout), yes},
		{"server_lifetime", secs(p.ServerLifetime.Duration), secs(config.DefaultServerLifetime), yes},
		{"server_login_retry", secs(p.ServerLoginRetry.Duration), secs(config.DefaultServerLoginRetry), yes},
		{"server_reset_query", *p.ServerResetQuery, config.DefaultServerResetQuery, yes},
		{"shutdown_timeout", secs(c.Limits.ShutdownTimeout.Duration), secs(config.DefaultShutdownTimeout), no},
		{"stats_users", strings.Join(c.Admin.StatsUsers, ","), "", yes},
		{"cluster.name", c.Cluster.Name, "", no},
		{"cluster.discovery", c.Cluster.Discovery, "static", no},
		{"cluster.leader_wait", secs(c.Cluster.LeaderWait.Duration), secs(config.DefaultLeaderWait), no},
		{"cluster.dcs_failure", c.Cluster.DCSFailure, config.DCSKeepLast, no},
		{"cluster.dcs_grace", secs(c.Cluster.DCSGrace.Duration), secs(config.DefaultDCSGrace), no},
		{"max_startups", itoa(c.Limits.MaxStartups), itoa(config.DefaultMaxStartups), no},
	}
}
