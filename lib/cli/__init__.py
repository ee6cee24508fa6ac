"""The vmbundle command line."""
