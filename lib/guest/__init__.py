"""One boot of a guest: run directory, preparing and booting, the boot record, shutdown, refresh, live changes, displays."""
