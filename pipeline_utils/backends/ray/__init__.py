"""The Ray Serve deploy target (``ray``): deployments as Serve applications, driven over Ray's REST API."""
