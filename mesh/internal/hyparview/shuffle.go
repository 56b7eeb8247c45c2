package hyparview

// shuffle starts a SHUFFLE walk through a random neighbour, carrying this
// node and ShuffleActive active and ShufflePassive passive peers.
func (m *Machine) shuffle() {
	m.shuffled = nil
	target, ok := m.active.pick(m.rng, all)
	if !ok {
		return
	}
	sample := append([]string{m.id}, m.active.sample(m.rng, m.cfg.ShuffleActive, except(target))...)
	sample = append(sample, m.passive.sample(m.rng, m.cfg.ShufflePassive, all)...)
	m.shuffled = sample
	m.send(target, Message{Kind: KindShuffle, Node: m.id, TTL: uint8(m.cfg.ARWL), Sample: sample})
}

// onShuffle forwards the walk while its TTL lasts and another neighbour is
// there; at its end it replies to the origin with as many passive peers as
// it received, and keeps the received ones in place of those it sent.
func (m *Machine) onShuffle(from, origin string, ttl int, sample []string) {
	if origin == m.id {
		return // the walk came back
	}
	if ttl > 0 && m.active.len() > 1 {
		if next, ok := m.active.pick(m.rng, except(from, origin)); ok {
			m.send(next, Message{Kind: KindShuffle, Node: origin, TTL: uint8(ttl - 1), Sample: sample})
			return
		}
	}
	reply := m.passive.sample(m.rng, len(sample), except(origin))
	if m.linkOf(origin) != nil || m.replyLinks() < maxReplyLinks {
		m.send(origin, Message{Kind: KindShuffleReply, Sample: reply})
		m.releaseIfIdle(origin)
	}
	m.addPassive(origin, reply)
	for _, id := range sample {
		m.addPassive(id, reply)
	}
}

// onShuffleReply keeps the reply's nodes in place of those our SHUFFLE sent.
// A reply to no shuffle of ours is ignored.
func (m *Machine) onShuffleReply(sample []string) {
	sent := m.shuffled
	if sent == nil {
		return
	}
	m.shuffled = nil
	for _, id := range sample {
		m.addPassive(id, sent)
	}
}
