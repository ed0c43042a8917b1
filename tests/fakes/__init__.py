"""Fakes of services that cannot run here: real server processes speaking the documented APIs."""
