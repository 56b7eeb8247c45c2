package main

import (
	"encoding/json"
	"io"
	"testing"
)

func runJSON(t *testing.T, o options, out io.Writer) error {
	t.Helper()
	o.JSON = true
	return run(o, out, testWriter{t})
}

func decodeReport(t *testing.T, b []byte) report {
	t.Helper()
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	return rep
}

// testWriter sends progress lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
