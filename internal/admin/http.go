package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-proxy/switchyard/proxy"
)

// HTTPOptions configure the admin HTTP listener.
type HTTPOptions struct {
	Listen string
	// User and Password, when User is set, protect every path but
	// /health with basic auth.
	User, Password string
	TLS            *tls.Config // nil: plain HTTP
}

// Server is the operator surface: the HTTP endpoints, the metrics
// registry and the console.
type Server struct {
	deps    Deps
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	rates   rates
	gap     gap
	console *Console
	avg     averages

	http *http.Server
	ln   net.Listener
	opts HTTPOptions
}

// New builds the operator surface over deps; it registers the metrics.
// Call Listen to serve HTTP.
func New(deps Deps, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{deps: deps, log: log.With("component", "admin"), reg: prometheus.NewRegistry()}
	s.metrics = newMetrics(s)
	s.console = &Console{s: s}
	s.avg.sample(nil, time.Now())
	return s
}

// SetProxy gives the operator surface the proxy, which is built after
// it (the proxy's options carry the console and the observers).
func (s *Server) SetProxy(p *proxy.Server) { s.deps.Proxy = p }

// Close releases the HTTP listener of a Server that will not Serve.
func (s *Server) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
}

// Listen binds the HTTP listener.
func (s *Server) Listen(o HTTPOptions) error {
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	if o.TLS != nil {
		ln = tls.NewListener(ln, o.TLS)
	}
	s.ln, s.opts = ln, o
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	return nil
}

// Addr is the bound HTTP address, nil before Listen.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve serves HTTP until ctx ends, and keeps SHOW STATS's averages
// window moving. Without Listen it serves no HTTP.
func (s *Server) Serve(ctx context.Context) error {
	go s.sampleAverages(ctx)
	if s.http == nil {
		<-ctx.Done()
		return nil
	}
	s.log.Info("admin listening", "address", s.ln.Addr().String(), "tls", s.opts.TLS != nil, "basic_auth", s.opts.User != "")
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		s.http.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sampleAverages starts a new SHOW STATS averages window every
// statsPeriod, as pgbouncer does.
func (s *Server) sampleAverages(ctx context.Context) {
	t := time.NewTicker(statsPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.avg.sample(s.console.statsRows(), now)
		}
	}
}

// Handler is the admin HTTP endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Health paths answer any method: HAProxy's Patroni template checks
	// with OPTIONS, load balancers with GET or HEAD.
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "up"})
	})
	protected := http.NewServeMux()
	protected.HandleFunc("GET /{$}", s.page)
	protected.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.status())
	})
	protected.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	protected.HandleFunc("/ready", s.ready)
	for path, kind := range healthPaths { // health.go
		protected.HandleFunc(path, s.check(path, kind))
	}
	mux.Handle("/", s.auth(protected))
	return mux
}

// auth requires basic auth when a user is configured.
func (s *Server) auth(h http.Handler) http.Handler {
	if s.opts.User == "" {
		return h
	}
	wantU, wantP := sha256.Sum256([]byte(s.opts.User)), sha256.Sum256([]byte(s.opts.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotU, gotP := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		if !ok || subtle.ConstantTimeCompare(gotU[:], wantU[:])&subtle.ConstantTimeCompare(gotP[:], wantP[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="switchyard", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ready answers load balancers: 200 while discovery is fresh and a
// primary is known, else 503 with the reason.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	st := s.status()
	if !st.Ready {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": st.NotReady})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "primary": st.Primary})
}

// check answers a load balancer's check of path with Patroni's semantics
// (health.go), for the proxy as a whole: 200 when some member answers it,
// else 503; 400 for query parameters it cannot read.
func (s *Server) check(path string, kind healthKind) http.HandlerFunc {
	role := strings.TrimPrefix(path, "/")
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := parseHealthQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"role": role, "state": "bad request", "reason": err.Error()})
			return
		}
		snap := s.deps.Router.Snapshot()
		p, _ := snap.Primary()
		body := map[string]any{"role": role, "state": "running", "primary": p.Name,
			"discovery": s.deps.Discovery.Status().State}
		m, ok := serving(snap, kind, f)
		code := http.StatusOK
		if ok {
			body["member"] = m.Name
		} else {
			code, body["state"] = http.StatusServiceUnavailable, "no "+role+" available"
		}
		writeJSON(w, code, body)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
