#!/usr/bin/env bash
# 使い捨ての PostgreSQL サーバーを 127.0.0.1 で起動・停止する（CI と tests/test_distributed.py が使う。ノートブック 02 で紹介）。
#
#   eval "$(scripts/ci_postgres.sh start)"   # 起動して COURSE_POSTGRES_URL と COURSE_POSTGRES_DIR を export する
#   scripts/ci_postgres.sh stop              # COURSE_POSTGRES_DIR（または引数のフォルダ）のサーバーを止めて消す
#
# start [DIR]: initdb/pg_ctl がなければ Debian の postgresql を apt-get で入れ、DIR（既定は新しい一時フォルダ）に
#   クラスタを作り、空いているポートで起動し、データベース optuna_ci を作る。標準出力には eval できる export 文だけを書く。
#   root で動かすと PostgreSQL は起動を拒むので、postgres ユーザー（なければ nobody）で動かす。
#   認証は 127.0.0.1 からの trust（この一時クラスタ専用）。Unix ソケットは作らない。
set -euo pipefail

DB_NAME=optuna_ci
DB_USER=postgres

say() { echo "ci_postgres: $*" >&2; }

find_bin_dir() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"  # /usr/local/bin のリンクなら実体のフォルダ（createdb もそこ）
    return 0
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"
    return 0
  fi
  return 1
}

install_postgres() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL（initdb, pg_ctl）がありません。root で apt-get install postgresql を実行してください。"
    exit 1
  fi
  say "PostgreSQL がないので apt-get で入れます"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
}

run_as() {  # run_as USER CMD...: root なら USER で、そうでなければそのまま実行する
  local user=$1
  shift
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$user" -- "$@"
    else
      su -s /bin/sh "$user" -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local bin dir owner port try
  bin=$(find_bin_dir) || { install_postgres; bin=$(find_bin_dir) || { say "インストール後も initdb が見つかりません"; exit 1; }; }
  dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/course_pg.XXXXXX")}
  mkdir -p "$dir"
  owner=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    getent passwd postgres >/dev/null || owner=nobody
    chown "$owner" "$dir"
    chmod 700 "$dir"
  fi
  local data=$dir/data log=$dir/server.log
  [ -d "$data" ] && { say "$data はもうあります。別のフォルダを指定してください"; exit 1; }
  run_as "$owner" "$bin/initdb" -D "$data" -U "$DB_USER" --auth=trust --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; say "initdb に失敗しました"; exit 1; }
  for try in 1 2 3; do  # 空きポートを選んでから起動するまでに取られたら、別のポートでやり直す
    port=$(free_port)
    if run_as "$owner" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
         -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=''" start >&2; then
      break
    fi
    say "ポート $port で起動できませんでした（$try 回目）"
    tail -n 20 "$log" >&2 || true
    [ "$try" -eq 3 ] && { stop "$dir"; exit 1; }
  done
  PGCONNECT_TIMEOUT=10 "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" >&2 \
    || { say "createdb に失敗しました"; stop "$dir"; exit 1; }
  say "$("$bin/postgres" --version) を 127.0.0.1:$port で起動しました（$dir）"
  echo "export COURSE_POSTGRES_URL=postgresql+psycopg://$DB_USER@127.0.0.1:$port/$DB_NAME"
  echo "export COURSE_POSTGRES_DIR=$dir"
}

stop() {
  local dir=${1:-${COURSE_POSTGRES_DIR:-}} bin owner
  [ -n "$dir" ] || { say "止めるフォルダを引数か COURSE_POSTGRES_DIR で指定してください"; exit 1; }
  [ -d "$dir/data" ] || { say "$dir/data がありません（もう止めてあります）"; return 0; }
  bin=$(find_bin_dir)
  owner=$(stat -c %U "$dir/data")
  run_as "$owner" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || say "pg_ctl stop に失敗しました（止まっていた?）"
  rm -rf "$dir/data" "$dir/server.log" "$dir/initdb.log"  # start が作ったものだけを消す
  rmdir "$dir" 2>/dev/null || true
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) say "使い方: $0 start [DIR] | stop [DIR]"; exit 2 ;;
esac
