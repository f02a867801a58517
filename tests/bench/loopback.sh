#!/usr/bin/env bash
# Loopback benchmarks in one command: builds release binaries, then measures, for tokio and
# smol, a 1 GiB download on one connection, 1 KiB responses with 64 connections x 16 streams,
# handshakes/s with 1-byte responses, 1 vs 2 worker sockets, GSO/GRO off, and the server's
# resident memory per idle connection; then the in-memory limits. Prints one line per
# measurement. Loopback only; every run is bounded.
#
#   bash tests/bench/loopback.sh
#   QUICKSAND_BENCH_GIB=1 (download size)  QUICKSAND_BENCH_IDLE=10000 (idle connections)
#   QUICKSAND_BENCH_SECTIONS="loopback memory inmemory" (the parts to run)
#   QUICKSAND_BENCH_REPEAT=3 (runs of each download: loopback on a shared machine is noisy)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bytes=$(( ${QUICKSAND_BENCH_GIB:-1} * 1073741824 ))
sections=${QUICKSAND_BENCH_SECTIONS:-loopback memory inmemory}
repeat=${QUICKSAND_BENCH_REPEAT:-3}
want() { [[ " $sections " == *" $1 "* ]]; }
bin=$(mktemp -d)
trap 'pkill -f "$bin/" 2>/dev/null || true; rm -rf "$bin"' EXIT

cargo build --release -q -p quicksand-tokio -p quicksand-smol --examples
cp target/release/examples/server "$bin/tokio-server"
cp target/release/examples/client "$bin/tokio-client"
cp target/release/examples/smol-server "$bin/smol-server"
cp target/release/examples/smol-client "$bin/smol-client"
cp target/release/examples/loadgen "$bin/loadgen"   # HTTP/3 is HTTP/3, whatever the runtime

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
port=14700
serve() { # serve RUNTIME ARGS...: starts a server, waits until it answers
  local rt=$1; shift
  port=$((port + 1))
  "$bin/$rt-server" --listen "127.0.0.1:$port" "$@" > "$bin/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    "$bin/loadgen" "https://127.0.0.1:$port/bytes/1" --insecure --requests 1 > /dev/null 2>&1 && return
    sleep 0.1
  done
  echo "server did not start"; exit 1
}
stop() { pkill -f "$bin/.*-server" || true; sleep 0.3; }

# UDP datagrams the kernel dropped for a full receive buffer, machine-wide.
rcvbuf_errors() { awk '/^Udp:/ { if (seen) print $6; seen = 1 }' /proc/net/snmp; }

download() { # download LABEL RUNTIME CLIENT-ARGS...: one line per run, with kernel drops
  local label=$1 rt=$2; shift 2
  for i in $(seq "$repeat"); do
    local before; before=$(rcvbuf_errors)
    local line; line=$(timeout 300 "$bin/$rt-client" "$@" --insecure \
      "https://127.0.0.1:$port/bytes/$bytes" | tail -1)
    echo "$rt download $bytes B$label, run $i: $line; receive-buffer drops $(( $(rcvbuf_errors) - before ))"
  done
}

if want loopback; then
  for rt in tokio smol; do
    serve "$rt"
    download "" "$rt"
    download ", client GSO/GRO off" "$rt" --no-gso
    echo "$rt 1KiB 64x16: $(timeout 120 "$bin/loadgen" "https://127.0.0.1:$port/bytes/1024" --insecure --connections 64 --streams 16 --requests 50000 --json)"
    echo "$rt handshakes: $(timeout 120 "$bin/loadgen" "https://127.0.0.1:$port/bytes/1" --insecure --connections 1000 --requests 1000 --json)"
    stop
    serve "$rt" --no-gso
    download ", both sides GSO/GRO off" "$rt" --no-gso
    stop
    serve "$rt" --workers 2
    echo "$rt 2 workers 1KiB 64x16: $(timeout 120 "$bin/loadgen" "https://127.0.0.1:$port/bytes/1024" --insecure --connections 64 --streams 16 --requests 50000 --json)"
    stop
  done
fi

# Memory: the server's resident set before and while QUICKSAND_BENCH_IDLE connections sit idle.
if want memory; then
  idle=${QUICKSAND_BENCH_IDLE:-10000}
  serve tokio
  rss_before=$(ps -o rss= -p "$server_pid")
  # loadgen exits non-zero if any handshake of the burst failed; the RSS is still measured.
  (timeout 300 "$bin/loadgen" "https://127.0.0.1:$port/bytes/1" --insecure --connections "$idle" \
    --requests "$idle" --hold 15 --json > "$bin/idle.json" 2>/dev/null || true) &
  loadgen_pid=$!
  for _ in $(seq 280); do [ -s "$bin/idle.json" ] && break; sleep 1; done
  sleep 3
  rss_idle=$(ps -o rss= -p "$server_pid")
  echo "tokio idle connections: $(cat "$bin/idle.json")"
  echo "tokio server RSS: $rss_before KiB before, $rss_idle KiB with $idle idle connections," \
    "$(( (rss_idle - rss_before) * 1024 / idle )) B per connection"
  wait "$loadgen_pid"
  stop
fi

if want inmemory; then
cargo bench -q -p quicksand-tests --bench core_overhead 2>/dev/null | tail -4
cargo bench -q -p quicksand-tests --bench h3_overhead 2>/dev/null | tail -4
cargo bench -q -p quicksand-tests --bench memory 2>/dev/null | tail -9
fi
