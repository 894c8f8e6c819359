{{/*
Names. Services keep the host names the rendered configs address (prometheus, victorialogs, …), so one
release runs per namespace and every resource is named after its component.
*/}}
{{- define "theodore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* The rendered environment folder inside the chart. */}}
{{- define "theodore.envDir" -}}
{{- printf "files/rendered/%s" .Values.environment -}}
{{- end }}

{{/* The facts of the environment (rendered/<env>/kubernetes/stack.yaml), as a dict. */}}
{{- define "theodore.stack" -}}
{{- $file := printf "%s/kubernetes/stack.yaml" (include "theodore.envDir" .) -}}
{{- $text := .Files.Get $file -}}
{{- if not $text -}}
{{- fail (printf "environment %q: %s is not in the chart; run `make render` (or pick one of the rendered environments)" .Values.environment $file) -}}
{{- end -}}
{{- $text -}}
{{- end }}

{{/* One workload's args and config mounts from kubernetes/stack.yaml: (dict "root" $ "workload" "prometheus"). */}}
{{- define "theodore.workload" -}}
{{- $stack := fromYaml (include "theodore.stack" .root) -}}
{{- toYaml (index $stack.workloads (index (fromYaml (include "theodore.workloads" .root)) .workload).stackKey) -}}
{{- end }}

{{/* Labels on every resource. Call with (dict "root" $ "component" "prometheus"). */}}
{{- define "theodore.labels" -}}
{{ include "theodore.selectorLabels" . }}
app.kubernetes.io/part-of: theodore-observability
app.kubernetes.io/version: {{ include "theodore.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "theodore.chart" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels. Call with (dict "root" $ "component" "prometheus"). */}}
{{- define "theodore.selectorLabels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* The image of a component, from versions.yaml through the rendered stack facts. */}}
{{- define "theodore.image" -}}
{{- $stack := fromYaml (include "theodore.stack" .root) -}}
{{- $image := index $stack.images (include "theodore.imageKey" .) -}}
{{- printf "%s%s" .root.Values.global.imageRegistry $image -}}
{{- end }}

{{- define "theodore.imageKey" -}}
{{- if hasPrefix "otel-collector" .component }}otel-collector{{ else if eq .component "readiness-test" }}prometheus{{ else }}{{ .component }}{{ end -}}
{{- end }}

{{- define "theodore.imageTag" -}}
{{- $stack := fromYaml (include "theodore.stack" .root) -}}
{{- $image := index $stack.images (include "theodore.imageKey" .) -}}
{{- last (splitList ":" $image) | trunc 63 -}}
{{- end }}

{{/*
Config mounts of a workload: its `mounts` in kubernetes/stack.yaml (a rendered file or folder and
its container path, from the component registry), as a YAML list of
{configMap, volume, target, file, base, items: [{key, path, source}]}.
Call with (dict "root" $ "workload" "prometheus").
*/}}
{{- define "theodore.configMounts" -}}
{{- $root := .root -}}
{{- $envDir := include "theodore.envDir" $root -}}
{{- $workload := fromYaml (include "theodore.workload" .) -}}
{{- $mounts := list -}}
{{- range $mount := $workload.mounts -}}
{{- $source := $mount.source -}}
{{- $base := printf "%s/%s" $envDir $source -}}
{{- $name := printf "config-%s" ($source | replace "/" "-" | replace "_" "-" | lower) | trunc 253 -}}
{{- $items := list -}}
{{- $file := false -}}
{{- if $root.Files.Glob $base -}}
{{- $file = true -}}
{{- $items = append $items (dict "key" (base $source) "path" (base $source)) -}}
{{- else -}}
{{- range $path, $_ := $root.Files.Glob (printf "%s/**" $base) -}}
{{- $relative := trimPrefix (printf "%s/" $base) $path -}}
{{- $items = append $items (dict "key" ($relative | replace "/" "__") "path" $relative "source" $path) -}}
{{- end -}}
{{- end -}}
{{- if $items -}}
{{- $mounts = append $mounts (dict "configMap" $name "volume" (include "theodore.label" $name) "target" $mount.target "file" $file "base" $base "items" $items) -}}
{{- end -}}
{{- end -}}
{{- toYaml $mounts -}}
{{- end }}

{{/*
A name as a DNS-1123 label (volume and port names, label values): lower-case letters, digits
and "-", at most 63 characters; a longer name keeps its first 54 and a hash of the whole.
*/}}
{{- define "theodore.label" -}}
{{- $label := regexReplaceAll "[^a-z0-9-]+" (lower .) "-" | trimAll "-" -}}
{{- if gt (len $label) 63 -}}
{{- $label = printf "%s-%s" ($label | trunc 54 | trimSuffix "-") (sha256sum . | trunc 8) -}}
{{- end -}}
{{- $label -}}
{{- end }}

{{/* volumes: entries for config mounts. Call with the same dict as theodore.configMounts. */}}
{{- define "theodore.configVolumes" -}}
{{- range $i, $m := fromYamlArray (include "theodore.configMounts" .) }}
- name: {{ $m.volume }}
  configMap:
    name: {{ $m.configMap }}
    items:
    {{- range $m.items }}
      - key: {{ .key }}
        path: {{ .path }}
    {{- end }}
{{- end }}
{{- end }}

{{/* volumeMounts: entries for config mounts. */}}
{{- define "theodore.configVolumeMounts" -}}
{{- range $m := fromYamlArray (include "theodore.configMounts" .) }}
- name: {{ $m.volume }}
  mountPath: {{ $m.target }}
  {{- if $m.file }}
  subPath: {{ (index $m.items 0).path }}
  {{- end }}
  readOnly: true
{{- end }}
{{- end }}

{{/* A checksum of every config a workload mounts (where and what), so a changed file rolls its pods. */}}
{{- define "theodore.configChecksum" -}}
{{- $root := .root -}}
{{- $parts := list -}}
{{- range $m := fromYamlArray (include "theodore.configMounts" .) -}}
{{- range $item := $m.items -}}
{{- $parts = append $parts (printf "%s/%s=%s" $m.target $item.path ($root.Files.Get ($item.source | default $m.base) | sha256sum)) -}}
{{- end -}}
{{- end -}}
{{- /* The collector's config as shipped depends on where its logs go (see configmaps.yaml). */ -}}
{{- $parts = append $parts (printf "victorialogs-split=%s" (include "theodore.victorialogsSplit" $root)) -}}
{{- join "\n" $parts | sha256sum -}}
{{- end }}

{{/* The container args of a workload (kubernetes/stack.yaml), as a YAML list: (dict "root" $ "workload" "prometheus"). */}}
{{- define "theodore.args" -}}
{{- toYaml ((fromYaml (include "theodore.workload" .)).args | default list) -}}
{{- end }}

{{/* The restricted pod security context; call with (dict "uid" 65534). */}}
{{- define "theodore.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The restricted container security context. */}}
{{- define "theodore.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* An HTTP readiness and liveness probe pair from the stack's health table. */}}
{{- define "theodore.probes" -}}
{{- $stack := fromYaml (include "theodore.stack" .root) -}}
{{- $health := index $stack.health .component -}}
{{- $port := index $stack.ports $health.port -}}
readinessProbe:
  httpGet:
    path: {{ $health.path }}
    port: {{ $port }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 6
livenessProbe:
  httpGet:
    path: {{ $health.path }}
    port: {{ $port }}
  initialDelaySeconds: 30
  periodSeconds: 15
  timeoutSeconds: 5
  failureThreshold: 6
startupProbe:
  httpGet:
    path: {{ $health.path }}
    port: {{ $port }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 60
{{- end }}

{{/* Pod scheduling fields shared by every workload: call with a component's values. */}}
{{- define "theodore.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* imagePullSecrets of every pod. */}}
{{- define "theodore.pullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Every workload of the chart, whether it is on, and its entry under `workloads` in kubernetes/stack.yaml.
*/}}
{{- define "theodore.workloads" -}}
otel-collector-agent:
  stackKey: otel-collector-agent
  enabled: {{ .Values.collector.agent.enabled }}
otel-collector-gateway:
  stackKey: otel-collector
  enabled: true
prometheus:
  stackKey: prometheus
  enabled: true
alertmanager:
  stackKey: alertmanager
  enabled: true
victorialogs:
  stackKey: victorialogs
  enabled: {{ not (include "theodore.victorialogsExternal" .) }}
victorialogs-audit:
  stackKey: victorialogs-audit
  enabled: true
vmauth:
  stackKey: vmauth
  enabled: true
vmalert:
  stackKey: vmalert
  enabled: true
jaeger:
  stackKey: jaeger
  enabled: true
grafana:
  stackKey: grafana
  enabled: {{ .Values.grafana.enabled }}
blackbox:
  stackKey: blackbox
  enabled: {{ .Values.blackbox.enabled }}
{{- end }}

{{/* The `data` volumeClaimTemplate of a StatefulSet: (dict "root" $ "component" "victorialogs" "size" "10Gi"). */}}
{{- define "theodore.dataClaim" -}}
- metadata:
    name: {{ .name | default "data" }}
    labels:
      {{- include "theodore.selectorLabels" . | nindent 6 }}
  spec:
    accessModes: [ReadWriteOnce]
    {{- with .root.Values.global.storageClass }}
    storageClassName: {{ . }}
    {{- end }}
    resources:
      requests:
        storage: {{ .size }}
{{- end }}

{{/* A StatefulSet's persistentVolumeClaimRetentionPolicy (global.persistentVolumeClaimRetention). */}}
{{- define "theodore.claimRetention" -}}
{{- $r := .Values.global.persistentVolumeClaimRetention -}}
persistentVolumeClaimRetentionPolicy:
  whenDeleted: {{ $r.whenDeleted }}
  whenScaled: {{ $r.whenScaled }}
{{- end }}

{{/* Where the collector's file_storage extension keeps its sending queues (gateway and agent). */}}
{{- define "theodore.fileStorageDir" -}}
/var/lib/otelcol/file_storage
{{- end }}

{{/* The namespace of the collector agent: collector.agent.namespace.name or the release's. */}}
{{- define "theodore.agentNamespace" -}}
{{- .Values.collector.agent.namespace.name | default .Release.Namespace -}}
{{- end }}

{{/* Name of a cluster-scoped object (ClusterRole, binding): unique per namespace and release. */}}
{{- define "theodore.clusterName" -}}
{{- printf "%s-%s-%s" .root.Release.Namespace .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* A memory quantity (512Mi, 3Gi, 2G, 1073741824) in whole MiB. */}}
{{- define "theodore.mebibytes" -}}
{{- $q := toString . -}}
{{- $number := regexFind "^[0-9]+" $q | atoi -}}
{{- $unit := regexFind "[A-Za-z]+$" $q -}}
{{- $perMiB := dict "Ki" (list 1 1024) "Mi" (list 1 1) "Gi" (list 1024 1) "Ti" (list 1048576 1) "k" (list 1000 1048576) "M" (list 1000000 1048576) "G" (list 1000000000 1048576) "T" (list 1000000000000 1048576) "" (list 1 1048576) -}}
{{- $factor := index $perMiB $unit | default (list 1 1048576) -}}
{{- div (mul $number (index $factor 0)) (index $factor 1) -}}
{{- end }}

{{/*
"true" when VictoriaLogs runs outside this release (victorialogs.external names its hosts), else "".
Both hosts or neither: a collector writing to one store while vmalert and Grafana read another
would lose every log without an error.
*/}}
{{- define "theodore.victorialogsExternal" -}}
{{- $e := .Values.victorialogs.external -}}
{{- if or $e.insertHost $e.selectHost -}}
{{- if not (and $e.insertHost $e.selectHost) -}}
{{- fail "victorialogs.external: set both insertHost and selectHost (the same host when one serves /insert/ and /select/, e.g. the vmauth of the victoria-logs-cluster chart)" -}}
{{- end -}}
true
{{- end -}}
{{- end }}

{{/* "true" when the external insert and select hosts differ (the collector then writes to `victorialogs-insert`). */}}
{{- define "theodore.victorialogsSplit" -}}
{{- $e := .Values.victorialogs.external -}}
{{- if and (include "theodore.victorialogsExternal" .) (ne $e.insertHost $e.selectHost) }}true{{ end -}}
{{- end }}

{{/*
The Secret holding the tenants' and auditors' bearer tokens (tenants.existingSecret), for a reader
of the token files `files`: (dict "root" $ "files" (list "audit_reader_token") "reader" "vmauth").
Fails naming the value when it is unset.
*/}}
{{- define "theodore.tenantsSecret" -}}
{{- if not .root.Values.tenants.existingSecret -}}
{{- fail (printf "tenants.existingSecret: name the Secret holding the tenants' and auditors' bearer tokens (%s of environment %q reads keys %s)" .reader .root.Values.environment (.files | sortAlpha | join ", ")) -}}
{{- end -}}
{{- .root.Values.tenants.existingSecret -}}
{{- end }}

{{/* A byte size of a VictoriaLogs flag (100GiB, 10GB, 512MiB, 1073741824) in whole MiB:
(dict "size" "100GiB" "valuesKey" "victorialogs"), the values key naming the size to set instead. */}}
{{- define "theodore.flagMebibytes" -}}
{{- $q := toString .size -}}
{{- $number := regexFind "^[0-9]+" $q | atoi -}}
{{- $unit := regexFind "[A-Za-z]+$" $q -}}
{{- $perMiB := dict "KiB" (list 1 1024) "MiB" (list 1 1) "GiB" (list 1024 1) "TiB" (list 1048576 1) "KB" (list 1000 1048576) "MB" (list 1000000 1048576) "GB" (list 1000000000 1048576) "TB" (list 1000000000000 1048576) "" (list 1 1048576) -}}
{{- if not (hasKey $perMiB $unit) -}}
{{- fail (printf "-retention.maxDiskSpaceUsageBytes=%s: unknown unit %q; set %s.persistence.size" $q $unit .valuesKey) -}}
{{- end -}}
{{- $factor := index $perMiB $unit -}}
{{- div (mul $number (index $factor 0)) (index $factor 1) -}}
{{- end }}
