package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func secretFlags() (*flag.FlagSet, *Common) {
	var c Common
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.SetOutput(&strings.Builder{})
	c.Register(fs, "svc", "127.0.0.1:0")
	return fs, &c
}

func TestSecretFromEnvironmentOrFile(t *testing.T) {
	key := strings.Repeat("k", 32)
	t.Setenv("MERCATO_JWT_SECRET", key)
	file := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, c := secretFlags()
	if err := parse(fs, []string{"-redis-password-file", file}, []string{"-redis-password-file", file}); err != nil {
		t.Fatal(err)
	}
	if c.JWTSecret != key || c.RedisPassword != "from-a-file" {
		t.Errorf("jwt secret %q, redis password %q", c.JWTSecret, c.RedisPassword)
	}
	// The usage text shows no secret's value, and says where it comes from.
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	if strings.Contains(usage.String(), key) || !strings.Contains(usage.String(), "MERCATO_JWT_SECRET") {
		t.Errorf("usage:\n%s", usage.String())
	}
}

// TestSecretFlagRefusedOnCommandLine: a secret on the process's own
// command line is refused in every spelling; in args alone (a test running
// a main in-process) it is taken.
func TestSecretFlagRefusedOnCommandLine(t *testing.T) {
	for _, args := range [][]string{
		{"-jwt-secret", "x"}, {"--jwt-secret", "x"}, {"-jwt-secret=x"}, {"--jwt-secret=x"},
		{"-http-addr", "127.0.0.1:0", "-database-url", "postgres://u:pw@h/db"},
	} {
		fs, _ := secretFlags()
		err := parse(fs, args, args)
		if err == nil || !strings.Contains(err.Error(), "must not be on the command line") || strings.Contains(err.Error(), "pw@") {
			t.Errorf("%q: %v, want the secret refused (and not repeated)", args, err)
		}
	}
	fs, c := secretFlags()
	if err := parse(fs, []string{"-jwt-secret", "in-process"}, []string{"-test.run", "X"}); err != nil || c.JWTSecret != "in-process" {
		t.Errorf("in-process: %v, %q", err, c.JWTSecret)
	}
	fs, _ = secretFlags()
	if err := parse(fs, []string{"-jwt-secret", "a", "-jwt-secret-file", "/nonexistent"}, nil); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("value and file: %v", err)
	}
	fs, _ = secretFlags()
	if err := parse(fs, []string{"-jwt-secret-file", "/nonexistent"}, nil); err == nil || !strings.Contains(err.Error(), "-jwt-secret-file") {
		t.Errorf("missing file: %v", err)
	}
}
