package hyparview

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg   Config
		field string // "" when valid
	}{
		{Config{}, ""},
		{Config{ActiveSize: 1, MaxActive: 1, ARWL: MaxTTL, PRWL: MaxTTL}, ""},
		{Config{ActiveSize: -1}, "ActiveSize"},
		{Config{MaxActive: -1}, "MaxActive"},
		{Config{PassiveSize: -1}, "PassiveSize"},
		{Config{ShuffleActive: -1}, "ShuffleActive"},
		{Config{ShuffleInterval: -time.Second}, "ShuffleInterval"},
		{Config{NeighborTimeout: -time.Second}, "NeighborTimeout"},
		{Config{ARWL: MaxTTL + 1}, "ARWL"},
		{Config{ARWL: 2}, "PRWL"}, // the default PRWL 3 is above it
		{Config{ShuffleActive: 20, ShufflePassive: 20}, "ShufflePassive"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.cfg, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
			t.Errorf("%+v: got %v, want an error naming %s", tt.cfg, err, tt.field)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	d := DefaultConfig()
	if d.ActiveSize != DefaultActiveSize || d.MaxActive != DefaultActiveSize || d.PassiveSize != DefaultPassiveSize ||
		d.ARWL != DefaultARWL || d.PRWL != DefaultPRWL || d.ShuffleInterval != DefaultShuffleInterval ||
		d.ShuffleActive != DefaultShuffleActive || d.ShufflePassive != DefaultShufflePassive ||
		d.NeighborTimeout != DefaultNeighborTimeout {
		t.Fatalf("DefaultConfig() = %+v", d)
	}
	if c := (Config{ActiveSize: 9, MaxActive: 4}).withDefaults(); c.capacity() != 4 {
		t.Fatalf("capacity %d, want min(ActiveSize, MaxActive) = 4", c.capacity())
	}
	if c := (Config{ActiveSize: 3}).withDefaults(); c.MaxActive != 3 {
		t.Fatalf("MaxActive %d, want ActiveSize", c.MaxActive)
	}
}
