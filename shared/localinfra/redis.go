package localinfra

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures StartRedis.
type RedisOptions struct {
	// Dir holds the append-only files; created when missing. Data written
	// there survives Stop/Start.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one (kept across
	// Stop/Start).
	Port int
	// LogFile receives the server's output; default Dir/redis.log.
	LogFile string
	// Binary is redis-server's path; default: see FindRedis.
	Binary string
	// Passwords are the ACL users' passwords, by user: one for each of
	// RedisUsers (the services' and RedisAdmin). The server refuses every
	// client that does not log in as one (the default user is off), and
	// each user may run only what PlatformAccess grants it.
	Passwords map[string]string
}

// Redis is a Redis server that can be stopped and started again on the same
// port and data folder (tests use that to check that consumers recover).
type Redis struct {
	opts RedisOptions // with defaults applied and Dir absolute
	port int

	mu   sync.Mutex
	proc *Process // nil while stopped
}

// StartRedis starts redis-server with append-only persistence, so stream
// entries survive a restart, and waits until it answers PING. ctx bounds the
// start-up only.
func StartRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	err := serverFolder("redis", "RedisOptions", &o.Dir, &o.LogFile)
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	if o.Binary == "" {
		if o.Binary, err = FindRedis(); err != nil {
			return nil, err
		}
	} else if !isExecutable(o.Binary) {
		return nil, fmt.Errorf("localinfra: redis-server %s %w; %s", o.Binary, ErrNotFound, depsHint)
	}
	acl, err := RedisACLFile(o.Passwords)
	if err != nil {
		return nil, err
	}
	// Only password hashes are in the file, and only we may read it.
	if err := writeConfig("redis", dir, redisACLFileName, acl); err != nil {
		return nil, err
	}
	var r *Redis
	err = onPort(o.Port, func(port int) (*Process, error) {
		r = &Redis{opts: o, port: port}
		err := r.Start(ctx)
		return r.proc, err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// redisACLFileName is the ACL file in RedisOptions.Dir, rewritten on every
// start from PlatformAccess.
const redisACLFileName = "users.acl"

// Options are the client options of user (one of RedisUsers) on this
// server: its address, the user and its password.
func (r *Redis) Options(user string) *redis.Options {
	return &redis.Options{Addr: r.Addr(), Username: user, Password: r.opts.Passwords[user]}
}

// Addr is the server's host:port.
func (r *Redis) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
}

// Start starts the server again after Stop, on the same port and folder,
// and waits until it has loaded its data and answers PING.
func (r *Redis) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.Exited() {
		return fmt.Errorf("localinfra: redis on %s is already running", r.Addr())
	}
	//nolint:gosec // G204: the Redis binary localinfra found, with arguments built here
	cmd := exec.Command(r.opts.Binary,
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--dir", r.opts.Dir,
		"--aclfile", filepath.Join(r.opts.Dir, redisACLFileName),
		// Events must survive restarts: log every write, fsync once a
		// second, and flush on shutdown.
		"--appendonly", "yes",
		"--appendfsync", "everysec",
		// The append-only file is the persistence; skip periodic RDB dumps.
		"--save", "",
		"--daemonize", "no",
		"--logfile", "", // stdout, which goes to LogFile
	)
	cmd.Dir = r.opts.Dir
	proc, err := startProcess("redis", r.opts.LogFile, cmd, nil)
	if err != nil {
		return err
	}
	r.proc = proc
	client := redis.NewClient(&redis.Options{
		Addr:        r.Addr(),
		Username:    RedisAdmin,
		Password:    r.opts.Passwords[RedisAdmin],
		DialTimeout: time.Second,
		ReadTimeout: time.Second,
		MaxRetries:  -1, // waitReady retries
		// Honour the probe's deadline even when something else accepted
		// the connection and never answers.
		ContextTimeoutEnabled: true,
		PoolSize:              1,
	})
	defer client.Close()
	// PING answers -LOADING until the append-only file is replayed, so
	// success means the data is back.
	return proc.waitReady(ctx, func(ctx context.Context) error { return client.Ping(ctx).Err() })
}

// Process is the server's process of its current (or last) run.
func (r *Redis) Process() *Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// Stop shuts the server down (SIGTERM: the append-only file is flushed) and
// waits for it. Stopping a stopped server is a no-op.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	return r.proc.stop(syscall.SIGTERM)
}
