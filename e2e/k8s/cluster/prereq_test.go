package cluster

import (
	"os"
	"strings"
	"testing"
)

func TestStartNamesWhatIsMissing(t *testing.T) {
	_, err := Start(t.Context(), Config{Dir: t.TempDir(), BinDir: t.TempDir()})
	if err == nil {
		t.Fatal("Start with an empty bin folder succeeded")
	}
	want := "run scripts/build-k8s.sh"
	if os.Geteuid() != 0 {
		want = "needs root"
	}
	if msg := err.Error(); !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
}
