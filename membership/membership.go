package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

var (
	// ErrClosed is returned by methods called after Shutdown.
	ErrClosed = errors.New("membership: closed")
	// ErrBadSeed is wrapped by Join for a seed that is not a host:port.
	ErrBadSeed = errors.New("membership: bad seed address")
	// ErrJoinFailed is wrapped by Join when no seed answered.
	ErrJoinFailed = errors.New("membership: join failed")
)

// defaultLeaveTimeout is used when Leave is given no timeout (memberlist
// would wait forever).
const defaultLeaveTimeout = 5 * time.Second

// Membership is this node's membership in a memberlist cluster.
type Membership struct {
	cfg   Config
	list  *memberlist.Memberlist
	del   *delegate
	log   hclog.Logger
	addr  string
	unreg func() // stops metric routing
	// A probe in flight outlives memberlist's Shutdown by up to its probe
	// interval (ProbeInterval scaled by the health score when it started:
	// memberlist slows its probes down while it misses acks), then
	// ProbeTimeout.
	probeInterval, probeTimeout time.Duration
	// reclaimWait is how long after a moved member's old record died this
	// node joins its new address: memberlist takes it only after
	// DeadNodeReclaimTime.
	reclaimWait time.Duration

	metaMu sync.Mutex // serialises SetMeta and Leave's metadata change
	meta   Meta
	// local is meta for readers (Local, Members): they never wait for
	// metaMu, which SetMeta holds while memberlist broadcasts.
	local atomic.Pointer[Meta]

	// lifeMu serialises Leave and Shutdown (memberlist panics on a Leave
	// after Shutdown); the flags are atomic so readers never wait on it.
	lifeMu sync.Mutex
	left   atomic.Bool
	closed atomic.Bool

	// ctx is cancelled by Shutdown: it stops the goroutines (Done) and
	// aborts a reconnect's dial.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates cfg, starts memberlist (bound and listening, not yet
// joined) and the event goroutine. A validation error wraps
// ErrInvalidConfig and names the field.
func New(cfg Config) (*Membership, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Logger = cfg.Logger.Named("membership")
	meta, _ := encodeMeta(cfg.Meta, false) // validated

	if cfg.MetricSink != nil && !cfg.GlobalMetrics {
		cfg.Logger.Warn("MetricSink is set but GlobalMetrics is not: memberlist's metrics are not routed to it, go-metrics' global is left alone")
	}
	labels, unreg := registerSink(cfg.MetricSink, cfg.GlobalMetrics)
	d := newDelegate(&cfg, meta)
	mc := memberlistConfig(&cfg, d, labels)
	// Departed members stay listed as long as memberlist gossips about them.
	d.reap = mc.GossipToTheDeadTime

	list, err := memberlist.Create(mc)
	if err != nil {
		unreg()
		return nil, fmt.Errorf("membership: start memberlist: %w", err)
	}
	m := &Membership{
		cfg:           cfg,
		list:          list,
		del:           d,
		log:           cfg.Logger,
		unreg:         unreg,
		meta:          cfg.Meta,
		probeInterval: mc.ProbeInterval,
		probeTimeout:  mc.ProbeTimeout,
		reclaimWait:   mc.DeadNodeReclaimTime + mc.ProbeInterval/2,
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	first := m.meta
	m.local.Store(&first)
	// Nobody knows us yet, so our node record cannot change under us here.
	m.addr = list.LocalNode().Address()
	// The runner also starts reclaims (reclaim.go), so it runs even
	// without Events.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		d.run(func(e Event) {
			switch {
			case e.Kind == memberReclaim:
				m.reclaim(e.Member.Name, e.Member.Addr)
			case cfg.Events != nil:
				cfg.Events(e)
			}
		}, m.ctx.Done())
	}()
	reconnect := reconnectInterval
	if cfg.ProbeFast {
		reconnect = fastReconnectInterval
	}
	m.wg.Add(1)
	go m.reconnectLoop(reconnect, reconnectTimeout)
	m.log.Debug("memberlist started", "node", cfg.NodeID, "addr", m.addr, "channel", cfg.Channel)
	return m, nil
}

// Join contacts each seed (a host:port gossip address), in parallel, and
// returns how many answered. It fails only if none did, or if a seed is
// malformed (checked before any is contacted). Each contact is bounded by
// memberlist's TCPTimeout (5s; 1s with ProbeFast).
func (m *Membership) Join(seeds ...string) (int, error) {
	if m.isClosed() {
		return 0, ErrClosed
	}
	if len(seeds) == 0 {
		return 0, fmt.Errorf("%w: no seed given", ErrJoinFailed)
	}
	for _, s := range seeds {
		if err := checkSeed(s); err != nil {
			return 0, fmt.Errorf("%w %q: %v", ErrBadSeed, s, err)
		}
	}
	type result struct {
		n   int
		err error
	}
	results := make([]result, len(seeds))
	var wg sync.WaitGroup
	for i, s := range seeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := m.list.Join([]string{s})
			if err != nil {
				err = fmt.Errorf("membership: join %s: %w", s, err)
			}
			results[i] = result{n, err}
		}()
	}
	wg.Wait()

	total := 0
	var errs []error
	for _, r := range results {
		total += r.n
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("%w: no seed answered: %w", ErrJoinFailed, errors.Join(errs...))
	}
	for _, err := range errs {
		m.log.Warn("seed did not answer", "error", err)
	}
	return total, nil
}

