#!/usr/bin/env bash
# Side by side over loopback: quicksand (tokio and smol examples), tokio-quiche 0.20 and
# quinn 0.11 + h3 serve the same `/bytes/N`, and one independent client, quinn-load
# (quinn + h3, tests/peers), measures each in turn, for several rounds. Per server and
# workload it prints the client's result and the server process's context switches and CPU
# time (from /proc, all threads), per GiB for the download and per request otherwise, then
# the median ratio of each quicksand server to the faster competitor. Last, quicksand's
# client examples and quinn-load each download from the tokio-quiche server.
#
#   bash tests/bench/compare.sh
#   QUICKSAND_COMPARE_ROUNDS=3  QUICKSAND_COMPARE_GIB=1  QUICKSAND_COMPARE_REQUESTS=20000
#   QUICKSAND_COMPARE_SERVERS="quicksand-tokio quicksand-smol tokio-quiche quinn"
#
# Loopback only, every run bounded by `timeout`. RETRY is off on every server (quinn's server
# does none unless asked), so handshakes compare like with like. Needs openssl for the
# certificate the competitors load.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
rounds=${QUICKSAND_COMPARE_ROUNDS:-3}
bytes=$(( ${QUICKSAND_COMPARE_GIB:-1} * 1073741824 ))
requests=${QUICKSAND_COMPARE_REQUESTS:-20000}
servers=${QUICKSAND_COMPARE_SERVERS:-quicksand-tokio quicksand-smol tokio-quiche quinn}
bin=$(mktemp -d)
trap 'pkill -f "$bin/" 2>/dev/null || true; rm -rf "$bin"' EXIT

echo "building (release): quicksand examples, tests/peers (quinn), tests/bench/competitors (tokio-quiche)"
bash .ci/patch-quiche
cargo build --release -q -p quicksand-tokio --example server --example client
cargo build --release -q -p quicksand-smol --example smol-server --example smol-client
cp target/release/examples/server "$bin/quicksand-tokio-server"
cp target/release/examples/client "$bin/quicksand-tokio-client"
cp target/release/examples/smol-server "$bin/quicksand-smol-server"
cp target/release/examples/smol-client "$bin/quicksand-smol-client"
(cd tests/peers && CARGO_TARGET_DIR="$root/target/peers" cargo build --release -q)
cp target/peers/release/quinn-server target/peers/release/quinn-load "$bin/"
(cd tests/bench/competitors && CARGO_TARGET_DIR="$root/target/competitors" cargo build --release -q)
cp target/competitors/release/tokio-quiche-server "$bin/"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$bin/key.pem" -out "$bin/cert.pem" 2>/dev/null
tls=(--cert "$bin/cert.pem" --key "$bin/key.pem")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
port=15700
start_server() { # start_server NAME: starts it on a fresh port, waits until it answers
  port=$((port + 1))
  local addr="127.0.0.1:$port"
  # `exec`: the background job becomes the server, so $! is the process /proc describes.
  case $1 in
    quicksand-tokio | quicksand-smol) exec "$bin/$1-server" --listen "$addr" "${tls[@]}" --no-retry ;;
    tokio-quiche) exec "$bin/tokio-quiche-server" --listen "$addr" "${tls[@]}" --no-retry ;;
    quinn) exec "$bin/quinn-server" --listen "$addr" "${tls[@]}" ;;
  esac > "$bin/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    if timeout 5 "$bin/quinn-load" --insecure "https://$addr/bytes/1" > /dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  echo "$1 did not start:"; cat "$bin/server.log"; exit 1
}
stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }

