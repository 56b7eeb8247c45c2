package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Agents with --active-view keep a partial view: eight agents with views
// of 2 become ready with one or two relay links each (their metrics say
// so), events emitted at one reach all the others, and an agent started
// without --active-view is never linked and is reported: an error line
// on both sides and a rejected peer event in the others' metrics.
func TestAgentsPartialView(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs agent processes")
	}
	bin := buildMeshnode(t)
	const n, events = 8, 20
	first := startAgentProc(t, bin, "pv-0", "--active-view", "2")
	agents := []*agentProc{first}
	for i := 1; i < n; i++ {
		agents = append(agents, startAgentProc(t, bin, fmt.Sprintf("pv-%d", i), "--active-view", "2", "--join", first.gossip))
	}
	waitFor(t, time.Minute, "every agent ready with one or two links, its view's", func() bool {
		for _, a := range agents {
			if code, _ := httpDo(t, http.MethodGet, "http://"+a.http+"/v1/ready", "", nil); code != http.StatusOK {
				return false
			}
			view, links := metric(t, a.http, "verbose_view_active_members"), metric(t, a.http, "verbose_peers")
			if view < 1 || view > 2 || links != view {
				return false
			}
		}
		return true
	})

	for i := range events {
		if out, err := exec.Command(bin, "emit", "--http", first.http, "pv", strconv.Itoa(i)).CombinedOutput(); err != nil {
			t.Fatalf("emit: %v\n%s", err, out)
		}
	}
	waitFor(t, 30*time.Second, "every other agent to deliver the events", func() bool {
		for _, a := range agents[1:] {
			if metric(t, a.http, "verbose_events_delivered_total") < events {
				return false
			}
		}
		return true
	})
	for _, a := range agents[1:] {
		if got := metric(t, a.http, "verbose_events_delivered_total"); got != events {
			t.Errorf("%s delivered %v events, want %d", a.id, got, events)
		}
	}

	odd := startAgentProc(t, bin, "pv-odd", "--join", first.gossip)
	const said = "member cannot be linked"
	waitFor(t, 30*time.Second, "the odd agent reported on both sides", func() bool {
		return strings.Contains(odd.log.String(), said) && strings.Contains(first.log.String(), said) &&
			metric(t, first.http, `verbose_peer_events_total{kind="rejected"}`) >= 1
	})
	if links := metric(t, odd.http, "verbose_peers"); links != 0 {
		t.Errorf("the odd agent has %v links, want 0", links)
	}
}
