#!/usr/bin/env bash
# tour.sh: README.md's shell sessions, run as written against the three nodes of
# config/cluster3.yaml (the cluster of `make cluster KVNODE_FLAGS=--allow-fault-injection`),
# each command's output compared with what the README shows after it. The README is the
# user's contract: when this fails, either the README lies or the program is wrong.
#
# The convention README.md follows (an edit of the README never needs an edit here):
#   - A ``` block with lines that start "$ " is a shell session. Each "$ " line is a command
#     (a line ending in "\" goes on into the next one), and the lines after it, up to the
#     next "$ " line or the end of the block, are everything it prints: standard output and
#     standard error together, as a terminal shows them. A block with no "$ " line (a
#     listing of commands to copy, or an excerpt of output) is not run.
#   - A session this suite cannot run says why on the line just before its opening ```:
#         <!-- tour: skip: REASON -->
#     which does not show when the README is rendered. Any other line starting "<!-- tour:",
#     or a skip that is not right before a session, is a failure, so a typo cannot quietly
#     skip a session or run one.
#   - The commands run in order, in one bash process started in the repository's root, so a
#     variable one command sets is there for the next, as in the user's terminal. Standard
#     input is /dev/null; TUNEKV_ADDR is unset, so kvctl asks 127.0.0.1:7001 by default, as
#     the README assumes. A process a command leaves in the background is killed at exit.
#   - Lines are compared exactly, except these values, which change from run to run and match
#     any value of their shape (and the spaces before one, any number of spaces):
#       a causal context   a whole line of 16 or more base64 characters (as put prints)
#       an incarnation id  "incarnation " and 16 hex digits
#       a measurement      a number with a decimal point, standing alone (phi, "3.639 ms",
#                          ops/s; not the parts of an address like 127.0.0.1)
#       an age             "N ms ago"
#     Every other number (exit statuses, counts, configured delays) must be exact, so a
#     session whose counts depend on timing is skipped, with that reason.
#   - Exit statuses are not compared unless the README prints them (`; echo "exit $?"`).
#   - A command that finds processes by name (pgrep, pkill, killall) is not run but fails:
#     on a shared machine it would reach other people's nodes. Such a session needs a skip.
# One test per command, named README.md:LINE and the command; a skipped session prints a
# "skip" line with its reason. config/cluster3.yaml's ports are fixed: when one is already in
# use (make cluster is running) the suite fails at once and says so. Each node keeps its
# data under $work, not in data/. Prints "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
config=config/cluster3.yaml
readme=README.md
node_flags=(--allow-fault-injection)   # the README's fault section needs it (make cluster KVNODE_FLAGS=...)
command_wait_s=300                     # a command that has not finished by then has hung

# The nodes and addresses of the config, read as deploy/cluster.sh reads them.
ids=($(sed -n '/^nodes:/,/^[a-z]/s/.*id: *\([A-Za-z0-9_.-]*\).*/\1/p' "$config"))
addrs=($(sed -n 's/.*address: *"\{0,1\}\([0-9.]*:[0-9]*\).*/\1/p' "$config"))
declare -a addr
for i in "${!ids[@]}"; do addr[$((i + 1))]=${addrs[$i]}; done

