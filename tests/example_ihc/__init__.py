"""Tests of the image example (examples/ihc)."""
