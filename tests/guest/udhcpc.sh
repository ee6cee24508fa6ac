#!/bin/sh
# udhcpc hook of the vmbundle test guest: configure the lease, note it for the banner
# (/run/ip-<if>) and report it on the serial console (udhcpc inherits init's stdout
# redirection to /dev/null, so write to the console init chose directly).
out=/dev/ttyS0
(: >"$out") 2>/dev/null || out=/dev/console
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface" 2>/dev/null
        ip link set "$interface" up
        rm -f "/run/ip-$interface"
        ;;
    bound|renew)
        prefix=$(ipcalc -p "$ip" "${subnet:-255.255.255.0}" 2>/dev/null | sed 's/^PREFIX=//')
        prefix=${prefix:-24}
        old=$(cat "/run/ip-$interface" 2>/dev/null)
        if [ "$old" != "$ip/$prefix" ]; then
            ip -4 addr flush dev "$interface" 2>/dev/null
            ip addr add "$ip/$prefix" dev "$interface"
            for r in $router; do
                ip route add default via "$r" dev "$interface" 2>/dev/null
                break
            done
            echo "$ip/$prefix" >"/run/ip-$interface"
            echo "vmbundle-testguest: nic $interface ip $ip/$prefix" >"$out"
        fi
        ;;
esac
exit 0
