package discovery

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/hashicorp/consul/api"
)

// Instancer is an sd.Instancer of the passing instances of one service in
// Consul: a blocking query, held open, publishes every change. It does
// what go-kit's sd/consul.Instancer does, with two differences that decide
// how an outage of the Consul agent ends (the chaos suite, issue 16):
//
//   - Retries while the agent is unreachable back off to at most
//     maxQueryBackoff, and ask without waiting on the index the agent had
//     before. go-kit's back off up to a minute, then wait on the old index,
//     which a restarted agent reaches only when its wait time is over.
//   - An agent that comes back without the service's instances (a restarted
//     agent keeps no catalogue of its own: each instance registers again
//     within its Registrar's check, 10 s) is not believed at once. For
//     restartGrace after reconnecting, an empty answer keeps the last known
//     instances in use, so the gateway routes to them instead of answering
//     503 until they are back. A service really left with no instance gets
//     its empty list when the grace ends.
//
// While the agent is unreachable it publishes the error, and an
// sd.Endpointer built with InvalidateOnError keeps the last instances for
// that long (Options.InvalidateAfter).
type Instancer struct {
	health  *api.Health
	service string
	logger  log.Logger
	cancel  context.CancelFunc
	done    chan struct{}

	mu    sync.Mutex
	state sd.Event
	subs  map[chan<- sd.Event]struct{}
}

const (
	maxQueryBackoff = time.Second
	restartGrace    = 30 * time.Second
	// firstAnswerTimeout bounds NewInstancer's wait for its first answer,
	// which a healthy agent gives at once (no index to wait on).
	firstAnswerTimeout = 3 * time.Second
)

// NewInstancer watches the passing instances of service in Consul. Build ONE
// per upstream service and share it by all of that service's endpoints: each
// instancer holds a blocking query open against Consul. Stop it on shutdown.
func NewInstancer(client *api.Client, service string, logger log.Logger) *Instancer {
	ctx, cancel := context.WithCancel(context.Background())
	i := &Instancer{health: client.Health(), service: service, logger: log.With(logger, "upstream", service),
		cancel: cancel, done: make(chan struct{}), subs: map[chan<- sd.Event]struct{}{}}
	// The first answer comes before NewInstancer returns, as go-kit's does,
	// so the first calls find the instances; an agent that does not give
	// it soon (it hangs) is asked again by the loop, while the service
	// starts, rather than holding its start-up for the client's timeout.
	first, cancelFirst := context.WithTimeout(ctx, firstAnswerTimeout)
	entries, index, err := i.query(first, 0)
	cancelFirst()
	if err != nil {
		i.logger.Log("err", err)
		i.state = sd.Event{Err: err}
	} else {
		i.state = sd.Event{Instances: entries}
	}
	go i.loop(ctx, index, err != nil)
	return i
}

func (i *Instancer) loop(ctx context.Context, index uint64, unreachable bool) {
	defer close(i.done)
	var (
		backoff   = 10 * time.Millisecond
		graceEnds time.Time // empty answers are not believed before this
	)
	for ctx.Err() == nil {
		instances, next, err := i.query(ctx, index)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !unreachable {
				i.logger.Log("err", err)
			}
			unreachable = true
			// The agent may come back restarted, counting its index from
			// the start: a wait on the old index would block until it
			// passes that (consulWait, 30 s).
			index = 0
			i.publish(sd.Event{Err: err})
			sleep(ctx, backoff)
			backoff = min(2*backoff, maxQueryBackoff)
			continue
		}
		backoff = 10 * time.Millisecond
		if unreachable {
			unreachable = false
			graceEnds = time.Now().Add(restartGrace)
		}
		// An index that went back is a restarted agent's: start again.
		if next < index {
			index = 0
		} else {
			index = next
		}
		if len(instances) == 0 && time.Now().Before(graceEnds) {
			if last := i.lastInstances(); len(last) > 0 {
				// Back in use, clearing the error, until the grace ends: ask
				// again without waiting long, to see them register.
				i.publish(sd.Event{Instances: last})
				sleep(ctx, maxQueryBackoff)
				index = 0
				continue
			}
		}
		i.publish(sd.Event{Instances: instances})
	}
}

// query asks Consul for the passing instances, blocking until its index
// passes index (or consulWait, which the client's timeout allows for).
func (i *Instancer) query(ctx context.Context, index uint64) ([]string, uint64, error) {
	opts := (&api.QueryOptions{WaitIndex: index, WaitTime: consulWait}).WithContext(ctx)
	entries, meta, err := i.health.Service(i.service, "", true, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("consul: instances of %s: %w", i.service, err)
	}
	instances := make([]string, 0, len(entries))
	for _, e := range entries {
		addr := e.Service.Address
		if addr == "" {
			addr = e.Node.Address
		}
		instances = append(instances, net.JoinHostPort(addr, strconv.Itoa(e.Service.Port)))
	}
	slices.Sort(instances)
	return instances, meta.LastIndex, nil
}

// lastInstances are the instances of the last event that had them.
func (i *Instancer) lastInstances() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.state.Instances
}

// publish sends ev to every subscriber when it differs from the last one.
// An error keeps the instances last known, so lastInstances still has them.
func (i *Instancer) publish(ev sd.Event) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if ev.Err == nil && i.state.Err == nil && slices.Equal(ev.Instances, i.state.Instances) {
		return
	}
	if ev.Err != nil && i.state.Err != nil {
		return
	}
	if ev.Err != nil {
		ev.Instances = i.state.Instances
	}
	i.state = ev
	for ch := range i.subs {
		ch <- ev
	}
}

// Register implements sd.Instancer: ch receives the current state at once,
// then every change.
func (i *Instancer) Register(ch chan<- sd.Event) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.subs[ch] = struct{}{}
	ch <- i.state
}

// Deregister implements sd.Instancer.
func (i *Instancer) Deregister(ch chan<- sd.Event) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.subs, ch)
}

// Stop ends the watch and waits for it.
func (i *Instancer) Stop() {
	i.cancel()
	<-i.done
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