# Context switches (voluntary + involuntary) of every live thread, and CPU ticks of the process.
switches() { cat /proc/"$server_pid"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' /proc/"$server_pid"/stat; }
hz=$(getconf CLK_TCK)

# UDP datagrams the kernel dropped for a full receive buffer, machine-wide: loss on loopback,
# which makes a loss-based sender back off (downloads then vary a lot between runs).
rcvbuf_errors() { awk '/^Udp:/ { if (seen) print $6; seen = 1 }' /proc/net/snmp; }

# measure SERVER WORKLOAD UNITS ARGS...: one result line; UNITS is GiB or requests.
results="$bin/results"
measure() {
  local name=$1 work=$2 units=$3; shift 3
  local s0 c0 out s1 c1
  local d0 d1
  s0=$(switches); c0=$(cpu_ticks); d0=$(rcvbuf_errors)
  out=$(timeout 600 "$bin/quinn-load" --insecure "$@" "https://127.0.0.1:$port/bytes/$size" || echo '{"error": true}')
  s1=$(switches); c1=$(cpu_ticks); d1=$(rcvbuf_errors)
  local per_switch per_cpu
  per_switch=$(awk -v d=$((s1 - s0)) -v u="$units" 'BEGIN { printf "%.2f", d / u }')
  per_cpu=$(awk -v d=$((c1 - c0)) -v u="$units" -v hz="$hz" 'BEGIN { printf "%.6f", d / hz / u }')
  echo "$name $work $out switches/unit=$per_switch cpu_s/unit=$per_cpu rcvbuf_drops=$((d1 - d0))" | tee -a "$results"
}

for round in $(seq "$rounds"); do
  echo "== round $round"
  for name in $servers; do
    start_server "$name"
    size=$bytes measure "$name" download "$(awk -v b="$bytes" 'BEGIN { print b / 1073741824 }')" --requests 1
    size=1024 measure "$name" requests "$requests" --connections 8 --streams 8 --requests "$requests"
    size=1 measure "$name" handshakes 200 --handshakes --requests 200
    stop_server
  done
done

# The clients: quicksand's client examples and quinn-load download from the tokio-quiche server.
echo "== clients: 1 GiB from the tokio-quiche server (Mbit/s of body)"
start_server tokio-quiche
for round in $(seq "$rounds"); do
  for rt in tokio smol; do
    echo "quicksand-$rt client: $(timeout 600 "$bin/quicksand-$rt-client" --insecure \
      "https://127.0.0.1:$port/bytes/$bytes" | tail -1)"
  done
  echo "quinn-load client: $(timeout 600 "$bin/quinn-load" --insecure "https://127.0.0.1:$port/bytes/$bytes")"
done
stop_server

# Medians per server and workload, and each quicksand server against the faster competitor.
echo "== medians over $rounds rounds (download: Mbit/s; requests, handshakes: per second)"
awk '
  function field(line, key,   at, rest) {
    at = index(line, "\"" key "\": "); if (!at) return "";
    rest = substr(line, at + length(key) + 4); sub(/[,}].*/, "", rest); return rest + 0
  }
  function unit(line, key,   at, rest) {
    at = index(line, key "="); rest = substr(line, at + length(key) + 1); sub(/ .*/, "", rest); return rest + 0
  }
  {
    k = $1 " " $2
    v = ($2 == "download") ? field($0, "mbit_s") : field($0, "rps")
    n[k]++; val[k, n[k]] = v; sw[k, n[k]] = unit($0, "switches/unit"); cpu[k, n[k]] = unit($0, "cpu_s/unit")
    p99[k, n[k]] = field($0, "p99_ms")
  }
  function median(arr, k, m,   i, j, t, a) {
    for (i = 1; i <= m; i++) a[i] = arr[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    for (k in n) {
      med[k] = median(val, k, n[k])
      printf "%-28s %12.1f   p99 %8.3f ms   switches/unit %10.2f   cpu s/unit %.6f\n", k, med[k], median(p99, k, n[k]), median(sw, k, n[k]), median(cpu, k, n[k])
    }
    split("download requests handshakes", works, " ")
    for (w in works) {
      best = 0
      if (med["tokio-quiche " works[w]] > best) best = med["tokio-quiche " works[w]]
      if (med["quinn " works[w]] > best) best = med["quinn " works[w]]
      if (best == 0) continue
      for (q = 1; q <= 2; q++) {
        name = (q == 1) ? "quicksand-tokio" : "quicksand-smol"
        if ((name " " works[w]) in med)
          printf "ratio %-16s %-10s %.2f x the faster competitor\n", name, works[w], med[name " " works[w]] / best
      }
    }
  }' "$results" | sort
