package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/localinfra"
)

// secrets are the credentials of one local platform. Each comes from its
// MERCATO_* variable when set, else from its file in .local/secrets, which
// the first start generates (random, the folder 0700 and every file 0600:
// only this user, and root, can read them). They reach the processes in
// their environment, never on a command line (ps shows those to every
// user) nor in a log.
type secrets struct {
	dir           string // .local/secrets
	jwtSecret     string
	webhookSecret string // signs the sandbox payment provider's webhooks
	hashKey       string // keys the order service's hashes of Idempotency-Key requests
	adminEmail    string
	adminPassword string
	// postgresPassword is the PostgreSQL superuser's, which only creates
	// the roles and databases.
	postgresPassword string
	// dbPasswords are the passwords of the services' PostgreSQL roles, by
	// database (each role is named like the database it owns).
	dbPasswords map[string]*string
	// redisPasswords are the passwords of Redis's ACL users, by user (each
	// service's, named like it, and localinfra.RedisAdmin's).
	redisPasswords map[string]*string
	// consulTokens are the secrets of Consul's ACL tokens, by name: the
	// management (bootstrap) token, one per service, and Prometheus's
	// read-only one (see consulTokenNames).
	consulTokens map[string]*string
	fromEnv      map[string]bool // by file name: given in the environment
}

// secretSpec is one secret: its file in .local/secrets, the variable that
// overrides it, and its length rule.
type secretSpec struct {
	file, env      string
	minLen, maxLen int
	randomBytes    int // generated: hex of this many random bytes
	field          func(*secrets) *string
	uuid           bool // generated and checked as a UUID (Consul's token secrets)
}

var secretSpecs = []secretSpec{
	{"jwt-secret", "MERCATO_JWT_SECRET", 32, 0, 32, func(s *secrets) *string { return &s.jwtSecret }, false},
	{"webhook-secret", "MERCATO_WEBHOOK_SECRET", 32, 0, 32, func(s *secrets) *string { return &s.webhookSecret }, false},
	{"idempotency-hash-key", "MERCATO_IDEMPOTENCY_HASH_KEY", 32, 0, 32, func(s *secrets) *string { return &s.hashKey }, false},
	// 8 to 72 bytes: the user service's password rule.
	{"admin-password", "MERCATO_ADMIN_PASSWORD", 8, 72, 16, func(s *secrets) *string { return &s.adminPassword }, false},
	{"postgres-password", "", 16, 0, 24, func(s *secrets) *string { return &s.postgresPassword }, false},
}

// passwordSpec is a generated password kept in file, held in the map of
// secrets that in returns, under key.
func passwordSpec(file string, in func(*secrets) map[string]*string, key string) secretSpec {
	return secretSpec{file: file, minLen: 16, randomBytes: 24,
		field: func(s *secrets) *string {
			m := in(s)
			if m[key] == nil {
				m[key] = new(string)
			}
			return m[key]
		}}
}

// dbPasswordSpec is the secret of database db's role.
func dbPasswordSpec(db string) secretSpec {
	return passwordSpec("postgres-"+db+"-password", func(s *secrets) map[string]*string { return s.dbPasswords }, db)
}

// redisPasswordSpec is the secret of Redis ACL user u.
func redisPasswordSpec(u string) secretSpec {
	return passwordSpec("redis-"+u+"-password", func(s *secrets) map[string]*string { return s.redisPasswords }, u)
}

// consulTokenSpec is the secret of Consul token name.
func consulTokenSpec(name string) secretSpec {
	spec := passwordSpec("consul-"+name+"-token", func(s *secrets) map[string]*string { return s.consulTokens }, name)
	spec.minLen, spec.uuid = 36, true
	return spec
}

// Consul tokens beyond the services' own.
const (
	consulManagement = "management" // the bootstrap token: mercato-local's own, and the agent's
	consulPrometheus = "prometheus" // reads the catalogue
)

// consulTokenNames are the Consul tokens a platform has.
func consulTokenNames() []string {
	names := []string{consulManagement, consulPrometheus, gateway.name}
	return append(names, knownServiceNames()...)
}

