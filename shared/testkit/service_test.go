package testkit_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// fakeRun is a service's run in miniature: it serves /health on -http-addr,
// registered in Consul at -consul-addr as -service, until ctx is done.
func fakeRun(ctx context.Context, args []string, logs io.Writer) error {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg config.Common
	fs.StringVar(&cfg.Service, "service", "fake", "")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:0", "")
	fs.StringVar(&cfg.ConsulAddr, "consul-addr", "", "")
	token := fs.String("consul-token", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := log.NewLogfmtLogger(logs)
	logger.Log("msg", "starting", "service", cfg.Service)
	consul, err := discovery.NewConsulClientWithToken(cfg.ConsulAddr, *token)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"status":"ok"}`) })
	return discovery.ListenAndServe(ctx, cfg, consul, mux, logger)
}

func TestStartInstance(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	in := testkit.StartInstance(t, fakeRun, consulAddr, "testkit-one", "-service", "testkit-one", "-consul-addr", consulAddr)

	if in.Entry.Service.Service != "testkit-one" || in.Entry.Service.Port == 0 ||
		in.BaseURL != fmt.Sprintf("http://%s:%d", in.Entry.Service.Address, in.Entry.Service.Port) {
		t.Errorf("entry %+v, base URL %s", in.Entry.Service, in.BaseURL)
	}
	resp, err := http.Get(in.BaseURL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health: %d", resp.StatusCode)
	}
	if !strings.Contains(in.Logs.String(), "msg=starting service=testkit-one") {
		t.Errorf("logs:\n%s", in.Logs)
	}

	if err := in.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := in.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	entries, _, err := in.Consul.Health().Service("testkit-one", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("still in Consul after Stop: %s", entries[0].Service.ID)
	}
}

func TestStartInstances(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	ins := testkit.StartInstances(t, fakeRun, consulAddr, "testkit-two", 2, "-service", "testkit-two", "-consul-addr", consulAddr)
	if len(ins) != 2 || ins[0].Entry.Service.ID == ins[1].Entry.Service.ID || ins[0].BaseURL == ins[1].BaseURL {
		t.Fatalf("instances %+v and %+v", ins[0].Entry.Service, ins[1].Entry.Service)
	}
	testkit.StopInstances(t, ins...)
	entries, _, err := ins[0].Consul.Health().Service("testkit-two", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("still in Consul after StopInstances: %s", entries[0].Service.ID)
	}
}

// TestStartInstancesBesideOthers: instances started one after the other
// (with different args, say) are each the run just started, not one that
// was already passing.
func TestStartInstancesBesideOthers(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	args := []string{"-service", "testkit-beside", "-consul-addr", consulAddr}
	first := testkit.StartInstance(t, fakeRun, consulAddr, "testkit-beside", args...)
	second := testkit.StartInstance(t, fakeRun, consulAddr, "testkit-beside", args...)
	if first.Entry.Service.ID == second.Entry.Service.ID {
		t.Fatalf("the second instance got the first one's entry, %s", first.Entry.Service.ID)
	}
	testkit.StopInstances(t, first, second)
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as testing.T's does, and whose Errorf records, without
// failing the real test.
type fatalRecorder struct {
	testing.TB
	msg      string
	errors   []string
	cleanups []func()
}

func (r *fatalRecorder) Helper()          {}
func (r *fatalRecorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *fatalRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartInstanceFailsWhenRunReturnsEarly(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	failing := func(_ context.Context, _ []string, logs io.Writer) error {
		fmt.Fprintln(logs, "msg=cannot-start")
		return errors.New("boom")
	}
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testkit.StartInstance(rec, failing, consulAddr, "testkit-early")
		t.Error("StartInstance returned")
	}()
	<-done
	for i := len(rec.cleanups) - 1; i >= 0; i-- {
		rec.cleanups[i]()
	}
	if !strings.Contains(rec.msg, "run returned early: boom") || !strings.Contains(rec.msg, "msg=cannot-start") {
		t.Errorf("Fatalf message %q", rec.msg)
	}
	// The cleanup reaps the run and reports its error.
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "boom") {
		t.Errorf("Errorf messages %q", rec.errors)
	}
}
