package mesh

// TreeProvider returns the remote id of the link n last got a fresh event
// of origin over: its parent in origin's tree ("" if none). For tests that
// need to cut or slow an eager path.
func TreeProvider(n *Node, origin string) string {
	n.routeMu.Lock()
	defer n.routeMu.Unlock()
	ot := n.tree.origins[origin]
	if ot == nil || ot.provider == nil {
		return ""
	}
	return ot.provider.RemoteID()
}
