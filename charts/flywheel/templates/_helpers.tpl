{{/*
Names, labels and the shared pod pieces of every Flywheel workload.
*/}}

{{- define "flywheel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release + chart, unless the release already contains the chart name.
*/}}
{{- define "flywheel.fullname" -}}
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

{{- define "flywheel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Call with (dict "ctx" $ "component" "router").
*/}}
{{- define "flywheel.labels" -}}
helm.sh/chart: {{ include "flywheel.chart" .ctx }}
{{ include "flywheel.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: flywheel
{{- end }}

{{- define "flywheel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flywheel.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of one component's objects: (dict "ctx" $ "component" "router").
*/}}
{{- define "flywheel.componentName" -}}
{{- printf "%s-%s" (include "flywheel.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flywheel.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{- define "flywheel.serviceAccountName" -}}
{{- include "flywheel.fullname" . }}
{{- end }}

{{/*
Addresses of the services the workloads talk to.
*/}}
{{- define "flywheel.redisAddress" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s:6379" (include "flywheel.componentName" (dict "ctx" . "component" "redis")) }}
{{- else }}
{{- required "redis.externalAddress is required when redis.enabled is false" .Values.redis.externalAddress }}
{{- end }}
{{- end }}

{{- define "flywheel.mlflowUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s:%d" (include "flywheel.componentName" (dict "ctx" . "component" "mlflow")) (int .Values.mlflow.port) }}
{{- else }}
{{- required "mlflow.external.trackingUri is required when mlflow.enabled is false" .Values.mlflow.external.trackingUri }}
{{- end }}
{{- end }}

{{/*
host:port of the recommender's HTTP endpoint (what `flywheel recommend --url` takes).
*/}}
{{- define "flywheel.routerAddress" -}}
{{- printf "%s:%d" (include "flywheel.componentName" (dict "ctx" . "component" "router")) (int .Values.serving.router.httpPort) }}
{{- end }}

{{/*
The security context of every Flywheel container: non-root, read-only root, no privileges.
*/}}
{{- define "flywheel.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "flywheel.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Environment shared by the containers of the project image: the config file, the event log on Kafka,
Redis, MLflow and the S3 store (credentials only from the referenced Secret).
*/}}
{{- define "flywheel.env" -}}
- name: FLYWHEEL_CONFIG
  value: /etc/flywheel/flywheel.yaml
- name: FLYWHEEL_HOME
  value: /var/lib/flywheel
- name: HOME
  value: /tmp
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: FLYWHEEL_EVENT_LOG
  value: kafka
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: FLYWHEEL_ONLINE_STORE
  value: redis
- name: REDIS_URL
  value: {{ include "flywheel.redisAddress" . | quote }}
- name: MLFLOW_TRACKING_URI
  value: {{ include "flywheel.mlflowUri" . | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ .Values.s3.endpoint | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}

{{/*
Writable folders of a read-only container: /tmp and the Flywheel home, plus the config file.
*/}}
{{- define "flywheel.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /var/lib/flywheel
- name: config
  mountPath: /etc/flywheel
  readOnly: true
{{- end }}

{{- define "flywheel.volumes" -}}
- name: tmp
  emptyDir: {}
- name: config
  configMap:
    name: {{ include "flywheel.fullname" . }}-config
{{- end }}

{{/*
Checksum annotation: pods restart when the Flywheel configuration changes.
*/}}
{{- define "flywheel.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}
