"""Deploy-and-monitor pipeline for trained models, run as papermill-executed notebooks."""

__version__ = "0.1.0"
