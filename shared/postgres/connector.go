package postgres

import (
	"context"
	"database/sql/driver"
	"net"
	"sync"
	"time"

	"github.com/lib/pq"
)

// connector opens the pool's lib/pq connections so that every call on
// them ends when its context does, even on a server that takes requests
// and never answers (a frozen process or host). lib/pq reacts to a context
// that ends by sending the server a cancel request, on a connection of its
// own, and goes on waiting for the reply, which such a server never sends:
// a query, a ping, a connection's start-up all hung until it came back,
// whatever their deadline, and with them /ready, the start-up timeout and
// the shutdown that waits for the background loops.
type connector struct{ cfg pq.Config }

// Connect opens one connection with a dialer of its own (socketDialer),
// which ends the wait for the server when ctx ends while connecting, and
// when lib/pq later cancels a call.
func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	pc, err := pq.NewConnectorConfig(c.cfg.Clone())
	if err != nil {
		return nil, err
	}
	d := &socketDialer{}
	pc.Dialer(d)
	stop := context.AfterFunc(ctx, func() { d.expire(0) })
	conn, err := pc.Connect(ctx)
	if !stop() && err == nil {
		// The socket's deadline may have passed mid-handshake.
		_ = conn.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	d.opened()
	if c, ok := conn.(pqConn); ok {
		return beginWatched{c, d}, nil
	}
	return conn, nil
}

func (connector) Driver() driver.Driver { return pq.Driver{} }

// pqConn is what database/sql uses of a lib/pq connection.
type pqConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.NamedValueChecker
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// beginWatched is a lib/pq connection whose BEGIN ends with its context
// too: lib/pq watches the context of a transaction only once BEGIN has
// been answered.
type beginWatched struct {
	pqConn
	d *socketDialer
}

func (c beginWatched) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	defer context.AfterFunc(ctx, func() { c.d.expire(cancelGrace) })()
	return c.pqConn.BeginTx(ctx, opts)
}

// cancelGrace is how long a server has to answer a call cancelled by its
// context, with its own error (57014, query_canceled, which tells a client
// that left from a failure), before the wait ends without its answer.
const cancelGrace = 500 * time.Millisecond

// socketDialer dials one lib/pq connection's socket. Once the connection is
// open, lib/pq dials only to send a cancel request: the context of a call
// on the connection ended, and lib/pq closes the connection when that call
// returns. The dialer makes it return within cancelGrace, by moving the
// socket's deadline, whether or not the server answers.
type socketDialer struct {
	mu     sync.Mutex
	socket net.Conn // the connection's: the last one dialled while opening
	open   bool
}

func (d *socketDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d *socketDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *socketDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	if d.open {
		d.expireLocked(cancelGrace)
	}
	d.mu.Unlock()
	c, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, network, address)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil && !d.open {
		d.socket = c
	}
	return c, err
}

// expire ends every wait on the socket after grace.
func (d *socketDialer) expire(grace time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(grace)
}

func (d *socketDialer) expireLocked(grace time.Duration) {
	if d.socket != nil {
		_ = d.socket.SetDeadline(time.Now().Add(grace))
	}
}

// opened marks the connection open: later dials are cancel requests.
func (d *socketDialer) opened() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.open = true
}
