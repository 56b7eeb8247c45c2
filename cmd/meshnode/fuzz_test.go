package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// FuzzEmitBody posts arbitrary bodies to POST /v1/emit of an agent's HTTP
// handler, whose node is linked to a second node over memnet. The handler
// never fails with a 500 (the recoverer's answer to a panic), answers 202
// only for a body that names an event, and an accepted event reaches the
// other node under that name.
func FuzzEmitBody(f *testing.F) {
	for _, s := range []string{
		`{"event":"x","args":["a",1,2.5,true,null,{"k":[1,"v"]},[]]}`,
		`{"event":"x"}`,
		`{"event":"","args":[]}`,
		`{"event":"x","args":[1e400, -9223372036854775809, 18446744073709551615]}`,
		`{"event":"x","args":[1]}{"more":1}`,
		`{"event":"` + strings.Repeat("n", mesh.MaxNameLen+1) + `"}`,
		`[1,2]`, `null`, `{`, ``, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		synctest.Test(t, func(t *testing.T) {
			n := memnet.New(1)
			newNode := func(id string) *mesh.Node {
				node, err := mesh.New(mesh.Config{NodeID: id, Transport: n.Host(id), Logger: hclog.NewNullLogger()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { node.Close() })
				return node
			}
			a, b := newNode("a"), newNode("b")
			if err := b.Listen("b:7947"); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var got []string
			b.On("*", func(e mesh.Event) {
				mu.Lock()
				got = append(got, e.Name)
				mu.Unlock()
			})
			if _, err := a.Connect("b:7947"); err != nil {
				t.Fatal(err)
			}
			api := newAPI(a, nil, hclog.NewNullLogger())
			defer api.closeStreams()
			req := httptest.NewRequest(http.MethodPost, "/v1/emit", strings.NewReader(string(body)))
			w := httptest.NewRecorder()
			api.handler().ServeHTTP(w, req)

			switch w.Code {
			case http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			default:
				t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
			}
			var reply map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
				t.Fatalf("reply is not JSON: %q", w.Body)
			}
			if w.Code != http.StatusAccepted {
				if _, ok := reply["error"].(string); !ok {
					t.Fatalf("error reply without an error message: %q", w.Body)
				}
				return
			}
			var req2 struct {
				Event string `json:"event"`
			}
			if err := json.Unmarshal(body, &req2); err != nil || req2.Event == "" {
				// Accepted: the body must at least start with an object
				// naming an event (the handler decodes one value).
				dec := json.NewDecoder(strings.NewReader(string(body)))
				if err := dec.Decode(&req2); err != nil || req2.Event == "" {
					t.Fatalf("accepted a body with no event name: %q", body)
				}
			}
			deadline := time.Now().Add(time.Minute)
			for {
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("accepted event %q never reached the other node", req2.Event)
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != req2.Event {
				t.Fatalf("other node got %q, want [%q]", got, req2.Event)
			}
		})
	})
}
