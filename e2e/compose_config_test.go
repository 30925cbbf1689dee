package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/localinfra"
)

// TestComposeFile loads docker-compose.yml with compose-go, the library
// docker compose itself uses (so its schema and interpolation), every
// profile enabled, and checks what the containers issue asks of it. That
// the stack really runs is make compose-test's (e2e/compose).
func TestComposeFile(t *testing.T) {
	root, project := loadCompose(t)

	// Every program of the repository is built from the root Dockerfile.
	programs := map[string]bool{}
	for _, svc := range services {
		programs[strings.TrimPrefix(filepath.Base(svc), "./")] = false
	}
	standins := standinImages(t, root)
	secretNames := generatedComposeSecrets(t)
	oneShots := map[string]bool{}
	for _, s := range project.Services {
		for name, dep := range s.DependsOn {
			if dep.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShots[name] = true
			}
		}
	}
	secretEnv := regexp.MustCompile(`(SECRET|PASSWORD|TOKEN|KEY|DATABASE_URL)`)
	// The log store's image is distroless: nothing in it can probe its
	// /health, so compose counts it up once it runs.
	noProbe := map[string]bool{"victoria-logs": true}
	syslogAddr := ""
	for _, p := range project.Services["victoria-logs"].Ports {
		if p.Protocol == "udp" && p.Target == 5514 && p.HostIP == "127.0.0.1" {
			syslogAddr = "udp://127.0.0.1:" + p.Published
		}
	}
	if syslogAddr == "" {
		t.Errorf("victoria-logs publishes no syslog port 5514/udp on 127.0.0.1 (%+v), where dockerd can send", project.Services["victoria-logs"].Ports)
	}
	for name, s := range project.Services {
		checkLogging(t, name, s, syslogAddr)
		if oneShots[name] {
			if s.Restart != types.RestartPolicyNo {
				t.Errorf("%s: a one-shot others wait to complete has restart %q, want \"no\"", name, s.Restart)
			}
		} else {
			if noProbe[name] != (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
				t.Errorf("%s: health check %v; want one on every long-running container but %v", name, s.HealthCheck, noProbe)
			}
			if s.Restart == "" || s.Restart == types.RestartPolicyNo {
				t.Errorf("%s: restart policy %q, want one that restarts", name, s.Restart)
			}
			if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0 {
				t.Errorf("%s: no memory limit", name)
			}
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy && d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s: depends on %s with condition %q, want service_healthy (or completed, for a one-shot)", name, dep, d.Condition)
			}
		}
		if !slices.Contains(standins, s.Image) && !strings.HasPrefix(s.Image, "mercato/") {
			t.Errorf("%s: image %s is not in deploy/standins/images.txt", name, s.Image)
		}
		for k, v := range s.Environment {
			if secretEnv.MatchString(k) && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s: %s in the environment holds a secret; give it as a compose secret and %s_FILE", name, k, k)
			}
			if v != nil && strings.HasPrefix(*v, "/run/secrets/") {
				secret := strings.TrimPrefix(*v, "/run/secrets/")
				if !slices.ContainsFunc(s.Secrets, func(c types.ServiceSecretConfig) bool { return c.Source == secret }) {
					t.Errorf("%s: %s=%s, but the service is not given the secret %s", name, k, *v, secret)
				}
			}
		}
		if s.Build != nil {
			program := ""
			if v := s.Build.Args["SERVICE"]; v != nil {
				program = *v
			}
			if _, ok := programs[program]; !ok {
				t.Errorf("%s: built with SERVICE=%q, which is not a program (%v)", name, program, programs)
				continue
			}
			programs[program] = true
			if s.Build.Context != root || (s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile") {
				t.Errorf("%s: built from %s/%s, want the root Dockerfile", name, s.Build.Context, s.Build.Dockerfile)
			}
			if s.Image != "mercato/"+program+":latest" {
				t.Errorf("%s: image %s, want mercato/%s:latest (what make images tags)", name, s.Image, program)
			}
			if program != "gateway" && (s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != 2) {
				t.Errorf("%s: want two replicas", name)
			}
			// docker stops a container with SIGTERM and, 10 s later by
			// default, SIGKILL: the instance's drain needs longer.
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= discovery.MaxShutdown {
				t.Errorf("%s: stop_grace_period %v, want more than an instance's shutdown, %s (discovery.MaxShutdown)", name, s.StopGracePeriod, discovery.MaxShutdown)
			}
		}
	}
	for program, built := range programs {
		if !built {
			t.Errorf("no compose service runs %s", program)
		}
	}
	for name, sec := range project.Secrets {
		rel, err := filepath.Rel(filepath.Join(root, ".local/compose/secrets"), sec.File)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("secret %s: file %s is not in .local/compose/secrets", name, sec.File)
			continue
		}
		if !slices.Contains(secretNames, rel) {
			t.Errorf("secret %s: mercato-local -compose-secrets makes no %s", name, rel)
		}
	}
	for _, image := range dockerfileImages(t, root) {
		if !slices.Contains(standins, image) {
			t.Errorf("the Dockerfile's base image %s is not in deploy/standins/images.txt", image)
		}
	}
}

