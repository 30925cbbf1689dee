package tracing

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// RedisHook is a go-redis hook that makes a client span of every command,
// or pipeline, sent inside a recording span: the gateway's rate limit, the
// product cache, the token denylist, the outbox relay's XADDs. Commands
// outside any trace (the consumers' blocking reads, health pings) make
// none, so they cost one context lookup.
func RedisHook() redis.Hook { return redisHook{} }

type redisHook struct{}

func (redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !Recording(ctx) || handshake(cmd) {
			return next(ctx, cmd)
		}
		ctx, span := Start(ctx, "redis "+cmd.Name(), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(semconv.DBSystemNameRedis, semconv.DBOperationName(cmd.Name())))
		err := next(ctx, cmd)
		End(span, redisFailure(err))
		return err
	}
}

func (redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !Recording(ctx) || len(cmds) > 0 && handshake(cmds[0]) {
			return next(ctx, cmds)
		}
		name := "pipeline"
		if len(cmds) > 0 {
			name = cmds[0].Name() // "multi" for a transaction
		}
		ctx, span := Start(ctx, "redis pipeline "+name, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(semconv.DBSystemNameRedis, semconv.DBOperationBatchSize(len(cmds))))
		err := next(ctx, cmds)
		End(span, redisFailure(err))
		return err
	}
}

// handshake reports whether cmd is part of go-redis opening a connection
// (HELLO, AUTH, CLIENT SETINFO, SELECT), which the pool does inside
// whichever call needed the connection: noise in that call's trace.
func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "client", "select":
		return true
	}
	return false
}

// redisFailure is err unless it is an answer rather than a failure: a
// missing key (redis.Nil) is a cache miss.
func redisFailure(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}