// consulToken is the secret of Consul token name.
func (s secrets) consulToken(name string) string { return defaults.Deref(s.consulTokens[name]) }

// dbPassword is the password of database db's role.
func (s secrets) dbPassword(db string) string { return defaults.Deref(s.dbPasswords[db]) }

// redisPassword is the password of Redis ACL user u.
func (s secrets) redisPassword(u string) string { return defaults.Deref(s.redisPasswords[u]) }

// redisPasswordMap is every Redis ACL user's password, for the server.
func (s secrets) redisPasswordMap() map[string]string {
	m := map[string]string{}
	for u, p := range s.redisPasswords {
		m[u] = *p
	}
	return m
}

// loadSecrets returns the platform's secrets: from env where it has them,
// else from dir, generating the missing files.
func loadSecrets(dir string, env func(string) string) (secrets, error) {
	s := secrets{dir: dir, adminEmail: adminEmail, fromEnv: map[string]bool{},
		dbPasswords: map[string]*string{}, redisPasswords: map[string]*string{}, consulTokens: map[string]*string{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return s, err
	}
	// An existing folder may have been made with looser rights.
	if err := os.Chmod(dir, 0o700); err != nil { //nolint:gosec // G302: a folder needs x to be entered; 0700 is owner-only
		return s, err
	}
	specs := slices.Clone(secretSpecs)
	for _, db := range databases {
		specs = append(specs, dbPasswordSpec(db))
	}
	for _, u := range localinfra.RedisUsers() {
		specs = append(specs, redisPasswordSpec(u))
	}
	for _, name := range consulTokenNames() {
		specs = append(specs, consulTokenSpec(name))
	}
	for _, spec := range specs {
		v, fromEnv, err := spec.load(dir, env)
		if err != nil {
			return s, err
		}
		*spec.field(&s) = v
		s.fromEnv[spec.file] = fromEnv
	}
	return s, nil
}

func (spec secretSpec) load(dir string, env func(string) string) (value string, fromEnv bool, err error) {
	if v := env(spec.env); spec.env != "" && v != "" {
		return v, true, spec.check(v, spec.env+" ")
	}
	path := filepath.Join(dir, spec.file)
	b, err := os.ReadFile(path) //nolint:gosec // G304: a file of .local/secrets
	switch {
	case err == nil:
		v := strings.TrimRight(string(b), "\r\n")
		return v, false, spec.check(v, path+" ")
	case !errors.Is(err, os.ErrNotExist):
		return "", false, err
	}
	raw := make([]byte, spec.randomBytes)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails on Linux
	v := hex.EncodeToString(raw)
	if spec.uuid {
		v = uuid.NewString()
	}
	// O_EXCL: never overwrite a secret another start wrote meanwhile.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) //nolint:gosec // G304: a file of .local/secrets
	if err != nil {
		return "", false, err
	}
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return "", false, err
	}
	return v, false, f.Close()
}

func (spec secretSpec) check(v, where string) error {
	if len(v) < spec.minLen || (spec.maxLen > 0 && len(v) > spec.maxLen) {
		rule := fmt.Sprintf("at least %d bytes", spec.minLen)
		if spec.maxLen > 0 {
			rule = fmt.Sprintf("%d to %d bytes", spec.minLen, spec.maxLen)
		}
		return fmt.Errorf("%smust be %s (it has %d); unset it or delete the file to generate one", where, rule, len(v))
	}
	if _, err := uuid.Parse(v); spec.uuid && err != nil {
		return fmt.Errorf("%smust be a UUID; delete the file to generate one", where)
	}
	return nil
}

// where says where a secret is, for the banner.
func (s secrets) where(file string) string {
	for _, spec := range secretSpecs {
		if spec.file == file && s.fromEnv[file] {
			return "from " + spec.env
		}
	}
	return filepath.Join(s.dir, file)
}

// forgetSecretOverrides removes the secrets' variables from our
// environment, which every process we start inherits: each gets only the
// secrets it is given.
func forgetSecretOverrides() {
	for _, s := range secretSpecs {
		if s.env != "" {
			_ = os.Unsetenv(s.env) // fails only for a name with '=' or NUL
		}
	}
}