// checkLogging: every container but the log store sends its output to
// the log store's syslog port, over UDP, through a buffer, so that neither
// a slow nor a stopped store can hold it up (docker-compose.yml's
// x-logging); the log store logs where Docker does by default, never to
// itself.
func checkLogging(t *testing.T, name string, s types.ServiceConfig, syslogAddr string) {
	t.Helper()
	if name == "victoria-logs" {
		if s.Logging != nil && s.Logging.Driver != "" {
			t.Errorf("%s: logging driver %q, want Docker's default (it would log to itself)", name, s.Logging.Driver)
		}
		return
	}
	want := map[string]string{"syslog-address": syslogAddr, "syslog-format": "rfc5424micro",
		"tag": "{{.Name}}", "mode": "non-blocking"}
	if s.Logging == nil || s.Logging.Driver != "syslog" {
		t.Errorf("%s: logging %+v, want the syslog driver to VictoriaLogs (x-logging)", name, s.Logging)
		return
	}
	for k, v := range want {
		if s.Logging.Options[k] != v {
			t.Errorf("%s: logging option %s=%q, want %q", name, k, s.Logging.Options[k], v)
		}
	}
}

// standinImages lists the images of deploy/standins/images.txt.
// loadCompose loads docker-compose.yml, every profile enabled, and returns
// it and the repository root it sits in.
func loadCompose(t *testing.T) (string, *types.Project) {
	t.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithProfiles([]string{"*"}), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go cannot load docker-compose.yml: %v", err)
	}
	return root, project
}

func standinImages(t *testing.T, root string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "deploy/standins/images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var images []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 && !strings.HasPrefix(fields[0], "#") {
			images = append(images, fields[0])
		}
	}
	return images
}

// dockerfileImages lists the defaults of the Dockerfile's *_IMAGE arguments.
func dockerfileImages(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var images []string
	for _, m := range regexp.MustCompile(`(?m)^ARG [A-Z_]+_IMAGE=(\S+)`).FindAllStringSubmatch(string(b), -1) {
		images = append(images, m[1])
	}
	if len(images) != 2 {
		t.Fatalf("the Dockerfile names %d base images (%v), want its build and runtime ones", len(images), images)
	}
	return images
}

// generatedComposeSecrets runs mercato-local -compose-secrets into a
// temporary folder and lists the secret files it made.
func generatedComposeSecrets(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	if err := build(dir, "./shared/cmd/mercato-local"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(dir, "mercato-local"), "-compose-secrets", filepath.Join(dir, "compose")).CombinedOutput()
	if err != nil {
		t.Fatalf("mercato-local -compose-secrets: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "compose", "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
