"""QEMU itself: the command line, option escaping, capability profiles, the short QMP client."""
