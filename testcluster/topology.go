package testcluster

import "math/rand/v2"

// Topology lists the links of an n-node cluster as (dialer, listener) pairs.
type Topology func(n int) [][2]int

// FullMesh links every pair once, the lower index dialling.
func FullMesh(n int) [][2]int {
	var e [][2]int
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			e = append(e, [2]int{i, j})
		}
	}
	return e
}

// Line links 0-1-2-…-(n-1).
func Line(n int) [][2]int {
	var e [][2]int
	for i := 0; i+1 < n; i++ {
		e = append(e, [2]int{i, i + 1})
	}
	return e
}

// Ring is a Line closed into a cycle.
func Ring(n int) [][2]int {
	e := Line(n)
	if n > 2 {
		e = append(e, [2]int{n - 1, 0})
	}
	return e
}

// Star links every node to node 0.
func Star(n int) [][2]int {
	var e [][2]int
	for i := 1; i < n; i++ {
		e = append(e, [2]int{i, 0})
	}
	return e
}

// None links nothing: the test wires nodes itself.
func None(int) [][2]int { return nil }

// Random returns a connected random graph with cycles: a random spanning
// tree plus extra edges until each node has about degree links.
func Random(seed int64, degree int) Topology {
	return func(n int) [][2]int {
		r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
		has := map[[2]int]bool{}
		var e [][2]int
		add := func(a, b int) {
			if a == b {
				return
			}
			k := [2]int{min(a, b), max(a, b)}
			if has[k] {
				return
			}
			has[k] = true
			e = append(e, [2]int{a, b})
		}
		perm := r.Perm(n)
		for i := 1; i < n; i++ {
			add(perm[i], perm[r.IntN(i)])
		}
		for extra := n * (degree - 2) / 2; extra > 0 && len(e) < n*(n-1)/2; extra-- {
			add(r.IntN(n), r.IntN(n))
		}
		return e
	}
}
