package localinfra

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"
)

// TestPostgresKeepsDataAcrossRestart: Stop then Start brings the server
// back on its port with its data, and a pool opened before reconnects.
func TestPostgresKeepsDataAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := StartPostgres(ctx, PostgresOptions{Dir: filepath.Join(searchableTempDir(t), "pg"), Fast: true, Password: "super-password-for-the-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrLog(t, pg) })
	if err := pg.EnsureDatabase(ctx, "shop", "shop", "shop-password"); err != nil {
		t.Fatal(err)
	}
	db := sqlx.MustConnect("postgres", pg.RoleURL("shop", "shop-password", "shop"))
	defer db.Close()
	db.MustExec(`CREATE TABLE items (id int PRIMARY KEY)`)
	db.MustExec(`INSERT INTO items VALUES (1)`)
	if err := pg.Start(ctx); err == nil {
		t.Error("Start on a running server succeeded")
	}
	port := pg.Port()
	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping succeeded after Stop")
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if pg.Port() != port {
		t.Errorf("port %d after restart, want %d", pg.Port(), port)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM items`); err != nil || n != 1 {
		t.Fatalf("rows after restart = %d, %v; want 1", n, err)
	}
}

// TestConsulRestartKeepsTokens: after Stop and Start the agent answers on
// the same address and the service tokens made before work again, so a
// service registers with the token it holds.
func TestConsulRestartKeepsTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := StartConsul(ctx, ConsulOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	tok, err := c.ServiceToken(ctx, "shop", "")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.Addr()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if c.Addr() != addr {
		t.Errorf("address %s after restart, want %s", c.Addr(), addr)
	}
	client, err := api.NewClient(&api.Config{Address: c.Addr(), Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "shop-1", Name: "shop", Port: 1}); err != nil {
		t.Fatalf("register with the token made before the restart: %v", err)
	}
	if again, err := c.ServiceToken(ctx, "shop", ""); err != nil || again != tok {
		t.Errorf("ServiceToken after restart = %q, %v; want %q", again, err, tok)
	}
}

// TestPostgresStartsAfterInitdbWasKilled: the first start's initdb dies
// with its caller (kill -9 of mercato-local, a second Ctrl-C) once it has
// begun writing the cluster; the next start must make a whole cluster, not
// fail on the half-made one.
func TestPostgresStartsAfterInitdbWasKilled(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(searchableTempDir(t), "pg")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartPostgres$") //nolint:gosec // G204: this test binary
	cmd.Env = append(os.Environ(), "LOCALINFRA_HELPER_PG_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }() // it may have been killed already
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		// initdb writes PG_VERSION first, seconds before it is done.
		if found, _ := filepath.Glob(filepath.Join(dir, "*", "PG_VERSION")); len(found) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("initdb never began writing the cluster")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// initdb dies with it (Pdeathsig); wait until nothing runs on the folder.
	for deadline := time.Now().Add(10 * time.Second); runsOn(dir); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("initdb outlived its parent")
		}
	}

	ctx := context.Background()
	pg, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Fast: true, Password: "super-password-for-the-test"})
	if err != nil {
		t.Fatalf("start after a killed initdb: %v", err)
	}
	t.Cleanup(func() { stopOrLog(t, pg) })
	if err := pg.EnsureDatabase(ctx, "shop", "shop", "shop-password"); err != nil {
		t.Fatal(err)
	}
}

func TestHelperStartPostgres(t *testing.T) {
	dir := os.Getenv("LOCALINFRA_HELPER_PG_DIR")
	if dir == "" {
		return // only runs as TestPostgresStartsAfterInitdbWasKilled's child
	}
	_, _ = StartPostgres(context.Background(), PostgresOptions{Dir: dir, Fast: true, Password: "super-password-for-the-test"})
	time.Sleep(time.Minute) // until killed
}

// runsOn reports whether a live process has dir in its command line.
func runsOn(dir string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		pid, _ := strconv.Atoi(filepath.Base(proc))
		b, err := os.ReadFile(filepath.Join(proc, "cmdline")) //nolint:gosec // G304: a /proc entry
		if err == nil && alive(pid) && strings.Contains(string(b), dir) {
			return true
		}
	}
	return false
}
