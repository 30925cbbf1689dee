package k8spolicy

import (
	"fmt"
	"slices"
	"strings"
)

// The rules Check applies, as they appear in a Violation.
const (
	RuleProbes        = "probes"          // readiness and liveness on every long-running container; startup too on Mercato's services
	RuleResources     = "resources"       // cpu and memory requests and limits
	RuleNonRoot       = "run-as-non-root" // runAsNonRoot, in the pod's or the container's securityContext
	RuleReadOnlyRoot  = "read-only-root"  // readOnlyRootFilesystem
	RuleCapabilities  = "drop-all-capabilities"
	RulePrivilegeEsc  = "no-privilege-escalation"
	RuleSeccomp       = "seccomp" // RuntimeDefault or Localhost
	RuleImageTag      = "image-tag"
	RuleInlineSecret  = "inline-secret"
	RuleDefaultDeny   = "default-deny"
	RuleHostPath      = "no-host-path" // no hostPath volume: a pod sees the node's files only by an Exception
	serviceComponent  = "service"      // app.kubernetes.io/component of Mercato's six programs
	componentLabelKey = "app.kubernetes.io/component"
)

// Rules says which of the rules that depend on the rendering Check applies;
// the others always apply.
type Rules struct {
	// PinnedImages: every image carries a tag other than "latest", or a
	// digest. The base leaves tags to its overlays.
	PinnedImages bool
	// SecretsByReference: no Secret carries data, as in the base and an
	// overlay for a real cluster, whose secrets are made outside git.
	SecretsByReference bool
	// Exceptions are the workloads allowed what the rules forbid, each
	// named and bounded.
	Exceptions []Exception
}

// Exception lets one workload, by kind, namespace and name, mount given
// host folders read-only, and run as root if it must; every other rule
// still holds for it.
type Exception struct {
	Kind, Namespace, Name string
	// HostPaths are the hostPath volumes it may mount, each read-only in
	// every container that mounts it.
	HostPaths []string
	// Root: it may run as root (runAsNonRoot need not be true).
	Root bool
	Why  string
}

// LogCollector is the one exception Mercato's manifests need: VictoriaLogs'
// collector on every node (deploy/k8s/components/logs/vlagent.yaml) reads
// the kubelet's container logs, which are root's files in these two host
// folders, in a namespace of its own whose Pod Security is privileged.
var LogCollector = Exception{Kind: "DaemonSet", Namespace: "mercato-logs", Name: "vlagent",
	HostPaths: []string{"/var/log/containers", "/var/log/pods"}, Root: true,
	Why: "the node-level log collector reads the node's container logs"}

// exceptionFor is the exception rules make for o, if any.
func (r Rules) exceptionFor(o Object) Exception {
	for _, e := range r.Exceptions {
		if e.Kind == o.Kind && e.Namespace == o.Namespace && e.Name == o.Name {
			return e
		}
	}
	return Exception{}
}

// Violation is one rule an object breaks.
type Violation struct {
	Object    string // Kind namespace/name
	Container string // "" for the object as a whole
	Rule      string
	Detail    string
}

func (v Violation) String() string {
	where := v.Object
	if v.Container != "" {
		where += " container " + v.Container
	}
	return fmt.Sprintf("%s: %s: %s", where, v.Rule, v.Detail)
}

// Check returns every violation of rules in objs.
func Check(objs []Object, rules Rules) []Violation {
	var out []Violation
	for _, o := range objs {
		if o.Kind == "Secret" && rules.SecretsByReference {
			for _, field := range []string{"data", "stringData"} {
				if m, _ := o.Body[field].(map[string]any); len(m) > 0 {
					out = append(out, Violation{Object: o.String(), Rule: RuleInlineSecret,
						Detail: fmt.Sprintf("%s holds %d keys; reference a Secret made outside the manifests instead", field, len(m))})
				}
			}
		}
		if pod, ok := podTemplate(o); ok {
			out = append(out, checkPod(o, pod, rules)...)
		}
	}
	return append(out, checkDefaultDeny(objs)...)
}

