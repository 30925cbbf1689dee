package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/testkit"
)

// A registration asked of an agent that takes the request and never
// answers ends at Register's context, so a start-up fails at its deadline
// (registerTimeout): one attempt used to wait out the client's timeout for
// blocking queries, over 40 s.
func TestRegisterEndsWithItsContextOnAHungAgent(t *testing.T) {
	client := hungAgent(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	begin := time.Now()
	_, err := Register(ctx, client, Registration{Service: "hung-register", Host: "127.0.0.1", Port: 1}, testLogger())
	if took := time.Since(begin); err == nil || took > 5*time.Second {
		t.Errorf("Register with a 2s context on a hung agent: %v after %s; want an error at the context's end", err, took.Round(100*time.Millisecond))
	}
}

// An instancer made while the agent hangs (a service starting up) does not
// wait out the client's timeout for its first answer: the gateway makes
// six, each of which held its start for over 40 s, before its
// registration, which failed only then.
func TestNewInstancerDoesNotWaitOnAHungAgent(t *testing.T) {
	client := hungAgent(t)

	begin := time.Now()
	instancer := NewInstancer(client, "hung-instancer", testLogger())
	took := time.Since(begin)
	defer instancer.Stop()
	if limit := firstAnswerTimeout + 2*time.Second; took > limit {
		t.Errorf("NewInstancer on a hung agent took %s, want at most %s", took.Round(100*time.Millisecond), limit)
	}
	ch := make(chan sd.Event, 1)
	instancer.Register(ch)
	defer instancer.Deregister(ch)
	if ev := <-ch; ev.Err == nil {
		t.Errorf("instancer of a hung agent: %+v, want its error", ev)
	}
}

// hungAgent is a client of a Consul agent of this test's own, frozen: it
// takes connections and answers nothing.
func hungAgent(t *testing.T) *api.Client {
	t.Helper()
	agent := testkit.NewConsul(t)
	client, err := NewConsulClientWithToken(agent.Addr(), agent.ManagementToken())
	if err != nil {
		t.Fatal(err)
	}
	testkit.FreezeConsul(t, agent)
	return client
}
