"""The simulated kernel: physical memory and the ZFS ARC, read with kstat and written with mdb."""
