package api

import (
	"container/list"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateSpec is a token bucket: Count requests per Per, up to Burst at once. The zero
// value means unlimited.
type RateSpec struct {
	Count int
	Per   time.Duration
	Burst int
}

// Enabled reports whether the spec limits anything.
func (s RateSpec) Enabled() bool { return s.Count > 0 }

func (s RateSpec) String() string {
	if !s.Enabled() {
		return "off"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[s.Per]
	return fmt.Sprintf("%d/%s:%d", s.Count, unit, s.Burst)
}

func (s RateSpec) limit() rate.Limit { return rate.Limit(float64(s.Count) / s.Per.Seconds()) }

// maxRateCount bounds the numbers of a spec: more than a million requests per second
// per client is no limit at all, and bounding it keeps the arithmetic exact.
const maxRateCount = 1_000_000

// ParseRateSpec reads "COUNT/UNIT[:BURST]" with UNIT s, m or h ("10/s:20", "60/m",
// "1000/h:50"); without a burst the bucket holds COUNT. "", "off" and "0" mean
// unlimited.
func ParseRateSpec(text string) (RateSpec, error) {
	t := strings.TrimSpace(text)
	if t == "" || t == "off" || t == "0" {
		return RateSpec{}, nil
	}
	bad := func(why string) (RateSpec, error) {
		return RateSpec{}, fmt.Errorf("rate limit %q: %s (expected COUNT/UNIT[:BURST], UNIT s, m or h, as in 10/s:20)", text, why)
	}
	spec, burst, hasBurst := strings.Cut(t, ":")
	count, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return bad("no '/'")
	}
	var s RateSpec
	switch strings.TrimSpace(unit) {
	case "s":
		s.Per = time.Second
	case "m":
		s.Per = time.Minute
	case "h":
		s.Per = time.Hour
	default:
		return bad("unknown unit")
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 1 || n > maxRateCount {
		return bad(fmt.Sprintf("the count must be an integer from 1 to %d", maxRateCount))
	}
	s.Count, s.Burst = n, n
	if hasBurst {
		b, err := strconv.Atoi(strings.TrimSpace(burst))
		if err != nil || b < 1 || b > maxRateCount {
			return bad(fmt.Sprintf("the burst must be an integer from 1 to %d", maxRateCount))
		}
		s.Burst = b
	}
	return s, nil
}

// limiter keeps one token bucket per client. Memory is bounded: at most max clients
// are kept, the least recently seen go first, and clients whose bucket has refilled
// are dropped as they are met, since a full bucket is the same as a new one.
type limiter struct {
	spec    RateSpec
	max     int
	mu      sync.Mutex
	clients map[string]*list.Element
	lru     list.List // of *bucket, most recently seen at the front
}

type bucket struct {
	key string
	lim *rate.Limiter
}

// verdict is the outcome of one request against a limiter.
type verdict struct {
	allowed    bool
	limit      int           // the bucket size
	remaining  int           // whole requests left right now
	reset      time.Duration // until the bucket is full again
	retryAfter time.Duration // until the next request is allowed (when refused)
}

func newLimiter(spec RateSpec, maxClients int) *limiter {
	if maxClients <= 0 {
		maxClients = 10000
	}
	return &limiter{spec: spec, max: maxClients, clients: map[string]*list.Element{}}
}

// take spends one token of key's bucket at now.
func (l *limiter) take(key string, now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now, 2)
	var b *bucket
	if e, ok := l.clients[key]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		for len(l.clients) >= l.max {
			l.evict(l.lru.Back())
		}
		b = &bucket{key: key, lim: rate.NewLimiter(l.spec.limit(), l.spec.Burst)}
		l.clients[key] = l.lru.PushFront(b)
	}
	v := verdict{limit: l.spec.Burst, allowed: b.lim.AllowN(now, 1)}
	tokens := b.lim.TokensAt(now)
	perToken := 1 / float64(b.lim.Limit())
	v.remaining = max(0, int(math.Floor(tokens)))
	v.reset = refill(float64(l.spec.Burst)-tokens, perToken)
	if !v.allowed {
		v.retryAfter = refill(1-tokens, perToken)
	}
	return v
}

// refill is the time missing tokens take to come back at perToken seconds each.
func refill(missing, perToken float64) time.Duration {
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing * perToken * float64(time.Second))
}

// sweep drops up to n least recently seen clients whose bucket is full again.
func (l *limiter) sweep(now time.Time, n int) {
	for ; n > 0; n-- {
		e := l.lru.Back()
		if e == nil || e.Value.(*bucket).lim.TokensAt(now) < float64(l.spec.Burst) {
			return
		}
		l.evict(e)
	}
}

func (l *limiter) evict(e *list.Element) {
	delete(l.clients, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// ceilSeconds is a header value in whole seconds, rounded up so that a client that
// waits that long is never early.
func ceilSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

// setHeaders writes the X-RateLimit-* headers (and Retry-After on refusal).
func (v verdict) setHeaders(h http.Header) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(v.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(v.remaining))
	h.Set("X-RateLimit-Reset", ceilSeconds(v.reset))
	if !v.allowed {
		h.Set("Retry-After", ceilSeconds(max(v.retryAfter, time.Second)))
	}
}
