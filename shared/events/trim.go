package events

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// trimStream deletes the stream's entries that every consumer group is done
// with: those before the first entry a group still holds pending or has not
// been given yet (XTRIM MINID ~, which drops whole macro nodes only, so a
// little more is kept). However far a group lags, what it has not handled
// stays; a group nobody reads any more holds the stream until it is
// destroyed (XGROUP DESTROY). A stream no group reads yet is kept whole: a
// new group starts at its beginning. Entries a group is given after the
// figures are read lie past them, so trimming concurrently with consumers
// is safe.
func (r *Relay) trimStream(ctx context.Context) error {
	groups, err := r.Redis.XInfoGroups(ctx, r.Stream).Result()
	if redis.HasErrorPrefix(err, "no such key") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xinfo groups: %w", err)
	}
	var keep streamID // the oldest entry a group still needs
	for i, g := range groups {
		needed, err := r.oldestNeeded(ctx, g)
		if err != nil {
			return fmt.Errorf("group %s: %w", g.Name, err)
		}
		if i == 0 || needed.less(keep) {
			keep = needed
		}
	}
	if keep == (streamID{}) { // no group, or one that has been given nothing
		return nil
	}
	if err := r.Redis.XTrimMinIDApprox(ctx, r.Stream, keep.String(), 0).Err(); err != nil {
		return fmt.Errorf("xtrim %s: %w", r.Stream, err)
	}
	return nil
}

// oldestNeeded is the oldest entry of the stream that group g has not
// handled: its oldest pending entry, or the last one it was given (kept,
// though handled: XTRIM MINID keeps the id it is given), whichever is older
// (XGROUP SETID may have moved the group back).
func (r *Relay) oldestNeeded(ctx context.Context, g redis.XInfoGroup) (streamID, error) {
	last, err := parseStreamID(g.LastDeliveredID)
	if err != nil || g.Pending == 0 {
		return last, err
	}
	p, err := r.Redis.XPending(ctx, r.Stream, g.Name).Result()
	if err != nil {
		return streamID{}, fmt.Errorf("xpending: %w", err)
	}
	if p.Count == 0 { // acknowledged since XINFO GROUPS
		return last, nil
	}
	lower, err := parseStreamID(p.Lower)
	if err != nil || last.less(lower) {
		return last, err
	}
	return lower, nil
}

// streamID is a stream entry id, <milliseconds>-<sequence>, ordered as
// Redis orders them.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, fmt.Errorf("stream id %q: no '-'", s)
	}
	var id streamID
	var err error
	if id.ms, err = strconv.ParseUint(ms, 10, 64); err != nil {
		return streamID{}, fmt.Errorf("stream id %q: %w", s, err)
	}
	if id.seq, err = strconv.ParseUint(seq, 10, 64); err != nil {
		return streamID{}, fmt.Errorf("stream id %q: %w", s, err)
	}
	return id, nil
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq
}

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}
