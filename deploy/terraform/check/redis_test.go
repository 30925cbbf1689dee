package check

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// TestRedisUsersMatchPlatformAccess: the ElastiCache users' access strings
// (deploy/terraform/aws/redis-acl.tf) grant each program exactly what
// localinfra.PlatformAccess does, the table make run, compose and the
// tests give their Redis: a grant added for a new feature there and
// forgotten here would fail only in production.
func TestRedisUsersMatchPlatformAccess(t *testing.T) {
	m, diags := LoadModule(filepath.Join(repo, "deploy/terraform/aws"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	attr, ok := m.Locals["redis_users"]
	if !ok {
		t.Fatal("deploy/terraform/aws declares no local redis_users")
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("local redis_users is not a literal map: %s", diags.Error())
	}
	got := map[string]string{}
	for name, s := range v.AsValueMap() {
		rules, ok := strings.CutPrefix(s.AsString(), "on -@all ")
		if !ok {
			t.Errorf("redis_users[%q] = %q does not start with \"on -@all \"", name, s.AsString())
		}
		got[name] = rules
	}

	acl, err := localinfra.RedisACLFile(localinfra.RandomRedisPasswords())
	if err != nil {
		t.Fatal(err)
	}
	// "user NAME on #HASH resetkeys resetchannels -@all RULES"
	line := regexp.MustCompile(`^user (\S+) on #[0-9a-f]+ resetkeys resetchannels -@all (.+)$`)
	want := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(acl), "\n") {
		if m := line.FindStringSubmatch(l); m != nil && m[1] != localinfra.RedisAdmin {
			want[m[1]] = m[2]
		}
	}
	if len(want) != len(localinfra.PlatformAccess()) {
		t.Fatalf("read %d users from localinfra.RedisACLFile, want %d: the file's format changed?\n%s", len(want), len(localinfra.PlatformAccess()), acl)
	}
	for name, rules := range want {
		if got[name] != rules {
			t.Errorf("redis_users[%q]:\n got  %q\n want %q (localinfra.PlatformAccess)", name, got[name], rules)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("redis_users[%q] is no program of localinfra.PlatformAccess", name)
		}
	}
}
