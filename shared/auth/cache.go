package auth

import "sync"

// verifiedTokens remembers tokens that verified, until they expire: a
// gateway sees the same few tokens over and over, and checking an HS256
// signature and parsing the claims costs more than a map look-up. Only the
// exact bytes that verified are remembered, so a hit is as good as a
// verification; it holds at most max tokens, dropping an arbitrary one to
// make room.
type verifiedTokens struct {
	mu     sync.RWMutex
	max    int
	tokens map[string]verified
}

type verified struct {
	id Identity
	at AccessToken
}

func (c *verifiedTokens) get(token string) (verified, bool) {
	c.mu.RLock()
	v, ok := c.tokens[token]
	c.mu.RUnlock()
	return v, ok
}

func (c *verifiedTokens) put(token string, v verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tokens) >= c.max {
		for k := range c.tokens {
			delete(c.tokens, k)
			break
		}
	}
	c.tokens[token] = v
}

func (c *verifiedTokens) drop(token string) {
	c.mu.Lock()
	delete(c.tokens, token)
	c.mu.Unlock()
}

// WithVerifiedCache returns Tokens like t that remember up to n tokens that
// verified until their expiry (see verifiedTokens): Verify and Check of a
// remembered token skip the signature; Check still asks the denylist, so a
// revoked token is refused as soon as without the cache.
func (t *Tokens) WithVerifiedCache(n int) *Tokens {
	c := *t
	c.cache = &verifiedTokens{max: n, tokens: make(map[string]verified, n)}
	return &c
}
