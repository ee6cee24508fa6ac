"""The emulated svc.startd: the restarter daemon, contracts and methods."""
