package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestFlags: -h says what runs and exits 0; bad flags exit 2 before
// anything starts.
func TestFlags(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-h"}, &out, &errs); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"two gateways", "SIGKILL", "SIGSTOP", "Consul", "SMTP", "-rate", "-short"} {
		if !strings.Contains(errs.String(), want) {
			t.Errorf("help does not mention %q", want)
		}
	}
	for _, args := range [][]string{{"-rate", "0"}, {"-rate", "1000"}, {"extra"}, {"-nope"}} {
		if code := run(args, &out, &errs); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
