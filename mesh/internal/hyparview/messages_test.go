package hyparview

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestMessageValidate(t *testing.T) {
	long := strings.Repeat("x", MaxIDLen+1)
	full := make([]string, MaxSample+1)
	for i := range full {
		full[i] = fmt.Sprint("s", i)
	}
	tests := []struct {
		msg Message
		ok  bool
	}{
		{Message{Kind: KindJoin}, true},
		{Message{Kind: KindForwardJoin, Node: "n", TTL: MaxTTL}, true},
		{Message{Kind: KindNeighbor, High: true}, true},
		{Message{Kind: KindNeighborReply, Accept: true}, true},
		{Message{Kind: KindDisconnect, Alive: true}, true},
		{Message{Kind: KindShuffle, Node: "o", TTL: 1, Sample: full[:MaxSample]}, true},
		{Message{Kind: KindShuffleReply}, true},
		{Message{Kind: KindShuffleReply, Sample: []string{}}, true},

		{Message{}, false},
		{Message{Kind: KindShuffleReply + 1}, false},
		{Message{Kind: KindForwardJoin, TTL: 1}, false},             // no node
		{Message{Kind: KindForwardJoin, Node: long, TTL: 1}, false}, // id too long
		{Message{Kind: KindForwardJoin, Node: "n", TTL: MaxTTL + 1}, false},
		{Message{Kind: KindShuffle, Node: "o", Sample: full}, false}, // sample too large
		{Message{Kind: KindShuffle, Node: "o", Sample: []string{"a", "a"}}, false},
		{Message{Kind: KindShuffleReply, Sample: []string{""}}, false},
		{Message{Kind: KindJoin, Node: "n"}, false}, // walk field on a JOIN
		{Message{Kind: KindNeighbor, TTL: 1}, false},
		{Message{Kind: KindJoin, Sample: []string{"a"}}, false},
		{Message{Kind: KindJoin, High: true}, false},
		{Message{Kind: KindNeighbor, Accept: true}, false},
		{Message{Kind: KindNeighborReply, Alive: true}, false},
	}
	for _, tt := range tests {
		err := tt.msg.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadMessage)) {
			t.Errorf("%v: Validate() = %v, want ok %v", tt.msg, err, tt.ok)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, name := range map[Kind]string{KindJoin: "JOIN", KindShuffleReply: "SHUFFLEREPLY", 0: "Kind(0)", 99: "Kind(99)"} {
		if got := k.String(); got != name {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, name)
		}
	}
}
