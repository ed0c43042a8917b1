"""Tests of the cpd backend against the fake CPD (tests/fakes/cpd)."""
