{{/*
A single-node VictoriaLogs: its StatefulSet (one replica owning its volume) and its Service, for
the apps' log store (`victorialogs`) and the audit trail's (`victorialogs-audit`). Call with
(dict "root" $ "name" "victorialogs-audit" "values" .Values.victorialogsAudit "valuesKey" "victorialogsAudit").
The data volume is `<valuesKey>.persistence.size`, or the rendered -retention.maxDiskSpaceUsageBytes
plus a fifth: VictoriaLogs drops whole day partitions once past it, so the newest day and the
merges run above it.
*/}}
{{- define "theodore.victorialogsStatefulSet" -}}
{{- $root := .root -}}
{{- $stack := fromYaml (include "theodore.stack" $root) -}}
{{- $c := dict "root" $root "component" .name -}}
{{- $mounts := dict "root" $root "workload" .name -}}
{{- $v := .values -}}
{{- $health := index $stack.health .name -}}
{{- $port := index $stack.ports $health.port -}}
{{- $args := fromYamlArray (include "theodore.args" $mounts) -}}
{{- $size := $v.persistence.size -}}
{{- if not $size -}}
{{- $limit := "" -}}
{{- range $args -}}
{{- if hasPrefix "-retention.maxDiskSpaceUsageBytes=" . }}{{ $limit = trimPrefix "-retention.maxDiskSpaceUsageBytes=" . }}{{ end -}}
{{- end -}}
{{- if not $limit -}}
{{- fail (printf "%s.persistence.size: the rendered %s command has no -retention.maxDiskSpaceUsageBytes to size the volume from; set a size" .valuesKey .name) -}}
{{- end -}}
{{- $size = printf "%dMi" (div (mul (int (include "theodore.flagMebibytes" (dict "size" $limit "valuesKey" .valuesKey))) 6) 5) -}}
{{- end -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "theodore.labels" $c | nindent 4 }}
spec:
  serviceName: {{ .name }}
  {{- include "theodore.claimRetention" $root | nindent 2 }}
  # Single node: one replica owns the volume.
  replicas: 1
  selector:
    matchLabels:
      {{- include "theodore.selectorLabels" $c | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "theodore.labels" $c | nindent 8 }}
      annotations:
        checksum/config: {{ include "theodore.configChecksum" $mounts }}
    spec:
      automountServiceAccountToken: false
      # On SIGTERM VictoriaLogs stops accepting data, flushes its in-memory parts and closes
      # the storage; a kill before that loses the newest rows.
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- include "theodore.pullSecrets" $root | nindent 6 }}
      securityContext:
        {{- /* The image runs as any uid: a non-root one, the volume made its group's by fsGroup. */}}
        {{- include "theodore.podSecurityContext" (dict "uid" 10001) | nindent 8 }}
      {{- include "theodore.scheduling" $v | nindent 6 }}
      containers:
        - name: {{ .name }}
          image: {{ include "theodore.image" $c }}
          imagePullPolicy: {{ $root.Values.global.imagePullPolicy }}
          args:
            {{- toYaml $args | nindent 12 }}
          ports:
            - {name: http, containerPort: {{ $port }}, protocol: TCP}
          {{- include "theodore.probes" $c | nindent 10 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "theodore.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "theodore.configVolumeMounts" $mounts | nindent 12 }}
            - {name: data, mountPath: {{ index $stack.data_dirs .name }}}
            - {name: tmp, mountPath: /tmp}
      volumes:
        {{- include "theodore.configVolumes" $mounts | nindent 8 }}
        - name: tmp
          emptyDir: {}
  volumeClaimTemplates:
    {{- include "theodore.dataClaim" (dict "root" $root "component" .name "size" $size) | nindent 4 }}
{{- end }}

{{/* The ClusterIP Service of a VictoriaLogs run here: (dict "root" $ "name" "victorialogs-audit"). */}}
{{- define "theodore.victorialogsService" -}}
{{- $stack := fromYaml (include "theodore.stack" .root) -}}
{{- $c := dict "root" .root "component" .name -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "theodore.labels" $c | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "theodore.selectorLabels" $c | nindent 4 }}
  ports:
    - {name: http, port: {{ index $stack.ports (index $stack.health .name).port }}, targetPort: http, protocol: TCP}
{{- end }}
