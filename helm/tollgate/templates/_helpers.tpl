{{/* Chart name, truncated to 63 characters. */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: release-chart (or the release name when it contains the chart name), or the override. */}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.injectorName" -}}
{{- printf "%s-injector" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.demoName" -}}
{{- printf "%s-demo" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image reference: a digest pins it; else the tag, defaulting to appVersion. */}}
{{- define "tollgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The command of every Tollgate container: node runs the CLI directly (PID 1
gets SIGTERM and drains). Spelled out because the image has no ENTRYPOINT
(its CMD is `node dist/cli/main.js serve`), and Kubernetes `args` alone would
replace that whole CMD.
*/}}
{{- define "tollgate.command" -}}
["node", "/app/dist/cli/main.js"]
{{- end }}

{{/* The Secret holding `pepper` and `management-token`. */}}
{{- define "tollgate.secretName" -}}
{{- default (include "tollgate.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The ConfigMap holding `policy.yaml`. */}}
{{- define "tollgate.policyConfigMapName" -}}
{{- if .Values.policy.create }}
{{- printf "%s-policy" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "policy.existingConfigMap is required when policy.create is false" .Values.policy.existingConfigMap }}
{{- end }}
{{- end }}

{{/* "true" when the sidecars use Redis rather than the embedded store. */}}
{{- define "tollgate.redisEnabled" -}}
{{- or (ne .Values.redis.url "") (ne .Values.redis.mode "standalone") }}
{{- end }}

{{/*
REDIS_URL. Credentials never appear in the pod spec: the password comes from
its Secret as $(REDIS_PASSWORD), expanded by the kubelet (the variable is
defined first in env). In sentinel mode the URL only carries auth, TLS and db
(its host names the master for TLS SNI); in cluster mode it is a seed.
*/}}
{{- define "tollgate.redisUrl" -}}
{{- $r := .Values.redis }}
{{- $rest := regexReplaceAll "^rediss?://" $r.url "" }}
{{- if and (eq $rest "") (eq $r.mode "sentinel") }}
{{- $rest = $r.sentinel.masterName }}
{{- end }}
{{- if and (eq $rest "") (eq $r.mode "cluster") }}
{{- $rest = first $r.cluster.nodes | required "redis.url or redis.cluster.nodes is required with redis.mode=cluster" }}
{{- end }}
{{- $scheme := ternary "rediss" "redis" (or $r.tls.enabled (hasPrefix "rediss://" $r.url)) }}
{{- $auth := "" }}
{{- if $r.password.existingSecret }}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" $r.username }}
{{- else if $r.username }}
{{- $auth = printf "%s@" $r.username }}
{{- end }}
{{- printf "%s://%s%s" $scheme $auth $rest }}
{{- end }}

{{/* The sidecar's environment: every value is a setting of `tollgate settings`. */}}
{{- define "tollgate.sidecarEnv" -}}
{{- $s := .Values.sidecar }}
{{- $r := .Values.redis }}
{{- $grpc := eq $s.probes.type "grpc" }}
- name: TOLLGATE_ADDR
  value: {{ printf "%s:%d" (ternary "0.0.0.0" "127.0.0.1" $grpc) (int $s.grpcPort) | quote }}
{{- if $grpc }}
# gRPC probes: the kubelet reaches the main port on the pod IP, in plaintext
# (kubelet gRPC probes cannot speak TLS); the management token still guards management.
- name: TOLLGATE_ALLOW_PLAINTEXT
  value: "true"
{{- end }}
- name: TOLLGATE_HTTP_ADDR
  value: {{ ternary "" (printf "127.0.0.1:%d" (int $s.httpPort)) (eq (int $s.httpPort) 0) | quote }}
- name: TOLLGATE_ADMIN_ADDR
  value: {{ printf "0.0.0.0:%d" (int $s.adminPort) | quote }}
- name: TOLLGATE_POLICY_FILE
  value: /etc/tollgate/policy/policy.yaml
- name: TOLLGATE_PEPPER_FILE
  value: /etc/tollgate/secrets/pepper
- name: TOLLGATE_MANAGEMENT_TOKEN_FILE
  value: /etc/tollgate/secrets/management-token
- name: TOLLGATE_LOG_LEVEL
  value: {{ $s.logLevel | quote }}
- name: TOLLGATE_FAIL_MODE
  value: {{ $s.failMode | quote }}
{{- if eq (include "tollgate.redisEnabled" .) "true" }}
{{- with $r.password.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $r.password.key }}
{{- end }}
- name: REDIS_URL
  value: {{ include "tollgate.redisUrl" . | quote }}
- name: TOLLGATE_REDIS_MODE
  value: {{ $r.mode | quote }}
- name: TOLLGATE_REDIS_PREFIX
  value: {{ $r.prefix | quote }}
{{- if eq $r.mode "sentinel" }}
- name: TOLLGATE_REDIS_SENTINELS
  value: {{ join "," (required "redis.sentinel.addresses is required with redis.mode=sentinel" $r.sentinel.addresses) | quote }}
- name: TOLLGATE_REDIS_SENTINEL_MASTER
  value: {{ $r.sentinel.masterName | quote }}
{{- with $r.sentinel.password.existingSecret }}
- name: TOLLGATE_REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $r.sentinel.password.key }}
{{- end }}
{{- end }}
{{- if and (eq $r.mode "cluster") $r.cluster.nodes }}
- name: TOLLGATE_REDIS_CLUSTER_NODES
  value: {{ join "," $r.cluster.nodes | quote }}
{{- end }}
{{- if $r.tls.caSecret }}
# Node trusts this CA besides the system ones for the rediss:// connection.
- name: NODE_EXTRA_CA_CERTS
  value: /etc/tollgate/redis-ca/ca.crt
{{- end }}
{{- end }}
{{- with $s.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* One probe of the sidecar: httpGet on the admin port, or grpc on the main port. */}}
{{- define "tollgate.sidecarProbe" -}}
{{- $s := .root.Values.sidecar }}
{{- if eq $s.probes.type "grpc" }}
grpc:
  port: {{ $s.grpcPort }}
{{- else }}
httpGet:
  path: {{ .path }}
  port: tollgate-admin
{{- end }}
periodSeconds: {{ .p.periodSeconds }}
timeoutSeconds: 1
failureThreshold: {{ .p.failureThreshold }}
{{- end }}

{{/*
The Tollgate sidecar container, as one YAML map (no leading "-"): the native
sidecar (an init container with restartPolicy Always) the injector injects.
Charts that add it by hand (the demo does) include it in initContainers:

  initContainers:
    - {{- include "tollgate.sidecar" . | nindent 6 }}
  volumes:
    {{- include "tollgate.sidecarVolumes" . | nindent 4 }}

RPC stays on 127.0.0.1 (only the pod's own containers reach it); the admin
port binds 0.0.0.0 so the kubelet can probe /healthz and /readyz (see
values.yaml sidecar.probes.type).
*/}}
{{- define "tollgate.sidecar" -}}
{{- $s := .Values.sidecar -}}
name: tollgate
image: {{ include "tollgate.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
command: {{ include "tollgate.command" . }}
args: ["serve"]
restartPolicy: Always
ports:
  - name: tollgate-admin
    containerPort: {{ $s.adminPort }}
    protocol: TCP
  {{- if eq $s.probes.type "grpc" }}
  - name: tollgate-grpc
    containerPort: {{ $s.grpcPort }}
    protocol: TCP
  {{- end }}
env:
  {{- include "tollgate.sidecarEnv" . | nindent 2 }}
resources:
  {{- toYaml $s.resources | nindent 2 }}
startupProbe:
  {{- include "tollgate.sidecarProbe" (dict "root" . "path" "/readyz" "p" $s.probes.startup) | nindent 2 }}
livenessProbe:
  {{- include "tollgate.sidecarProbe" (dict "root" . "path" "/healthz" "p" $s.probes.liveness) | nindent 2 }}
readinessProbe:
  {{- include "tollgate.sidecarProbe" (dict "root" . "path" "/readyz" "p" $s.probes.readiness) | nindent 2 }}
securityContext:
  {{- toYaml $s.securityContext | nindent 2 }}
volumeMounts:
  - name: tollgate-policy
    mountPath: /etc/tollgate/policy
    readOnly: true
  - name: tollgate-secrets
    mountPath: /etc/tollgate/secrets
    readOnly: true
  {{- if and (eq (include "tollgate.redisEnabled" .) "true") .Values.redis.tls.caSecret }}
  - name: tollgate-redis-ca
    mountPath: /etc/tollgate/redis-ca
    readOnly: true
  {{- end }}
{{- end }}

{{/* The volumes the sidecar mounts, as a YAML list. */}}
{{- define "tollgate.sidecarVolumes" -}}
- name: tollgate-policy
  configMap:
    name: {{ include "tollgate.policyConfigMapName" . }}
    items:
      - key: policy.yaml
        path: policy.yaml
- name: tollgate-secrets
  secret:
    secretName: {{ include "tollgate.secretName" . }}
    # 0444: injected pods may set no fsGroup, so the files stay root-owned and the
    # sidecar (uid 65532) reads them as "other"; only the sidecar mounts them.
    defaultMode: 292
    items:
      - key: pepper
        path: pepper
      - key: management-token
        path: management-token
{{- if and (eq (include "tollgate.redisEnabled" .) "true") .Values.redis.tls.caSecret }}
- name: tollgate-redis-ca
  secret:
    secretName: {{ .Values.redis.tls.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}

{{/* Hardened pod security context shared by the chart's own pods. */}}
{{- define "tollgate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
