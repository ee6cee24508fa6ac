"""devhost: an illumos-like host on Linux for development, demos and CI.

It emulates what vmbundle calls on illumos (SMF's svccfg, svcadm, svcs and svcprop
with a repository and a restarter; kstat, mdb and pagesize over a simulated
kernel ARC; hostid, one per devhost) and runs a real zfs-fuse pool. The product never imports it: it only
runs those tools by name. ../shared/docs/illumos.md is the specification.
"""
