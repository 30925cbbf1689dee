package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// The compose platform (docker-compose.yml) has the same secrets as a local
// one, kept in a folder of their own: -compose-secrets writes them, and what
// derives from them, where the compose file's `secrets:` expect them.
//
//	<dir>/secrets/           every secret of secrets.go, plus
//	    <service>-database-url   the service role's URL on the compose network
//	    redis-acl                Redis's ACL file (localinfra.RedisACLFile)
//	    consul-acl.hcl           the Consul server's ACL settings
//	    alertmanager.yml         Alertmanager's configuration, from the
//	                             repository's template: Mailpit unless
//	                             MERCATO_ALERT_* says otherwise (alerting.go)
//	<dir>/consul-policies/   one policy per token, for consul-init
//	    (deploy/compose/consul-init.sh): service-<name>.hcl, catalogue-read.hcl
//
// The secrets folder is 0700, the files in it 0644, since compose
// bind-mounts each into containers whose processes run as users of their
// own (nonroot, postgres, redis, consul, nobody). The policies are no
// secret: their folder is mounted whole, 0755.

// Where the compose network's servers are (docker-compose.yml).
const (
	composePostgres = "postgres:5432"
)

// writeComposeSecrets generates the missing secrets into dir/secrets, then
// (re)writes the files that derive from them. root is the repository's.
func writeComposeSecrets(root, dir string, out io.Writer) error {
	secretsDir := filepath.Join(dir, "secrets")
	s, err := loadSecrets(secretsDir, func(string) string { return "" })
	if err != nil {
		return err
	}
	derived := map[string]string{}
	for _, svc := range append([]serviceSpec{gateway}, services...) {
		if svc.db != "" {
			derived[svc.name+"-database-url"] = fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable",
				svc.db, s.dbPassword(svc.db), composePostgres, svc.db)
		}
	}
	if derived["redis-acl"], err = localinfra.RedisACLFile(s.redisPasswordMap()); err != nil {
		return err
	}
	// The agent's own token is the management one: with default deny it
	// needs one to register its node.
	mgmt := s.consulToken(consulManagement)
	derived["consul-acl.hcl"] = fmt.Sprintf("acl {\n  enabled = true\n  default_policy = \"deny\"\n  enable_token_persistence = true\n  tokens {\n    initial_management = %q\n    agent = %q\n  }\n}\n", mgmt, mgmt)
	am, err := renderAlertmanagerConfig(root, composeReceiver)
	if err != nil {
		return err
	}
	derived["alertmanager.yml"] = string(am)
	for name, content := range derived {
		if err := os.WriteFile(filepath.Join(secretsDir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}

	policies := map[string]string{"catalogue-read": localinfra.ConsulReadPolicy}
	for _, name := range consulTokenNames() {
		if name != consulManagement && name != consulPrometheus {
			policies["service-"+name] = localinfra.ConsulPolicy(name)
		}
	}
	policyDir := filepath.Join(dir, "consul-policies")
	if err := os.MkdirAll(policyDir, 0o755); err != nil { //nolint:gosec // G301: no secret in it; mounted into a container running as another user
		return err
	}
	if err := os.Chmod(policyDir, 0o755); err != nil { //nolint:gosec // G302: as above
		return err
	}
	for name, rules := range policies {
		if err := os.WriteFile(filepath.Join(policyDir, name+".hcl"), []byte(rules), 0o600); err != nil {
			return err
		}
	}

	// Readable inside the containers; the 0700 folders keep them from
	// other users of this host.
	entries, err := os.ReadDir(secretsDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Chmod(filepath.Join(secretsDir, e.Name()), 0o644); err != nil { //nolint:gosec // G302: bind-mounted into containers that run as other users; the folder is 0700
			return err
		}
	}
	for name := range policies {
		if err := os.Chmod(filepath.Join(policyDir, name+".hcl"), 0o644); err != nil { //nolint:gosec // G302: as above
			return err
		}
	}
	fmt.Fprintf(out, "==> compose secrets in %s (%d files), Consul policies in %s\n", secretsDir, len(entries), policyDir)
	return nil
}
