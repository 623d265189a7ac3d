# libvirtd-common.sh - helpers sourced by libvirtd-up.sh and
# libvirtd-storage-up.sh: a protocol probe that tells when a daemon really
# answers, and free-port picking.  Sourced, not run.

# ------------------------------------------------------------ protocol probe
# One packet: length word, then prog 0x20008086, vers 1, proc, type CALL (0),
# serial, status OK (0), then the body.  Writes the hex of the reply's first
# NBYTES bytes to stdout, or nothing after 3 s.
hex32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
send_call() { # fd proc serial body-escapes body-len
  local len=$((28 + $5))
  # shellcheck disable=SC2059
  printf "$(hex32 $len)\\x20\\x00\\x80\\x86$(hex32 1)$(hex32 "$2")$(hex32 0)$(hex32 "$3")$(hex32 0)$4" >&"$1"
}
read_reply() { # fd nbytes -> hex
  timeout 3 od -An -v -tx1 -N "$2" <&"$1" 2>/dev/null | tr -d ' \n'
}
# probe PORT NAME: succeeds when the daemon answers AUTH_LIST (66) with
# [none] and then opens NAME (CONNECT_OPEN, 1) without an error.
probe() {
  local port=$1 name=$2 r pad=
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  send_call 3 66 1 "" 0
  # reply: len 36, 20008086 1 66 REPLY(1) serial 1 OK(0), count 1, AUTH_NONE(0)
  r=$(read_reply 3 36)
  if [ "$r" != "0000002420008086000000010000004200000001000000010000000000000001""00000000" ]; then
    exec 3<&- ; return 1
  fi
  # CONNECT_OPEN: optstr present (1), NAME padded to 4 bytes, flags 0
  for _ in $(seq 1 $(( (4 - ${#name} % 4) % 4 ))); do pad="$pad\\x00"; done
  send_call 3 1 2 "$(hex32 1)$(hex32 ${#name})$name$pad$(hex32 0)" \
    $(( 12 + ${#name} + (4 - ${#name} % 4) % 4 ))
  r=$(read_reply 3 28)
  exec 3<&-
  [ "$r" = "0000001c200080860000000100000001000000010000000200000000" ]
}

# ------------------------------------------------------------ ports
port_listening() { (exec 4<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports below the ephemeral range are never handed out to outgoing sockets.
read -r EPH_LO _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPH_LO=32768
[ "$EPH_LO" -gt 12000 ] || EPH_LO=32768
PORT_LO=10000
PORT_HI=$((EPH_LO - 1))
random_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((PORT_LO + (RANDOM * 32768 + RANDOM) % (PORT_HI - PORT_LO + 1)))
    # leave libvirt's own well-known ports to a real libvirtd
    case $p in 16509|16514) continue ;; esac
    port_listening "$p" || { echo "$p"; return 0; }
  done
  return 1
}