# ---- the ports ------------------------------------------------------------------------
for a in "${addrs[@]}"; do
  if (exec 3<>"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null; then
    fail "$config's ports are free" "something already listens on $a (is make cluster running?); \
this suite runs the nodes of $config itself on their fixed ports, so stop it and run again"
    summary
    exit 1
  fi
done
ok "$config's ports are free (${addrs[*]})"

# ---- the matcher ----------------------------------------------------------------------
# matches WANT_FILE GOT_FILE: GOT is WANT, line for line, with the varying values above
# matching any value of their shape; when not, prints the first line that differs.
matches() {
  python3 - "$1" "$2" <<'PY'
import re, sys
CONTEXT = r"[A-Za-z0-9+/]{16,}={0,2}"
VARYING = re.compile(r"(?<![\w.:/+-])(incarnation [0-9a-f]{16}|\d+ ms ago|\d+\.\d+)(?![\w.:])")
def pattern(line):
    if re.fullmatch(CONTEXT, line):
        return CONTEXT
    out, pos = [], 0
    for m in VARYING.finditer(line):
        literal = line[pos:m.start()]
        out.append(re.escape(literal.rstrip(" ")))
        if literal.endswith(" "):
            out.append(" +")
        value = m.group(1)
        out.append("incarnation [0-9a-f]{16}" if value.startswith("incarnation")
                   else r"\d+ ms ago" if value.endswith("ago") else r"\d+\.\d+")
        pos = m.end()
    out.append(re.escape(line[pos:]))
    return "".join(out)
want = open(sys.argv[1]).read().splitlines()
got = open(sys.argv[2]).read().splitlines()
for i in range(max(len(want), len(got))):
    w = want[i] if i < len(want) else None
    g = got[i] if i < len(got) else None
    if w is None or g is None or not re.fullmatch(pattern(w), g):
        print("line %d is %s, the README shows %s" % (i + 1, "missing" if g is None else repr(g),
                                                      "nothing" if w is None else repr(w)))
        sys.exit(1)
PY
}

# The matcher itself, before anything runs: it lets through what varies and nothing else.
# matcher NAME WANT GOT RESULT: matches WANT GOT (one line each) says RESULT (match|differ).
matcher() {
  local result=differ
  printf '%s\n' "$2" >"$work/want"
  printf '%s\n' "$3" >"$work/got"
  matches "$work/want" "$work/got" >/dev/null && result=match
  if [ "$result" = "$4" ]; then ok "matcher: $1"; else fail "matcher: $1" "'$2' and '$3' $result"; fi
}
peer='n2           127.0.0.1:7002           up         0.1 32 ms ago'
matcher "any context for a context" "ChgKAm4xENyxv7zr2P3paBiAgKisqaqT0QE=" "ChAKAm4xEPi++PLcxprfShgB" match
matcher "phi and age vary, padding too" "$peer" \
  'n2           127.0.0.1:7002           up        10.9 7 ms ago' match
matcher "an address is exact" "$peer" 'n2           127.0.0.1:7003           up         0.1 32 ms ago' differ
matcher "a state is exact" "$peer" 'n2           127.0.0.1:7002           down       0.1 32 ms ago' differ
matcher "any incarnation id" "node n1 of cluster c (incarnation f43f0d71aaa88a9c)" \
  "node n1 of cluster c (incarnation 68d3f6c6b78fd8dc)" match
matcher "a whole number is exact" "n2 delay 100 ms, jitter 20 ms, drop 0" \
  "n2 delay 10 ms, jitter 20 ms, drop 0" differ
matcher "an exit status is exact" "exit 1" "exit 0" differ
matcher "a trailing space is a difference" "usage: kvctl status" "usage: kvctl status " differ
printf 'a\nb\n' >"$work/want"; printf 'a\n' >"$work/got"
if matches "$work/want" "$work/got" >/dev/null; then fail "matcher: a missing line" "matched"
else ok "matcher: a missing line"; fi

# ---- the cluster's nodes ---------------------------------------------------------------
for id in "${ids[@]}"; do
  "$KVNODE" --config "$config" --node "$id" --data-dir "$work/$id" "${node_flags[@]}" \
    >"$work/$id.log" 2>&1 &
  pids+=($!)
  node_pid=$!
  started=0
  for _ in $(seq 100); do
    grep -q "serving on" "$work/$id.log" && { started=1; break; }
    kill -0 "$node_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ $started = 0 ]; then
    fail "kvnode $id starts" "its log: $(cat "$work/$id.log")"
    summary
    exit 1
  fi
done
up=1
for i in "${!addr[@]}"; do
  others=()
  for id in "${ids[@]}"; do [ "$id" = "${ids[$((i - 1))]}" ] || others+=("$id"); done
  wait_state "$i" up "${others[@]}" || up=0
done
if [ $up = 1 ]; then ok "the ${#ids[@]} nodes see each other up"
else
  fail "the ${#ids[@]} nodes see each other up" "$("$KVCTL" -a "${addr[1]}" status 2>&1)"
  summary
  exit 1
fi

# ---- the session ----------------------------------------------------------------------
# One bash for every command, fed a command at a time; after each it answers on its
# standard output "done STATUS LAST-BACKGROUND-PID".
coproc session { env -u TUNEKV_ADDR bash; }
session_pid=$session_PID   # bash unsets session_PID once the coprocess has ended
pids+=("$session_pid")
session_in=${session[1]} session_out=${session[0]}
commands=0 skipped=0

# one_line FILE: FILE's lines joined with " | ", for a FAIL line.
one_line() { sed ':a;N;$!ba;s/\n/ | /g' "$1" | cut -c1-600; }

# run_command LINE CMD WANT_FILE: runs CMD in the session, one test.
run_command() {
  local line=$1 cmd=$2 want=$3 name tag rc bg why
  name="$readme:$line \$ ${cmd%%$'\n'*}"
  commands=$((commands + 1))
  if [[ "$cmd" =~ (^|[^[:alnum:]_])(pgrep|pkill|killall)([^[:alnum:]_]|$) ]]; then
    fail "$name" "finds processes by name (${BASH_REMATCH[2]}), so it is not run; mark its session '<!-- tour: skip: REASON -->'"
    return
  fi
  printf '{\n%s\n} >"%s" 2>&1 </dev/null\necho "done $? ${!:-}"\n' "$cmd" "$work/got" >&"$session_in"
  if ! read -r -t "$command_wait_s" tag rc bg <&"$session_out" || [ "$tag" != done ]; then
    fail "$name" "did not finish within $command_wait_s s, or ended the shell"
    summary "; the session cannot go on"
    exit 1
  fi
  if [ -n "$bg" ] && [[ " ${pids[*]} " != *" $bg "* ]]; then pids+=("$bg"); fi
  if why=$(matches "$want" "$work/got"); then ok "$name"
  else fail "$name" "$why (exit $rc; whole output: $(one_line "$work/got"))"; fi
}

# run_session FIRST_LINE: the block held in block[] (its first line is README line
# FIRST_LINE), command by command.
run_session() {
  local first=$1 i=0 n=${#block[@]} cmd at
  while [ $i -lt "$n" ] && [[ "${block[$i]}" != '$ '* ]]; do
    fail "$readme:$((first + i))" "output before the session's first command: '${block[$i]}'"
    i=$((i + 1))
  done
  while [ $i -lt "$n" ]; do
    at=$((first + i))
    cmd=${block[$i]#\$ }
    while [[ "$cmd" == *\\ ]] && [ $((i + 1)) -lt "$n" ]; do
      i=$((i + 1))
      cmd+=$'\n'${block[$i]}
    done
    i=$((i + 1))
    : >"$work/want"
    while [ $i -lt "$n" ] && [[ "${block[$i]}" != '$ '* ]]; do
      printf '%s\n' "${block[$i]}" >>"$work/want"
      i=$((i + 1))
    done
    run_command "$at" "$cmd" "$work/want"
  done
}

# The README, block by block: a directive applies to the line right after it.
lineno=0 in_block=0 skip= skip_line=0 block=() block_first=0
while IFS= read -r text || [ -n "$text" ]; do
  lineno=$((lineno + 1))
  if [ $in_block = 0 ]; then
    if [ -n "$skip" ] && [ $skip_line = $((lineno - 1)) ] && [[ "$text" != '```'* ]]; then
      fail "$readme:$skip_line" "'tour: skip' must be the line right before a \`\`\` block"
      skip=
    fi
    if [[ "$text" == '<!-- tour:'* ]]; then
      if [[ "$text" =~ ^'<!-- tour: skip: '(.+)' -->'$ ]]; then skip=${BASH_REMATCH[1]} skip_line=$lineno
      else fail "$readme:$lineno" "unknown tour directive '$text'; the only one is '<!-- tour: skip: REASON -->'"; fi
    elif [[ "$text" == '```'* ]]; then
      in_block=1 block=() block_first=$((lineno + 1))
    fi
    continue
  fi
  if [[ "$text" != '```'* ]]; then block+=("$text"); continue; fi
  in_block=0
  is_session=0
  for l in "${block[@]}"; do [[ "$l" == '$ '* ]] && { is_session=1; break; }; done
  if [ -n "$skip" ]; then
    if [ $is_session = 1 ]; then
      echo "skip $readme:$block_first ($skip)"
      skipped=$((skipped + 1))
    else fail "$readme:$skip_line" "'tour: skip' marks a block with no \"\$ \" command"; fi
    skip=
  elif [ $is_session = 1 ]; then
    run_session "$block_first"
  fi
done <"$readme"
[ $in_block = 0 ] || fail "$readme:$block_first" "the \`\`\` block that starts here is never closed"
check "$readme has commands to run" "no session ran; is the README's format still the one above?" \
  test "$commands" -gt 0
exec {session_in}>&-
wait "$session_pid" 2>/dev/null
summary "($commands commands run, $skipped sessions skipped)"
