package mesh_test

import (
	"reflect"
	"testing"

	"github.com/verbosemesh/verbose/mesh"
)

// Add sums every counter and gauge (a field added to Stats and forgotten
// in Add fails here), and Sub takes the counters back off.
func TestStatsAddSub(t *testing.T) {
	var a, b mesh.Stats
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	for i := range va.NumField() {
		switch f := va.Field(i); f.Kind() {
		case reflect.Uint64:
			f.SetUint(uint64(10 + i))
			vb.Field(i).SetUint(uint64(1000 + i))
		case reflect.Int, reflect.Int64: // gauges, and EmitWaited
			f.SetInt(int64(10 + i))
			vb.Field(i).SetInt(int64(1000 + i))
		case reflect.Bool:
			vb.Field(i).SetBool(true)
		default:
			t.Fatalf("Stats.%s: a %s, which this test does not know how to add", va.Type().Field(i).Name, f.Kind())
		}
	}
	sum := a.Add(b)
	vs := reflect.ValueOf(sum)
	for i := range vs.NumField() {
		name := vs.Type().Field(i).Name
		switch f := vs.Field(i); f.Kind() {
		case reflect.Uint64:
			if f.Uint() != uint64(1010+2*i) {
				t.Errorf("Add: %s = %d, want %d", name, f.Uint(), 1010+2*i)
			}
		case reflect.Int, reflect.Int64:
			if f.Int() != int64(1010+2*i) {
				t.Errorf("Add: %s = %d, want %d", name, f.Int(), 1010+2*i)
			}
		case reflect.Bool:
			if !f.Bool() {
				t.Errorf("Add: %s false, want true (b's)", name)
			}
		}
	}
	if d := sum.Sub(b); d.Received != a.Received || d.GraftsRefused != a.GraftsRefused || d.EmitWaited != a.EmitWaited {
		t.Errorf("Sub after Add: %+v, want a's counters %+v", d, a)
	}
}
