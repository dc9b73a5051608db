"""Benchmarks of Skyline against peers, run by `make bench` (`python -m bench`).

The harness pieces (an isolated stack with a worker that can be killed, a
cuttable TCP proxy, synthetic browser-load metrics, bundle generation) are
shared with the fault suite in tests/faults/.
"""
