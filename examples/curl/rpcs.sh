#!/usr/bin/env bash
# Every Tollgate RPC with plain curl, Connect protocol (JSON over HTTP/1.1).
# Usage: TOKEN=<management token, empty in dev mode> bash examples/curl/rpcs.sh
set -euo pipefail
T=${TOLLGATE_SERVER:-http://127.0.0.1:50051}
auth=()
TOKEN=${TOKEN:-${TOLLGATE_MANAGEMENT_TOKEN:-}}
[[ -n "$TOKEN" ]] && auth=(-H "authorization: Bearer $TOKEN")
call() { # call <Service/Method> <json>
  echo "── $1" >&2
  curl -sS -X POST -H 'content-type: application/json' "${auth[@]}" -d "$2" "$T/tollgate.v1.$1"
  echo
}

created=$(call KeyService/CreateKey '{"owner":"acme","tier":"free","scopes":["orders:read"],"metadata":{"team":"web"},"ipAllow":["0.0.0.0/0","::/0"]}')
echo "$created"
secret=$(sed -E 's/.*"secret":"([^"]+)".*/\1/' <<<"$created")
id=$(sed -E 's/.*"key":\{"id":"([^"]+)".*/\1/' <<<"$created")

call KeyService/GetKey "{\"id\":\"$id\"}"
call KeyService/ListKeys '{"pageSize":10}'
call KeyService/UpdateKey "{\"id\":\"$id\",\"updateMask\":\"scopes,metadata\",\"scopes\":[\"orders:read\",\"orders:write\"],\"metadata\":{\"team\":\"mobile\"}}"
call TollgateService/Authorize "{\"apiKey\":\"$secret\",\"method\":\"GET\",\"path\":\"/v1/orders\",\"clientIp\":\"203.0.113.9\",\"applyLimits\":true}"
call TollgateService/Authorize '{"headers":{"x-api-key":"tg_live_not-a-key"},"method":"GET","path":"/v1/orders"}'
call TollgateService/CheckRateLimit "{\"keyId\":\"$id\",\"method\":\"GET\",\"path\":\"/v1/orders\"}"
call TollgateService/ReportUsage "{\"id\":\"resp-1\",\"keyId\":\"$id\",\"method\":\"GET\",\"path\":\"/v1/orders\",\"cost\":3}"
call TollgateService/RecordEvent '{"events":[{"id":"evt-1","customType":"login.failed","subject":"203.0.113.9","subjectKind":"SUBJECT_KIND_IP"}]}' || true
rotated=$(call TollgateService/RotateKey "{\"keyId\":\"$id\",\"gracePeriod\":\"600s\"}")
echo "$rotated"
call KeyService/ListBlocks '{}'
call KeyService/DeleteBlock '{"subjectKind":"SUBJECT_KIND_IP","subject":"203.0.113.9"}'
call KeyService/RevokeKey "{\"id\":\"$id\",\"reason\":\"example finished\"}"
