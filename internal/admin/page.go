package admin

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"orNone": func(s string) string {
		if s == "" {
			return "no primary"
		}
		return s
	},
	"since": func(from, now time.Time) string { return short(now.Sub(from)) },
	"ago": func(secs float64) string {
		if secs < 0 {
			return "never"
		}
		return short(time.Duration(secs*float64(time.Second))) + " ago"
	},
	"roleAge": func(since *time.Time, started, now time.Time) string {
		if since == nil {
			return "≥ " + short(now.Sub(started)) + " (since start)"
		}
		return short(now.Sub(*since))
	},
	"lag": func(lag int64, role topology.Role) string {
		switch {
		case role != topology.RoleReplica:
			return ""
		case lag < 0:
			return "unknown"
		}
		return bytesText(lag)
	},
	"bytes": bytesText,
}).Parse(pageHTML))

// pageData is what the page template renders.
type pageData struct {
	Status
	Refresh int // seconds between reloads; 0: none
}

// page renders the stats page. It reloads itself every 2 s, or every
// ?refresh=N seconds; ?refresh=0 renders it once (for screenshots, and
// for reading an event list that would otherwise move).
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	d := pageData{Status: s.status(), Refresh: 2}
	if v := r.URL.Query().Get("refresh"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 3600 {
			http.Error(w, "refresh: a number of seconds from 0 to 3600", http.StatusBadRequest)
			return
		}
		d.Refresh = n
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		http.Error(w, "rendering the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// short renders a duration for people: "3.2s", "4m12s", "2h5m", "3d4h".
func short(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
