package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// A secret setting (a key, a password, a URL holding one) has three ways
// in, so that its value never has to be on a command line, where every user
// of the host sees it (ps, /proc/PID/cmdline), nor in a log:
//
//   - the environment, MERCATO_<NAME> (the usual flag fallback);
//   - a file, -<name>-file PATH (or MERCATO_<NAME>_FILE), whose content,
//     without a trailing newline, is the value: a mounted Kubernetes or
//     compose secret, or `make run`'s .local/secrets;
//   - the flag -<name> itself, for tests that run a main in-process only:
//     Parse refuses it when it is on the process's own command line.
//
// SecretVar declares one; Parse resolves the files and enforces the rule.

// secretValue is the -<name> flag of a secret.
type secretValue struct{ p *string }

func (v secretValue) String() string {
	if v.p == nil || *v.p == "" {
		return ""
	}
	return "(secret)"
}

func (v secretValue) Set(s string) error { *v.p = s; return nil }

// secretFile is the -<name>-file flag of a secret.
type secretFile struct {
	name string // the secret's flag
	path string
}

func (f *secretFile) String() string     { return f.path }
func (f *secretFile) Set(s string) error { f.path = s; return nil }

// SecretVar declares the secret setting name on fs, stored in p: the flags
// -<name> (tests only, see above) and -<name>-file, each with its MERCATO_*
// variable.
func SecretVar(fs *flag.FlagSet, p *string, name, usage string) {
	fs.Var(secretValue{p}, name, usage+"; set "+EnvName(name)+" or -"+name+"-file (a flag on the command line is refused: ps shows it)")
	fs.Var(&secretFile{name: name}, name+"-file", "file holding -"+name+" (trailing newline ignored)")
}

// EnvName is the environment variable of flag name: MERCATO_JWT_SECRET for
// jwt-secret.
func EnvName(name string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// resolveSecrets reads the secrets given as files and refuses secrets given
// as flags on cmdline, the process's own command line.
func resolveSecrets(fs *flag.FlagSet, cmdline []string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		switch v := f.Value.(type) {
		case secretValue:
			if onCommandLine(cmdline, f.Name) {
				errs = append(errs, fmt.Errorf("-%s is a secret and must not be on the command line, where every user of the host sees it: set %s, or -%s-file", f.Name, EnvName(f.Name), f.Name))
			}
		case *secretFile:
			if v.path == "" {
				return
			}
			target := fs.Lookup(v.name).Value.(secretValue)
			if *target.p != "" {
				errs = append(errs, fmt.Errorf("-%s and -%s-file both set: give one", v.name, v.name))
				return
			}
			b, err := os.ReadFile(v.path)
			if err != nil {
				errs = append(errs, fmt.Errorf("-%s-file: %w", v.name, err))
				return
			}
			*target.p = strings.TrimRight(string(b), "\r\n")
		}
	})
	return errors.Join(errs...)
}

// onCommandLine reports whether flag name is in args, in any of the flag
// package's spellings (-name, --name, -name=v, --name=v), before a "--".
func onCommandLine(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		a, _, _ = strings.Cut(a, "=")
		if a == name {
			return true
		}
	}
	return false
}
