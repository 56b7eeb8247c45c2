// Package uitest drives the agent's cluster page (GET /ui) in Chromium,
// through the DevTools protocol (chromedp), against agents on loopback.
// It is a module of its own, so that verbose itself never depends on a
// browser driver: `make ui-test` runs it, and `make ui-screenshot` writes
// the README's docs/ui.png with it.
package uitest
