"""The SMF emulator: repository, restarter (svc.startd) and the svc* commands."""