// checkSeed refuses what memberlist would otherwise resolve with a default
// port or hand to DNS: a seed must name its port.
func checkSeed(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("empty host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// Members returns every member this node knows of, itself included and
// sorted by name. Members that left or died stay listed with that state
// until memberlist forgets them (GossipToTheDeadTime). "suspect" is never
// reported: memberlist does not notify suspicion.
func (m *Membership) Members() []Member {
	all := append(m.del.members(time.Now()), m.Local())
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Local describes this node.
func (m *Membership) Local() Member {
	meta := *m.local.Load()
	state := StateAlive
	if m.left.Load() {
		state = StateLeft
	}
	return Member{
		Name:       m.cfg.NodeID,
		Addr:       m.addr,
		RelayAddr:  meta.RelayAddr,
		Channel:    m.cfg.Channel,
		Version:    meta.Version,
		ActiveView: meta.ActiveView,
		State:      state,
	}
}

// Addr is the gossip host:port other nodes join: the advertised address,
// with the real port when port 0 was asked.
func (m *Membership) Addr() string { return m.addr }

// SetMeta replaces our metadata (its Channel is ignored: a node does not
// change channel) and gossips it; other members see a MemberUpdate. It
// waits a short while for the broadcast to go out; the update keeps
// spreading after that in any case.
func (m *Membership) SetMeta(meta Meta) error {
	if m.isClosed() {
		return ErrClosed
	}
	if meta.Version < 0 {
		return errors.New("membership: Meta.Version must not be negative")
	}
	meta.Channel = m.cfg.Channel
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	b, err := encodeMeta(meta, m.left.Load()) // keep announcing a leave
	if err != nil {
		return err
	}
	m.meta = meta
	m.local.Store(&meta)
	m.del.setMeta(b)
	m.broadcastMeta(time.Second)
	return nil
}

// broadcastMeta asks memberlist to gossip our node record again. A timeout
// is not an error: the alive message is queued and keeps being gossiped.
func (m *Membership) broadcastMeta(timeout time.Duration) {
	if err := m.list.UpdateNode(timeout); err != nil {
		m.log.Debug("metadata broadcast still in progress", "error", err)
	}
}

// Leave leaves the cluster gracefully: others see this node as "left"
// (MemberLeave with State "left"), not "dead". memberlist keeps running
// until Shutdown. timeout <= 0 means 5s.
//
// Leave first gossips metadata flagged "leaving", then memberlist's leave
// (a dead message about itself, which memberlist reports as StateLeft):
// either tells the others this node left rather than died.
func (m *Membership) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultLeaveTimeout
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed.Load() {
		return ErrClosed // memberlist panics on Leave after Shutdown
	}
	if m.left.Swap(true) {
		return nil
	}
	deadline := time.Now().Add(timeout)

	m.metaMu.Lock()
	if b, err := encodeMeta(m.meta, true); err == nil {
		m.del.setMeta(b)
		m.broadcastMeta(timeout / 2)
	}
	m.metaMu.Unlock()

	remaining := time.Until(deadline)
	if remaining <= 0 {
		remaining = time.Millisecond
	}
	if err := m.list.Leave(remaining); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Shutdown stops memberlist without leaving (others will see this node
// "dead" once they detect it) and stops the event goroutine; events not yet
// delivered are dropped. Idempotent. memberlist's own goroutines notice
// the shutdown asynchronously and exit shortly after.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	if m.closed.Swap(true) {
		m.lifeMu.Unlock()
		return nil
	}
	m.lifeMu.Unlock()

	// The score of the probe in flight: it only drops when a probe ends.
	quiesce := m.probeInterval*time.Duration(m.list.GetHealthScore()+1) + m.probeTimeout
	err := m.list.Shutdown()
	m.del.closeQueue()
	m.cancel()
	m.wg.Wait()
	// memberlist has no way to wait for its goroutines; the longest of them
	// (a probe in flight) ends within quiesce. Waiting here keeps Close's
	// promise that no goroutine outlives it (a crashed peer's probes had
	// outlived a fixed ProbeInterval+ProbeTimeout under testing/synctest).
	time.Sleep(quiesce)
	m.unreg()
	if err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	return nil
}

func (m *Membership) isClosed() bool { return m.closed.Load() }
