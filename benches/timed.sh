# timed.sh - sourced by ab.sh and encryption.sh: one timed step per call.
#
# timed LABEL RUN STEP CMD...: run CMD under /usr/bin/time and append
# "LABEL,RUN,STEP,wall_s,cpu_s,rss_kib,user_s" to $RESULTS (CPU = user +
# sys; user alone leaves out the kernel's file-system work, which varies
# most between runs on a churned file system);
# CMD's output goes to $WORK/out, shown only when it fails (then exit 1).
timed() {
  local label=$1 run=$2 step=$3 wall user sys rss
  shift 3
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" > "$WORK/out" 2>&1 ||
    { cat "$WORK/out" >&2; echo "$label $step failed" >&2; exit 1; }
  read -r wall user sys rss < "$WORK/time"
  echo "$label,$run,$step,$wall,$(echo "$user + $sys" | bc),$rss,$user" >> "$RESULTS"
}
