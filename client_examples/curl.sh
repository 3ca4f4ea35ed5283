#!/usr/bin/env bash
# /generate over plain HTTP: invoke, batch and stream (server-sent events).
#
#   client_examples/curl.sh [http://127.0.0.1:8000]
#
# Uses jq to print a token table when it is installed (and RAW is unset), the raw JSON otherwise.
set -euo pipefail

URL="${1:-http://127.0.0.1:8000}"
URL="${URL%/}"
CONFIG='{"configurable": {"max_tokens": 16, "temperature": 0, "top_logprobs": 3}}'

if [ -z "${RAW:-}" ] && command -v jq >/dev/null 2>&1; then
  HAVE_JQ=1
else
  HAVE_JQ=0
  echo "(jq not found: printing raw JSON; install jq for tables)"
fi

# With LOGPROBS_API_KEYS set on the server: LOGPROBS_API_KEY=... bash curl.sh URL
AUTH=()
if [[ -n "${LOGPROBS_API_KEY:-}" ]]; then AUTH=(-H "Authorization: Bearer $LOGPROBS_API_KEY"); fi
post() { # post PATH JSON [extra curl options]
  curl -sS --fail-with-body "${@:3}" "${AUTH[@]}" -X POST "$URL$1" \
    -H 'Content-Type: application/json' -d "$2"
}

columns() { # align tab-separated columns when column(1) is there
  if command -v column >/dev/null 2>&1; then column -t -s $'\t'; else cat; fi
}

# One line per token: token, probability, logprob, alternatives.
TOKEN_TABLE='
  def pct: if . == null then "n/a" else (. * 1000 | round / 10 | tostring) + "%" end;
  (["token", "prob", "logprob", "alternatives"] | join("\t")),
  (.tokens[] | [
    (.token | tojson),
    (.prob | pct),
    (if .logprob == null then "n/a" else (.logprob * 1000 | round / 1000 | tostring) end),
    ([.top_logprobs[] | "\(.token | tojson) \(.prob | pct)"] | join(", "))
  ] | join("\t"))'

echo "== POST /generate/invoke"
body=$(post /generate/invoke "{\"input\": {\"prompt\": \"Name three colours.\"}, \"config\": $CONFIG}")
if [ "$HAVE_JQ" = 1 ]; then
  jq -r '.output | "completion: \(.completion | tojson)\nperplexity: \(.stats.perplexity)  min_prob: \(.stats.min_prob)  finish_reason: \(.finish_reason)"' <<<"$body"
  jq -r ".output | $TOKEN_TABLE" <<<"$body" | columns
else
  echo "$body"
fi

echo
echo "== POST /generate/batch"
body=$(post /generate/batch "{\"inputs\": [{\"prompt\": \"Say hi.\"}, {\"prompt\": \"Count to three.\"}], \"config\": $CONFIG}")
if [ "$HAVE_JQ" = 1 ]; then
  jq -r '.output[] | if .error then "error: \(.error.message)" else "\(.completion | tojson)  perplexity \(.stats.perplexity)  tokens \(.stats.num_tokens)" end' <<<"$body"
else
  echo "$body"
fi

echo
echo "== POST /score/invoke (the probability of given continuations)"
body=$(post /score/invoke '{"input": {"context": "The capital of France is", "continuations": [" Paris.", " Rome."]}}')
if [ "$HAVE_JQ" = 1 ]; then
  jq -r '.output.scores[] | "\(.continuation | tojson)  sum_logprob \(.sum_logprob)  probability \(.probability)  rank \(.rank)"' <<<"$body"
else
  echo "$body"
fi

echo
echo "== POST /generate/stream (curl -N: each event as it arrives)"
post /generate/stream "{\"input\": {\"prompt\": \"Write a word.\"}, \"config\": $CONFIG}" -N |
  if [ "$HAVE_JQ" = 1 ]; then
    # Keep "event:" lines; for data lines show the new tokens with their logprobs.
    event=""
    while IFS= read -r line; do
      line="${line%$'\r'}"
      case "$line" in
        "event: "*) event="${line#event: }" ;;
        "data: "*)
          data="${line#data: }"
          if [ "$event" = data ]; then
            jq -r 'if .stats then "final: perplexity \(.stats.perplexity), finish_reason \(.finish_reason), low_confidence_spans \(.low_confidence_spans | length)"
                   else (.tokens[] | "token \(.token | tojson)  logprob \(.logprob)  prob \(.prob)") end' <<<"$data"
          else
            echo "$event: $data"
          fi ;;
        "") ;;
        *) echo "$line" ;;
      esac
    done
    echo "end"
  else
    cat
  fi
