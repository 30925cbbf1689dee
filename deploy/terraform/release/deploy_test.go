package release

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The AWS and Kubernetes commands scripts/aws-deploy.sh runs, as stubs:
// aws answers the deploy configuration and finds every image; kubectl
// keeps each Deployment's revision in a file, which an apply raises and a
// rollout undo returns; rollout status fails for the Deployments listed
// in $STUB/fail-rollout. Every call is logged to $STUB/calls.
const stubs = `
-- aws --
#!/usr/bin/env bash
echo "aws $*" >>"$STUB/calls"
case "$1 $2" in
"ssm get-parameter") cat "$STUB/config.json" ;;
esac
-- helm --
#!/usr/bin/env bash
echo "helm $*" >>"$STUB/calls"
-- curl --
#!/usr/bin/env bash
echo "curl $*" >>"$STUB/calls"
while (($#)); do
	if [[ $1 == -o ]]; then printf -- '-----BEGIN CERTIFICATE-----\nMIIBstub\n-----END CERTIFICATE-----\n' >"$2"; fi
	shift
done
-- kubectl --
#!/usr/bin/env bash
echo "kubectl $*" >>"$STUB/calls"
args=" $* "
case "$args" in
*" get deployment "*)
	d=$(sed -E 's/.* get deployment ([a-z]+) .*/\1/' <<<"$args")
	cat "$STUB/rev-$d" 2>/dev/null || true ;;
*" apply -f - "*) cat >/dev/null ;;
*" apply -f "*" -l "*) ;;
*" apply -f "*)
	for f in "$STUB"/rev-*; do echo $(( $(cat "$f") + 1 )) >"$f"; done ;;
*" rollout undo "*)
	d=$(sed -E 's|.* deployment/([a-z]+) .*|\1|' <<<"$args")
	sed -E 's/.*--to-revision=([0-9]+).*/\1/' <<<"$args" >"$STUB/rev-$d" ;;
*" rollout status "*)
	d=$(sed -E 's|.* deployment/([a-z]+) .*|\1|' <<<"$args")
	if grep -qx "$d" "$STUB/fail-rollout" 2>/dev/null; then echo "deployment $d exceeded its progress deadline" >&2; exit 1; fi ;;
*" create configmap "*) echo "kind: ConfigMap" ;;
esac
`

// deploy runs scripts/aws-deploy.sh against the stubs and a platform whose
// API is api; it returns the script's output, the calls and its error.
func deploy(t *testing.T, api http.Handler, failRollout ...string) (string, string, error) {
	t.Helper()
	for _, cmd := range []string{"bash", "go", "sed", "grep"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s is not on PATH; the deploy script's test needs it", cmd)
		}
	}
	stub := t.TempDir()
	for _, part := range strings.Split(stubs, "\n-- ")[1:] {
		name, body, _ := strings.Cut(part, " --\n")
		if err := os.WriteFile(filepath.Join(stub, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range Services {
		if err := os.WriteFile(filepath.Join(stub, "rev-"+s), []byte("3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(stub, "fail-rollout"), []byte(strings.Join(failRollout, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cfg := testConfig(t)
	cfg.PublicURL = srv.URL
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stub, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("bash", filepath.Join(repo, "scripts/aws-deploy.sh"), "production", "v1.2.3")
	cmd.Env = append(os.Environ(),
		"STUB="+stub,
		"PATH="+stub+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_RELEASE_DIR="+filepath.Join(t.TempDir(), "release"),
		"AWS_OVERLAY="+abs(t, "testdata/overlay"),
		"SMOKE_ATTEMPTS=1", "SMOKE_PAUSE=0s", "GITHUB_OUTPUT=",
	)
	out, err := cmd.CombinedOutput()
	calls, _ := os.ReadFile(filepath.Join(stub, "calls"))
	return string(out), string(calls), err
}

// shop answers the smoke check as a working platform does.
func shop() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/register", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"user": map[string]string{"email": body["email"]}})
	})
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": "t", "token_type": "Bearer"})
	})
	mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]string{{"name": "Mug"}}, "total": 1})
	})
	return mux
}

// TestDeployRollsBackOnFailedSmokeCheck: a release whose smoke check
// fails is rolled back, every Deployment to the revision it had, and the
// deploy fails; one that passes is recorded and rolls nothing back.
func TestDeployRollsBackOnFailedSmokeCheck(t *testing.T) {
	out, calls, err := deploy(t, shop())
	if err != nil {
		t.Fatalf("a healthy release failed to deploy: %v\n%s", err, out)
	}
	if strings.Contains(calls, "rollout undo") {
		t.Errorf("a healthy release was rolled back:\n%s", calls)
	}
	for _, want := range []string{"smoke check passed", "deployed v1.2.3 to production"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(calls, "create configmap mercato-release --from-literal=tag=v1.2.3") {
		t.Errorf("the release was not recorded:\n%s", calls)
	}

	broken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	out, calls, err = deploy(t, broken)
	if err == nil {
		t.Fatalf("a release whose smoke check fails deployed without error:\n%s", out)
	}
	for _, s := range Services {
		if !strings.Contains(calls, "rollout undo deployment/"+s+" --to-revision=3") {
			t.Errorf("deployment/%s was not rolled back to revision 3:\n%s", s, calls)
		}
	}
	if !strings.Contains(out, "the smoke check failed; rolling back") {
		t.Errorf("output does not say why it rolled back:\n%s", out)
	}
}

// TestDeployRollsBackOnFailedRollout: a Deployment that does not roll out
// rolls the release back before any smoke check.
func TestDeployRollsBackOnFailedRollout(t *testing.T) {
	out, calls, err := deploy(t, shop(), "order")
	if err == nil {
		t.Fatalf("a release whose rollout fails deployed without error:\n%s", out)
	}
	if !strings.Contains(out, "deployment/order did not roll out; rolling back") {
		t.Errorf("output does not say why it rolled back:\n%s", out)
	}
	if !strings.Contains(calls, "rollout undo deployment/order --to-revision=3") {
		t.Errorf("deployment/order was not rolled back:\n%s", calls)
	}
}
