package dockerdriver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// Container names. Docker tells a network driver endpoint IDs, never the
// container's name, so users read short hex IDs in ebpfnet's ls, errors
// and metrics. The driver asks dockerd which container owns each endpoint
// and records the name (datapath.Instance.SetContainerName).
//
// Never from a request handler: dockerd holds the container's lock while
// it calls the driver, and a call back into dockerd's API from there could
// wait on that lock for ever. So a resolver goroutine looks names up after
// Join has answered, and at start for the endpoints that exist. It retries
// with backoff while dockerd does not list the endpoint yet (it does once
// the container has started) or does not answer yet (the plugin starts
// before dockerd), and gives up quietly: names are a nicety.

// containerLister is what the resolver asks (DockerAPI; a fake in tests).
type containerLister interface {
	EndpointContainers(ctx context.Context) (map[string]string, error)
}

// nameStore records names (datapath.Instance).
type nameStore interface {
	SetContainerName(owner, name string) error
}

// Resolver timing: a container is listed within a second of its Join; a
// dockerd starting with many containers may take a minute or two.
const (
	nameMinDelay = 200 * time.Millisecond
	nameMaxDelay = 5 * time.Second
	namePatience = 2 * time.Minute
)

type nameResolver struct {
	api   containerLister
	store nameStore
	log   *slog.Logger
	// minDelay to maxDelay is the backoff between passes while names are
	// missing; patience is how long one endpoint's name is looked for.
	minDelay, maxDelay, patience time.Duration

	mu      sync.Mutex
	pending map[string]time.Time // endpoint ID -> when to give up
	kick    chan struct{}        // capacity 1: a request came
}

func newNameResolver(api containerLister, store nameStore, log *slog.Logger) *nameResolver {
	return &nameResolver{
		api: api, store: store, log: log,
		minDelay: nameMinDelay, maxDelay: nameMaxDelay, patience: namePatience,
		pending: map[string]time.Time{}, kick: make(chan struct{}, 1),
	}
}

// request asks for the container names of endpoints (Docker endpoint
// IDs). It never blocks and never calls dockerd: handlers may call it.
func (r *nameResolver) request(endpointIDs ...string) {
	if len(endpointIDs) == 0 {
		return
	}
	giveUp := time.Now().Add(r.patience)
	r.mu.Lock()
	for _, id := range endpointIDs {
		r.pending[id] = giveUp
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run resolves requested names until ctx ends. The first pass waits
// minDelay after a request, so a burst of Joins costs one API call.
func (r *nameResolver) run(ctx context.Context) {
	delay := r.minDelay
	for {
		if !r.waiting() {
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
			}
			delay = r.minDelay
		}
		kicked, ok := r.sleep(ctx, delay)
		if !ok {
			return
		}
		r.pass(ctx)
		delay = min(2*delay, r.maxDelay)
		if kicked {
			delay = r.minDelay // a new endpoint is likely listed soon
		}
	}
}

func (r *nameResolver) waiting() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) > 0
}

// sleep waits d, cut to minDelay by a new request (never lengthened, so
// a stream of requests cannot starve the passes). It reports whether a
// request came, and false when ctx ended.
func (r *nameResolver) sleep(ctx context.Context, d time.Duration) (kicked, ok bool) {
	deadline := time.Now().Add(d)
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return kicked, false
		case <-t.C:
			return kicked, true
		case <-r.kick:
			kicked = true
			if soon := time.Now().Add(r.minDelay); soon.Before(deadline) {
				deadline = soon
				t.Reset(time.Until(deadline))
			}
		}
	}
}

// pass asks dockerd once, records the names of the pending endpoints it
// lists, and drops those whose patience ran out.
func (r *nameResolver) pass(ctx context.Context) {
	names, err := r.api.EndpointContainers(ctx)
	if err != nil {
		r.log.Debug("container names: docker API unavailable", "err", err)
	}
	var gaveUp []string
	now := time.Now()
	for id, giveUp := range r.snapshot() {
		if name := names[id]; name != "" {
			r.record(id, name)
			r.forget(id)
		} else if now.After(giveUp) {
			gaveUp = append(gaveUp, short(id, 12))
			r.forget(id)
		}
	}
	if len(gaveUp) > 0 {
		// One line, however many: at start every endpoint may give up.
		r.log.Info("container names unknown: ls shows endpoint IDs", "endpoints", gaveUp, "err", err)
	}
}

func (r *nameResolver) snapshot() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.pending))
	for id, t := range r.pending {
		out[id] = t
	}
	return out
}

func (r *nameResolver) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, id)
}

func (r *nameResolver) record(id, name string) {
	err := r.store.SetContainerName(id, name)
	switch {
	case errors.Is(err, datapath.ErrNotFound):
		r.log.Debug("container name of a removed endpoint", "endpoint", short(id, 12), "container", name)
	case err != nil:
		r.log.Info("container name not recorded", "endpoint", short(id, 12), "container", name, "err", err)
	default:
		r.log.Info("container name", "endpoint", short(id, 12), "container", name)
	}
}

// LookUpNames makes the driver learn its endpoints' container names from
// dockerd's API until ctx ends or the returned stop is called: those of
// the endpoints that exist now, and each new one's after its Join. Call
// it before serving requests; stop waits for the lookup to end, so call
// it before closing the instance.
func (d *Driver) LookUpNames(ctx context.Context, api *DockerAPI) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	d.names = newNameResolver(api, d.inst, d.log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.names.run(ctx)
	}()
	d.names.request(d.dockerEndpoints()...)
	return func() { cancel(); <-done }
}

// dockerEndpoints are the Docker endpoint IDs of the instance's prepared
// endpoints.
func (d *Driver) dockerEndpoints() []string {
	eps, err := d.inst.Endpoints()
	if err != nil {
		d.log.Info("container names: list endpoints", "err", err)
		return nil
	}
	var ids []string
	for _, e := range eps {
		if e.PeerName != "" && e.ContainerID != "" {
			ids = append(ids, e.ContainerID)
		}
	}
	return ids
}

// forgetName stops looking for a deleted endpoint's container (whose
// start may have failed: it will never be listed).
func (d *Driver) forgetName(endpointID string) {
	if d.names != nil {
		d.names.forget(endpointID)
	}
}

// learnName asks for the container name of a joined endpoint (a no-op
// when the driver does not look names up).
func (d *Driver) learnName(endpointID string) {
	if d.names != nil {
		d.names.request(endpointID)
	}
}
