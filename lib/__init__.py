"""vmbundle: QEMU/KVM guests as ZFS bundles and SMF instances on illumos."""
