package wire

import (
	"github.com/verbosemesh/verbose/internal/msgp"
	"github.com/verbosemesh/verbose/mesh/internal/slab"
)

// reader is msgp's reader with strings interned (when strs is set) and
// []byte args cut from a slab (when args is set).
type reader struct {
	msgp.Reader
	strs *Interner
	args *slab.Args
}

func (r *reader) str() string { return r.strs.Intern(r.Take(r.StrLen(r.Byte()))) }

// strOr is str for a string that is most often known: the path's first id
// is the origin's, compared without the interner's hashing.
func (r *reader) strOr(known string) string {
	b := r.Take(r.StrLen(r.Byte()))
	if string(b) == known {
		return known
	}
	return r.strs.Intern(b)
}

// Interner keeps one copy of the strings that recur on the event path
// (origins, names, path ids). It is bounded: when full it is reset, which
// costs allocations for a while, never correctness. A small direct-mapped
// cache in front of the map answers the common case (the same few ids over
// and over) with one comparison instead of a hash. A nil *Interner interns
// nothing.
type Interner struct {
	m     map[string]string
	cache [internCache]string
}

const (
	maxInterned = 4096
	internCache = 64 // a power of two
)

// Intern returns b as a string, the same string for the same bytes.
func (t *Interner) Intern(b []byte) string {
	if t == nil {
		return string(b)
	}
	if len(b) == 0 {
		return ""
	}
	h := (len(b) + int(b[0])*3 + int(b[len(b)-1])*7) & (internCache - 1)
	if s := t.cache[h]; s == string(b) { // no allocation for the comparison
		return s
	}
	s, ok := t.m[string(b)] // nor for the lookup
	if !ok {
		if t.m == nil || len(t.m) >= maxInterned {
			t.m = make(map[string]string, 64)
		}
		s = string(b)
		t.m[s] = s
	}
	t.cache[h] = s
	return s
}
