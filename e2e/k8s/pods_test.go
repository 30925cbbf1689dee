//go:build k8s

package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mercato-dev/mercato/e2e/k8s/cluster"
)

// pod is what the test reports of a pod: whether its containers are
// ready, how often they restarted, why one waits, and how the last run
// of a restarted one ended (its message is the end of its log:
// terminationMessagePolicy FallbackToLogsOnError).
type pod struct {
	Metadata struct{ Name string }
	Status   struct {
		Phase             string
		Reason, Message   string // the pod's own: "Evicted", and why
		ContainerStatuses []struct {
			Ready        bool
			RestartCount int
			State        struct {
				Waiting *struct{ Reason, Message string }
			}
			LastState struct {
				Terminated *struct {
					ExitCode int
					Message  string
				}
			}
		}
	}
}

// pods lists the pods of namespace ns.
func pods(ctx context.Context, c *cluster.Cluster, ns string) ([]pod, error) {
	out, err := c.Kubectl(ctx, "-n", ns, "get", "pods", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct{ Items []pod }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get pods: %w", err)
	}
	return list.Items, nil
}

// restarts is how often p's containers restarted.
func (p pod) restarts() int {
	n := 0
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

// ready says whether every container of p is ready.
func (p pod) ready() bool {
	for _, s := range p.Status.ContainerStatuses {
		if !s.Ready {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) > 0
}

// String is one line of p: name, phase, readiness, restarts, why it
// waits and the last lines its last run logged.
func (p pod) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, ready %t, %d restarts", p.Metadata.Name, p.Status.Phase, p.ready(), p.restarts())
	if p.Status.Reason != "" {
		fmt.Fprintf(&b, ", %s: %s", p.Status.Reason, p.Status.Message)
	}
	for _, s := range p.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil {
			fmt.Fprintf(&b, ", waiting: %s %s", w.Reason, tail(w.Message, 1))
		}
		if t := s.LastState.Terminated; t != nil {
			fmt.Fprintf(&b, ", last run exited %d: %s", t.ExitCode, strings.ReplaceAll(tail(t.Message, 3), "\n", " | "))
		}
	}
	return b.String()
}

// podLines is a line of each pod of ns that keep keeps, or what stopped
// the listing.
func podLines(ctx context.Context, c *cluster.Cluster, ns string, keep func(pod) bool) string {
	all, err := pods(ctx, c, ns)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, p := range all {
		if keep(p) {
			lines = append(lines, p.String())
		}
	}
	return strings.Join(lines, "\n")
}

// restarted keeps the pods whose containers restarted.
func restarted(p pod) bool { return p.restarts() > 0 }

// unwell keeps the pods that restarted or are not ready (a Job's done pod
// aside).
func unwell(p pod) bool { return restarted(p) || (!p.ready() && p.Status.Phase != "Succeeded") }
