package admin

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/switchyard-proxy/switchyard/internal/events"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// Console is the pgbouncer-compatible admin console: psql (or
// pgbouncer_exporter) to any listener, database "pgbouncer" or
// "switchyard". It implements proxy.Console.
type Console struct {
	s *Server

	mu         sync.Mutex
	users      []string // admin.users: every command
	statsUsers []string // admin.stats_users: SHOW only
}

// Console returns the admin console of s.
func (s *Server) Console() *Console { return s.console }

// SetUsers replaces who may use the console (at start and on reload).
func (c *Console) SetUsers(admins, stats []string) {
	c.mu.Lock()
	c.users, c.statsUsers = slices.Clone(admins), slices.Clone(stats)
	c.mu.Unlock()
}

// Access implements proxy.Console.
func (c *Console) Access(user string) (admin, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case slices.Contains(c.users, user):
		return true, true
	case slices.Contains(c.statsUsers, user):
		return false, true
	}
	return false, false
}

// command is pgbouncer's console grammar: a word, an optional argument
// (a name, or a double-quoted one), and an optional trailing ';'.
var command = regexp.MustCompile(`(?is)^\s*([a-z0-9_]+)(?:\s+([a-z0-9_./-]+|"[^"]*"))?\s*(?:;\s*)?$`)

// Exec implements proxy.Console.
func (c *Console) Exec(ctx context.Context, cl proxy.ConsoleClient, query string) ([]proxy.Result, error) {
	if strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(query), ";")) == "" {
		return nil, nil // an empty query: EmptyQueryResponse, as PostgreSQL
	}
	m := command.FindStringSubmatch(query)
	if m == nil {
		return nil, invalid(query)
	}
	verb, arg := strings.ToUpper(m[1]), strings.Trim(m[2], `"`)
	if verb == "SHOW" || verb == "SELECT" {
		if arg == "" {
			return nil, invalid(query)
		}
		rows, ok := c.show(strings.ToUpper(arg))
		if !ok {
			return nil, invalid(query)
		}
		return []proxy.Result{rows}, nil
	}
	if verb == "SET" {
		return nil, consoleError("SET is not supported: change the configuration file and RELOAD")
	}
	if !cl.Admin {
		if _, known := commands[verb]; known {
			return nil, consoleError("admin access needed")
		}
		return nil, invalid(query)
	}
	run, known := commands[verb]
	if !known {
		return nil, invalid(query)
	}
	return run(c, ctx, arg)
}

func invalid(query string) error {
	return consoleError(fmt.Sprintf("invalid command '%s', use SHOW HELP;", query))
}

// consoleError is an ERROR as pgbouncer sends them: SQLSTATE 08P01.
func consoleError(msg string) error { return &proxy.ConsoleError{Code: "08P01", Message: msg} }

var commands = map[string]func(*Console, context.Context, string) ([]proxy.Result, error){
	"PAUSE":     (*Console).pause,
	"RESUME":    (*Console).resume,
	"RECONNECT": (*Console).reconnect,
	"KILL":      (*Console).kill,
	"RELOAD":    (*Console).reload,
	"SHUTDOWN":  (*Console).shutdown,
}

func tag(t string) []proxy.Result { return []proxy.Result{{Tag: t}} }

// target reads a command's database argument.
func (c *Console) target(verb, arg string) (proxy.Target, error) {
	if proxy.IsConsole(arg) {
		return proxy.Target{}, consoleError(fmt.Sprintf("cannot %s admin db: %s", strings.ToLower(verb), arg))
	}
	t, err := c.s.deps.Proxy.ParseTarget(arg)
	if err != nil {
		return t, consoleError(err.Error())
	}
	return t, nil
}

func (c *Console) pause(ctx context.Context, arg string) ([]proxy.Result, error) {
	t, err := c.target("pause", arg)
	if err != nil {
		return nil, err
	}
	p := c.s.deps.Proxy
	if p.Paused(t) {
		return nil, consoleError("already suspended/paused")
	}
	c.s.deps.Events.Add(events.Admin, "PAUSE %s", t)
	if err := p.Pause(ctx, t); err != nil {
		return nil, consoleError(err.Error())
	}
	return tag("PAUSE"), nil
}

func (c *Console) resume(ctx context.Context, arg string) ([]proxy.Result, error) {
	t, err := c.target("resume", arg)
	if err != nil {
		return nil, err
	}
	was, err := c.s.deps.Proxy.Resume(t)
	switch {
	case err != nil:
		return nil, consoleError(err.Error())
	case !was && arg == "":
		return nil, consoleError("pooler is not paused/suspended")
	case !was:
		return nil, consoleError(fmt.Sprintf("database %s is not paused", arg))
	}
	c.s.deps.Events.Add(events.Admin, "RESUME %s", t)
	return tag("RESUME"), nil
}

func (c *Console) reconnect(ctx context.Context, arg string) ([]proxy.Result, error) {
	t, err := c.target("reconnect", arg)
	if err != nil {
		return nil, err
	}
	if err := c.s.deps.Proxy.Reconnect(t, ""); err != nil {
		return nil, consoleError(err.Error())
	}
	c.s.deps.Events.Add(events.Admin, "RECONNECT %s", t)
	return tag("RECONNECT"), nil
}

func (c *Console) kill(ctx context.Context, arg string) ([]proxy.Result, error) {
	if arg == "" {
		return nil, consoleError("a database is required")
	}
	t, err := c.target("kill", arg)
	if err != nil {
		return nil, err
	}
	n := c.s.deps.Proxy.Kill(t)
	c.s.deps.Events.Add(events.Admin, "KILL %s: ended %d session(s); paused until RESUME", t, n)
	return tag("KILL"), nil
}

func (c *Console) reload(ctx context.Context, arg string) ([]proxy.Result, error) {
	if arg != "" || c.s.deps.Reload == nil {
		return nil, invalid("RELOAD " + arg)
	}
	if err := c.s.deps.Reload(); err != nil {
		return nil, consoleError(err.Error())
	}
	return tag("RELOAD"), nil
}

func (c *Console) shutdown(ctx context.Context, arg string) ([]proxy.Result, error) {
	if arg != "" || c.s.deps.Shutdown == nil {
		return nil, invalid("SHUTDOWN " + arg)
	}
	c.s.deps.Events.Add(events.Admin, "SHUTDOWN")
	c.s.deps.Shutdown()
	return []proxy.Result{{Tag: "SHUTDOWN", ShuttingDown: true}}, nil
}
