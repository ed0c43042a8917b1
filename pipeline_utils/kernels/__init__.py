"""The kernel-serving code every deploy target runs: the flavours, the EDI kernel shim and the frame protocol.

The local runtime's kernel processes, the Ray Serve replicas and the Azure ML scoring script all answer requests
through these handlers, so a deployment behaves the same wherever it is served.
"""
