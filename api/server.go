package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/internal/unixsock"
)

// Backend does what the API asks. InstanceBackend is the plain one; the
// daemon's also allocates and releases overlay addresses in the cluster.
type Backend interface {
	Attach(ctx context.Context, o datapath.AttachOptions) (datapath.Endpoint, error)
	Detach(ctx context.Context, target string) (datapath.Endpoint, error)
	Endpoints() ([]datapath.Endpoint, error)
	Inspect(target string) (datapath.EndpointDetail, error)
}

// InstanceBackend serves the API from an open instance.
type InstanceBackend struct{ *datapath.Instance }

func (b InstanceBackend) Attach(_ context.Context, o datapath.AttachOptions) (datapath.Endpoint, error) {
	return b.Instance.Attach(o)
}

func (b InstanceBackend) Detach(_ context.Context, target string) (datapath.Endpoint, error) {
	return b.Instance.Detach(target)
}

// maxBody bounds a request body: an attach is a few hundred bytes, and a
// port list long enough to matter is ranges, not single ports.
const maxBody = 1 << 20

// Handler serves the API from b.
func Handler(b Backend, log *slog.Logger) http.Handler {
	s := &server{b: b, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Version+"/ping", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("OK")) })
	mux.HandleFunc("GET "+Version+"/endpoints", s.list)
	mux.HandleFunc("GET "+Version+"/endpoints/{name}", s.inspect)
	mux.HandleFunc("POST "+Version+"/endpoints", s.attach)
	mux.HandleFunc("DELETE "+Version+"/endpoints/{name}", s.detach)
	return mux
}

type server struct {
	b   Backend
	log *slog.Logger
	// mu serializes changes: the store's lock would too, but step times
	// are counted per process, and one change at a time keeps each
	// request's own.
	mu sync.Mutex
}

func (s *server) list(w http.ResponseWriter, _ *http.Request) {
	eps, err := s.b.Endpoints()
	s.reply(w, http.StatusOK, eps, err)
}

func (s *server) inspect(w http.ResponseWriter, r *http.Request) {
	d, err := s.b.Inspect(r.PathValue("name"))
	s.reply(w, http.StatusOK, d, err)
}

func (s *server) attach(w http.ResponseWriter, r *http.Request) {
	var req AttachRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.reply(w, 0, nil, &Error{http.StatusBadRequest, "malformed attach request: " + err.Error()})
		return
	}
	o, err := req.Options()
	if err != nil {
		s.reply(w, 0, nil, &Error{http.StatusBadRequest, err.Error()})
		return
	}
	s.change(w, http.StatusCreated, func() (any, error) { return s.b.Attach(r.Context(), o) })
}

func (s *server) detach(w http.ResponseWriter, r *http.Request) {
	s.change(w, http.StatusOK, func() (any, error) { return s.b.Detach(r.Context(), r.PathValue("name")) })
}

// change runs one change at a time, with its step times in a header.
func (s *server) change(w http.ResponseWriter, status int, fn func() (any, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if datapath.StepTimesOn() {
		datapath.TakeStepTimes() // the background loop's, not this request's
	}
	v, err := fn()
	if datapath.StepTimesOn() {
		us := map[string]float64{}
		for _, st := range datapath.TakeStepTimes() {
			us[st.Name] = float64(st.Took.Nanoseconds()) / 1e3
		}
		raw, _ := json.Marshal(us)
		w.Header().Set(StepsHeader, string(raw))
	}
	s.reply(w, status, v, err)
}

func (s *server) reply(w http.ResponseWriter, status int, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var e *Error
		switch {
		case errors.As(err, &e):
		case errors.Is(err, datapath.ErrNotFound):
			e = &Error{http.StatusNotFound, err.Error()}
		case errors.Is(err, datapath.ErrExists):
			e = &Error{http.StatusConflict, err.Error()}
		default:
			e = &Error{http.StatusInternalServerError, err.Error()}
		}
		if e.Status >= 500 {
			s.log.Warn("API request failed", "err", err)
		}
		w.WriteHeader(e.Status)
		json.NewEncoder(w).Encode(e)
		return
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Options checks the request and gives it in datapath's form; an error
// means it is invalid and nothing was done.
func (req AttachRequest) Options() (datapath.AttachOptions, error) {
	var o datapath.AttachOptions
	if req.Target == "" {
		return o, errors.New("target: the network namespace to attach (name, path or PID) is missing")
	}
	network := req.Network
	if network == "" {
		network = string(datapath.ModeBridge)
	}
	m, err := datapath.ParseNetworkMode(network)
	if err != nil {
		return o, err
	}
	if m.Mode != datapath.ModeBridge && m.Mode != datapath.ModeNone {
		return o, fmt.Errorf("network %q: attach takes bridge, none or a network's name", network)
	}
	if req.IP != "" {
		if _, err := netip.ParseAddr(req.IP); err != nil {
			return o, fmt.Errorf("ip %q: not an IP address", req.IP)
		}
	}
	if req.IP6 != "" {
		if a, err := netip.ParseAddr(req.IP6); err != nil || !a.Is6() {
			return o, fmt.Errorf("ip6 %q: not an IPv6 address", req.IP6)
		}
	}
	if o.PortRequests, err = ports.ParseSpecs(req.Publish); err != nil {
		return o, err
	}
	o.DNSOptions = datapath.DNSOptions{Aliases: req.Aliases, ExtraHosts: req.ExtraHosts}
	for _, s := range req.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return o, fmt.Errorf("dns %q: not an IP address", s)
		}
		o.DNS = append(o.DNS, a)
	}
	if err := datapath.CheckDNSOptions(o.DNSOptions); err != nil {
		return o, err
	}
	o.Mode, o.Network, o.Target, o.Name, o.IP, o.IP6 = m.Mode, m.Network, req.Target, req.Name, req.IP, req.IP6
	return o, nil
}

// Listen makes the API's Unix socket at path, readable and writable by its
// owner (root) only: the API changes the host's network. A socket left by
// a daemon that died is replaced; one a running daemon answers on is not.
func Listen(path string) (net.Listener, error) {
	ln, err := unixsock.Listen(path)
	if errors.Is(err, unixsock.ErrInUse) {
		return nil, fmt.Errorf("API socket %s: another daemon serves it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("API socket: %w", err)
	}
	return ln, nil
}
