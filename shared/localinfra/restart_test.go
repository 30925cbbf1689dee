package localinfra

import (
	"context"
	"path/filepath"
	"testing"

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
