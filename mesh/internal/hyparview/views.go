package hyparview

import (
	"math/rand/v2"
	"slices"
)

// view is a small set of node ids kept in a slice: the views hold a few
// dozen ids at most, and a slice keeps every choice reproducible (a map's
// iteration order is random).
type view struct{ ids []string }

func (v *view) len() int { return len(v.ids) }

func (v *view) has(id string) bool { return slices.Contains(v.ids, id) }

// add appends id if absent; the caller keeps the size bound.
func (v *view) add(id string) {
	if !v.has(id) {
		v.ids = append(v.ids, id)
	}
}

// remove deletes id and reports whether it was there.
func (v *view) remove(id string) bool {
	i := slices.Index(v.ids, id)
	if i < 0 {
		return false
	}
	v.ids = slices.Delete(v.ids, i, i+1)
	return true
}

// pick returns a random id for which keep is true ("" and false if none).
func (v *view) pick(rng *rand.Rand, keep func(string) bool) (string, bool) {
	n := 0
	var chosen string
	for _, id := range v.ids {
		if keep(id) {
			// Reservoir sampling: the i-th eligible id replaces the choice with
			// probability 1/i, so each is chosen with probability 1/n.
			n++
			if rng.IntN(n) == 0 {
				chosen = id
			}
		}
	}
	return chosen, n > 0
}

// sample returns up to k distinct random ids for which keep is true.
func (v *view) sample(rng *rand.Rand, k int, keep func(string) bool) []string {
	var ids []string
	for _, id := range v.ids {
		if keep(id) {
			ids = append(ids, id)
		}
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids[:min(k, len(ids))]
}

// copy returns the ids in a new slice.
func (v *view) copy() []string { return slices.Clone(v.ids) }

// all is a keep function that keeps every id.
func all(string) bool { return true }

// except returns a keep function that drops the given ids.
func except(ids ...string) func(string) bool {
	return func(id string) bool { return !slices.Contains(ids, id) }
}
