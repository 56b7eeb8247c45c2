//go:build race

package mesh_test

// raceEnabled: the race detector slows memberlist and the links about
// twelvefold, so the largest simulations shrink under it (see Makefile's
// test target, which runs them once more without it).
const raceEnabled = true
