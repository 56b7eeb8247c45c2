package main

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// runNATS measures NATS core: an embedded server on loopback, one
// publishing connection and one connection per receiver with one
// subscription each. Limits are the defaults (server: 64 MiB pending per
// client before it cuts a slow consumer; client: 512k messages or 64 MiB
// pending per subscription before it drops), as a NATS user gets them;
// drops and slow-consumer disconnections show as loss and in the note.
func runNATS(receivers, size int, d time.Duration, profile io.Writer) (result, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return result{}, fmt.Errorf("natsbench: nats-server: %w", err)
	}
	go ns.Start()
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if !ns.ReadyForConnections(10 * time.Second) {
		return result{}, fmt.Errorf("natsbench: nats-server not ready after 10s")
	}
	var asyncErrs atomic.Int64
	opts := []nats.Option{
		nats.NoReconnect(), // a cut connection is loss to report, not to hide
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) { asyncErrs.Add(1) }),
	}
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect := func() (*nats.Conn, error) {
		c, err := nats.Connect(ns.ClientURL(), opts...)
		if err != nil {
			return nil, fmt.Errorf("natsbench: nats connect: %w", err)
		}
		conns = append(conns, c)
		return c, nil
	}
	const subject = "blast"
	rs := newReceivers(receivers)
	subs := make([]*nats.Subscription, receivers)
	for i := range receivers {
		c, err := connect()
		if err != nil {
			return result{}, err
		}
		r := rs[i]
		if subs[i], err = c.Subscribe(subject, func(m *nats.Msg) { r.recordBytes(m.Data) }); err != nil {
			return result{}, fmt.Errorf("natsbench: nats subscribe: %w", err)
		}
		// The server has the interest once it has answered a PING sent
		// after the SUB.
		if err := c.Flush(); err != nil {
			return result{}, fmt.Errorf("natsbench: nats flush: %w", err)
		}
	}
	pub, err := connect()
	if err != nil {
		return result{}, err
	}
	buf := make([]byte, size)
	res, err := measure(blastSpec{
		key: "nats", system: "NATS core", receivers: rs, duration: d, profile: profile,
		publish: func(idx int64) error {
			message(buf, idx) // Publish copies buf into the connection's buffer
			return pub.Publish(subject, buf)
		},
		finish: func() error { return pub.FlushTimeout(30 * time.Second) },
	})
	if err != nil {
		return res, err
	}
	var dropped int
	for _, s := range subs {
		if n, err := s.Dropped(); err == nil {
			dropped += n
		}
	}
	v, err := ns.Varz(nil)
	if err != nil {
		return res, fmt.Errorf("natsbench: nats-server varz: %w", err)
	}
	if dropped > 0 || v.SlowConsumers > 0 || asyncErrs.Load() > 0 {
		note := fmt.Sprintf("client drops %d, server slow-consumer cuts %d, async errors %d", dropped, v.SlowConsumers, asyncErrs.Load())
		if res.Note != "" {
			note = res.Note + "; " + note
		}
		res.Note = note
	}
	return res, nil
}
