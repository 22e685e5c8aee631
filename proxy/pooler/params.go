package pooler

import (
	"strconv"
	"strings"
)

// Tracked are the settings that follow a client from server to server in
// transaction mode (pgbouncer 1.26's set). PostgreSQL reports each of them
// in ParameterStatus when it changes, except search_path before
// PostgreSQL 18.
var Tracked = []string{
	"client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
	"application_name", "search_path", "default_transaction_read_only",
}

// reported are the parameters PostgreSQL sends in ParameterStatus (15 to
// 18). A client is told these at login; every other setting Switchyard
// applies for it (a startup parameter such as extra_float_digits) is an
// extra, set with set_config and reset when the next client lacks it.
var reported = map[string]bool{
	"application_name": true, "client_encoding": true, "DateStyle": true, "default_transaction_read_only": true,
	"in_hot_standby": true, "integer_datetimes": true, "IntervalStyle": true, "is_superuser": true,
	"server_encoding": true, "server_version": true, "session_authorization": true,
	"standard_conforming_strings": true, "TimeZone": true, "scram_iterations": true,
	"search_path": true, // PostgreSQL 18; see reportsSearchPath
}

// readOnly are reported parameters a client cannot set.
var readOnly = map[string]bool{
	"in_hot_standby": true, "integer_datetimes": true, "is_superuser": true, "server_encoding": true,
	"server_version": true, "session_authorization": true, "scram_iterations": true,
}

// canonical spells a setting's name as the server reports it; names are
// case-insensitive in SQL and startup packets.
func canonical(name string) string {
	switch l := strings.ToLower(name); l {
	case "datestyle":
		return "DateStyle"
	case "timezone":
		return "TimeZone"
	case "intervalstyle":
		return "IntervalStyle"
	default:
		return l
	}
}

// IsReported tells whether the server itself reports name (given its
// version), so that a change reaches Switchyard in ParameterStatus.
func IsReported(name, serverVersion string) bool {
	if name == "search_path" {
		return reportsSearchPath(serverVersion)
	}
	return reported[name]
}

// reportsSearchPath: PostgreSQL reports search_path from version 18.
func reportsSearchPath(serverVersion string) bool {
	major, _, _ := strings.Cut(serverVersion, ".")
	n, err := strconv.Atoi(strings.TrimSpace(major))
	return err == nil && n >= 18
}

// Welcome is what a client is told at login: ParameterStatus for every
// reported parameter of server, with the client's own values.
func Welcome(want, server map[string]string) []byte {
	var b []byte
	for k, v := range server {
		if !IsReported(k, server["server_version"]) {
			continue
		}
		if w, ok := want[k]; ok {
			v = w
		}
		b = appendParameterStatus(b, k, v)
	}
	return b
}

// Reset records that a server's session was reset (server_reset_query,
// DISCARD ALL): the settings Switchyard set on it are gone, and its
// reported ones arrived in ParameterStatus during the reset.
func Reset(server map[string]string, tag *uint64) {
	for k := range server {
		if !IsReported(k, server["server_version"]) {
			delete(server, k)
		}
	}
	*tag = 0
}

// setup returns the SQL that makes server's settings the client's (want),
// and records on server what it will have set; "" when they already agree.
// On first use, want learns the server's values of the reported
// parameters the client did not choose.
func setup(want, server map[string]string) string {
	version := server["server_version"]
	var sets, resets []string
	for k, v := range want {
		if readOnly[k] {
			continue
		}
		if cur, ok := server[k]; ok && strings.EqualFold(cur, v) {
			continue
		}
		sets = append(sets, "pg_catalog.set_config("+quoteLiteral(k)+","+quoteLiteral(v)+",false)")
		if !IsReported(k, version) {
			server[k] = v
		}
	}
	for k := range server {
		if _, ok := want[k]; ok {
			continue
		}
		if IsReported(k, version) {
			want[k] = server[k] // the client takes the server's default
			continue
		}
		resets = append(resets, "RESET "+quoteIdent(k))
		delete(server, k)
	}
	if len(sets) == 0 && len(resets) == 0 {
		return ""
	}
	var b strings.Builder
	if len(sets) > 0 {
		b.WriteString("SELECT ")
		b.WriteString(strings.Join(sets, ","))
	}
	for _, r := range resets {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(r)
	}
	return b.String()
}

// quoteLiteral is PostgreSQL's quote_literal: an E” string when the
// value holds a backslash, so it reads the same whatever
// standard_conforming_strings is.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// StartupSettings returns the settings a client asked for in its startup
// packet: every parameter but user, database, replication and _pq_.
// options, with "-c name=value" and "--name=value" in options read as
// PostgreSQL reads them. A setting options names that is not of that
// form is returned as bad.
func StartupSettings(params map[string]string) (want map[string]string, bad string) {
	want = map[string]string{}
	for k, v := range params {
		switch {
		case k == "user", k == "database", k == "replication", k == "options", strings.HasPrefix(k, "_pq_."):
			continue
		}
		want[canonical(k)] = v
	}
	args := splitOptions(params["options"])
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-c" && i+1 < len(args):
			i++
			a = "--" + args[i]
		case strings.HasPrefix(a, "-c"):
			a = "--" + a[2:]
		}
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok || name == "" {
			return nil, a
		}
		want[canonical(strings.ReplaceAll(name, "-", "_"))] = val
	}
	return want, ""
}

// splitOptions splits the options startup parameter on spaces, a
// backslash escaping the next character, as PostgreSQL's
// pg_split_opts does.
func splitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}