// podTemplate returns the pod template of a workload, and its spec.
func podTemplate(o Object) (podTemplateOf, bool) {
	var path []string
	switch o.Kind {
	case "Pod":
		return podTemplateOf{meta: mapAt(o.Body, "metadata"), spec: mapAt(o.Body, "spec")}, true
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		path = []string{"spec", "template"}
	case "CronJob":
		path = []string{"spec", "jobTemplate", "spec", "template"}
	default:
		return podTemplateOf{}, false
	}
	t := mapAt(o.Body, path...)
	return podTemplateOf{meta: mapAt(t, "metadata"), spec: mapAt(t, "spec"),
		runsToCompletion: o.Kind == "Job" || o.Kind == "CronJob"}, true
}

type podTemplateOf struct {
	meta, spec       map[string]any
	runsToCompletion bool // a Job's pods: no probes to ask for
}

func checkPod(o Object, pod podTemplateOf, rules Rules) []Violation {
	var out []Violation
	add := func(container, rule, format string, args ...any) {
		out = append(out, Violation{Object: o.String(), Container: container, Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}
	podSec := mapAt(pod.spec, "securityContext")
	labels := mapAt(pod.meta, "labels")
	isService := labels[componentLabelKey] == serviceComponent
	except := rules.exceptionFor(o)
	hostPaths := checkHostPaths(pod.spec, except, func(rule, format string, args ...any) { add("", rule, format, args...) })
	for _, group := range []string{"initContainers", "containers"} {
		list, _ := pod.spec[group].([]any)
		for _, item := range list {
			c, _ := item.(map[string]any)
			name, _ := c["name"].(string)
			sec := mapAt(c, "securityContext")

			if group == "containers" && !pod.runsToCompletion {
				probes := []string{"readinessProbe", "livenessProbe"}
				if isService {
					probes = append(probes, "startupProbe")
				}
				for _, p := range probes {
					if c[p] == nil {
						add(name, RuleProbes, "no %s", p)
					}
				}
			}
			for _, kind := range []string{"requests", "limits"} {
				for _, res := range []string{"cpu", "memory"} {
					if mapAt(c, "resources", kind)[res] == nil {
						add(name, RuleResources, "no %s %s", res, kind)
					}
				}
			}
			if !effective(sec, podSec, "runAsNonRoot") && !except.Root {
				add(name, RuleNonRoot, "runAsNonRoot is not true")
			}
			mounts, _ := c["volumeMounts"].([]any)
			for _, m := range mounts {
				mount, _ := m.(map[string]any)
				if vol, _ := mount["name"].(string); hostPaths[vol] != "" && mount["readOnly"] != true {
					add(name, RuleHostPath, "mounts the host's %s (volume %s) writable", hostPaths[vol], vol)
				}
			}
			if sec["readOnlyRootFilesystem"] != true {
				add(name, RuleReadOnlyRoot, "readOnlyRootFilesystem is not true")
			}
			if drop, _ := mapAt(sec, "capabilities")["drop"].([]any); !slices.Contains(drop, any("ALL")) {
				add(name, RuleCapabilities, "capabilities.drop lacks ALL")
			}
			if sec["allowPrivilegeEscalation"] != false {
				add(name, RulePrivilegeEsc, "allowPrivilegeEscalation is not false")
			}
			if t := seccomp(sec, podSec); t != "RuntimeDefault" && t != "Localhost" {
				add(name, RuleSeccomp, "seccompProfile is %q, not RuntimeDefault", t)
			}
			image, _ := c["image"].(string)
			if rules.PinnedImages {
				if why := unpinned(image); why != "" {
					add(name, RuleImageTag, "image %q %s", image, why)
				}
			}
		}
	}
	return out
}

// checkHostPaths reports, through add, every hostPath volume of the pod
// spec that except does not allow, and returns those it allows, volume to
// host path, for their mounts to be checked read-only.
func checkHostPaths(spec map[string]any, except Exception, add func(rule, format string, args ...any)) map[string]string {
	allowed := map[string]string{}
	vols, _ := spec["volumes"].([]any)
	for _, v := range vols {
		vol, _ := v.(map[string]any)
		hp, ok := vol["hostPath"].(map[string]any)
		if !ok {
			continue
		}
		name, _ := vol["name"].(string)
		path, _ := hp["path"].(string)
		if !slices.Contains(except.HostPaths, path) {
			add(RuleHostPath, "volume %s mounts the host's %s", name, path)
			continue
		}
		allowed[name] = path
	}
	return allowed
}

// effective is a boolean securityContext field as the kubelet applies it:
// the container's, else the pod's.
func effective(container, pod map[string]any, field string) bool {
	if v, ok := container[field].(bool); ok {
		return v
	}
	v, _ := pod[field].(bool)
	return v
}

func seccomp(container, pod map[string]any) string {
	if t, ok := mapAt(container, "seccompProfile")["type"].(string); ok {
		return t
	}
	t, _ := mapAt(pod, "seccompProfile")["type"].(string)
	return t
}

// unpinned says why image is not pinned, or "" when it is: a digest, or a
// tag other than latest.
func unpinned(image string) string {
	if image == "" {
		return "is empty"
	}
	if strings.Contains(image, "@sha256:") {
		return ""
	}
	// A tag follows the last colon after the last slash (a registry's
	// host:port has its colon before it).
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	switch {
	case i < 0:
		return "has no tag (latest by default)"
	case last[i+1:] == "latest":
		return "is tagged latest"
	}
	return ""
}

// checkDefaultDeny reports every namespace with workloads that no
// NetworkPolicy denies by default, in both directions: one selecting every
// pod (an empty podSelector), with the direction in its policyTypes and no
// rule allowing anything in it.
func checkDefaultDeny(objs []Object) []Violation {
	type denied struct{ ingress, egress bool }
	deny := map[string]*denied{}
	workloads := map[string]string{} // namespace -> a workload in it, for the message
	var order []string
	for _, o := range objs {
		ns := o.Namespace
		if ns == "" {
			ns = "default"
		}
		if _, ok := podTemplate(o); ok {
			if _, seen := workloads[ns]; !seen {
				workloads[ns] = o.String()
				order = append(order, ns)
			}
		}
		if o.Kind != "NetworkPolicy" {
			continue
		}
		spec := mapAt(o.Body, "spec")
		if !selectsAll(mapAt(spec, "podSelector")) {
			continue
		}
		if deny[ns] == nil {
			deny[ns] = &denied{}
		}
		types, _ := spec["policyTypes"].([]any)
		if slices.Contains(types, any("Ingress")) && isEmpty(spec["ingress"]) {
			deny[ns].ingress = true
		}
		if slices.Contains(types, any("Egress")) && isEmpty(spec["egress"]) {
			deny[ns].egress = true
		}
	}
	var out []Violation
	for _, ns := range order {
		d := deny[ns]
		if d == nil {
			d = &denied{}
		}
		var missing []string
		if !d.ingress {
			missing = append(missing, "ingress")
		}
		if !d.egress {
			missing = append(missing, "egress")
		}
		if len(missing) > 0 {
			out = append(out, Violation{Object: "Namespace " + ns, Rule: RuleDefaultDeny,
				Detail: fmt.Sprintf("no NetworkPolicy denies %s by default (an empty podSelector, no rules), yet it runs %s", strings.Join(missing, " and "), workloads[ns])})
		}
	}
	return out
}

func selectsAll(sel map[string]any) bool {
	return isEmpty(sel["matchLabels"]) && isEmpty(sel["matchExpressions"])
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// mapAt walks m along path; a missing or non-map step gives an empty map.
func mapAt(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, _ := m[p].(map[string]any)
		m = next
	}
	if m == nil {
		return map[string]any{}
	}
	return m
}
