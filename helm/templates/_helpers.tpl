{{/* Names, labels and the settings every runlake container shares. */}}

{{- define "runlake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Leaves room for the longest suffix ("-gateway-coordinator", 20 characters). */}}
{{- define "runlake.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else if contains (include "runlake.name" .) .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "runlake.name" .) | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "runlake.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "runlake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: runlake
{{- end -}}

{{/* Selector labels of one component: include "runlake.selectorLabels" (list . "query") */}}
{{- define "runlake.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "runlake.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "runlake.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "runlake.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "runlake.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret that holds the S3 keys: the user's, or the one this chart makes. */}}
{{- define "runlake.s3SecretName" -}}
{{- if .Values.s3.existingSecret -}}
{{- .Values.s3.existingSecret -}}
{{- else -}}
{{- printf "%s-s3" (include "runlake.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Fails the render with a message naming the value, before anything is applied. */}}
{{- define "runlake.validate" -}}
{{- if not .Values.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required: the external Kafka cluster's host:port[,host:port]" -}}
{{- end -}}
{{- if not .Values.s3.endpoint -}}
{{- fail "s3.endpoint is required: the S3 API's URL, e.g. http://minio.minio.svc:9000" -}}
{{- end -}}
{{- if and (not .Values.s3.existingSecret) (or (not .Values.s3.accessKey) (not .Values.s3.secretKey)) -}}
{{- fail "s3.existingSecret (recommended) or both s3.accessKey and s3.secretKey are required" -}}
{{- end -}}
{{- end -}}

{{/* Bucket-relative URIs: s3:// for delta-rs and the artifact store, s3a:// for Spark. */}}
{{- define "runlake.s3Uri" -}}
{{- $root := index . 0 -}}
{{- printf "%s://%s/%s" (index . 1) $root.Values.s3.bucket (index . 2 | trimPrefix "/" | trimSuffix "/") -}}
{{- end -}}

{{/* kafka://BOOTSTRAP/EVENTS[?registry_topic=REGISTRY] for the gateways' --log. */}}
{{- define "runlake.kafkaLogUri" -}}
{{- $t := .Values.kafka.topics -}}
{{- $uri := printf "kafka://%s/%s" .Values.kafka.bootstrapServers $t.events -}}
{{- if ne $t.registry "runlake.registry" -}}
{{- $uri = printf "%s?registry_topic=%s" $uri $t.registry -}}
{{- end -}}
{{- $uri -}}
{{- end -}}

{{- define "runlake.gatewayArgs" -}}
{{- $root := index . 0 -}}
{{- $v := $root.Values -}}
- gateway
- --log
- {{ include "runlake.kafkaLogUri" $root | quote }}
- --artifacts-destination
- {{ include "runlake.s3Uri" (list $root "s3" $v.s3.artifactsPrefix) | quote }}
- --host
- "0.0.0.0"
- --port
- "5055"
- --http-port
- "5056"
- --query-upstream
- {{ printf "grpc://%s-query:%d" (include "runlake.fullname" $root) (int $v.query.service.grpcPort) | quote }}
- --timeout-ms
- {{ $v.gateway.timeoutMs | quote }}
- --workers
- {{ $v.gateway.workers | quote }}
{{- end -}}

{{/* Environment of every runlake container: S3 endpoint in the clear, keys by reference. */}}
{{- define "runlake.env" -}}
- name: RUNLAKE_S3_ENDPOINT_URL
  value: {{ .Values.s3.endpoint | quote }}
- name: RUNLAKE_S3_REGION
  value: {{ .Values.s3.region | quote }}
- name: RUNLAKE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "runlake.s3SecretName" . }}
      key: {{ .Values.s3.accessKeyKey }}
- name: RUNLAKE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "runlake.s3SecretName" . }}
      key: {{ .Values.s3.secretKeyKey }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod annotations: a chart-managed Secret's checksum, so changed keys roll the pods. */}}
{{- define "runlake.podAnnotations" -}}
{{- $root := index . 0 -}}
{{- if not $root.Values.s3.existingSecret }}
checksum/s3-secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
{{- end }}
{{- with index . 1 }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "runlake.httpProbes" -}}
startupProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  # up to 5 minutes: a gateway first catches up with the topics
  failureThreshold: 60
readinessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
livenessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end -}}

{{/* /tmp is a writable emptyDir in every pod (with readOnlyRootFilesystem too). */}}
{{- define "runlake.scratchVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}
{{- define "runlake.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
{{- end -}}
