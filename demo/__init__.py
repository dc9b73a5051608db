"""`make demo`: the browser loop closed on the embedded stack.

A demo shell page and a demo unit in two new versions (one healthy, one that
fails to load for about a third of its users), synthetic users in headless
Chromium sending real beacons, and the two rollouts that follow from them:
the healthy one promoted, the faulty one rolled back by analysis.
"""
