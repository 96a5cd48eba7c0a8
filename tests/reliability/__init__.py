"""Reliability suite: crashes, faults, races, hostile input and edges, with figures."""
