{{/* Names and labels. The environment of each workload is generated from the service model: _environment.tpl. */}}
{{- define "temporal-dsql.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "temporal-dsql.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else if contains (include "temporal-dsql.name" .) .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "temporal-dsql.name" .) | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "temporal-dsql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "temporal-dsql.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "temporal-dsql.labels" -}}
{{ include "temporal-dsql.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: temporal
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "temporal-dsql.image" -}}
{{- $image := .Values.server.image -}}
{{ $image.repository }}:{{ $image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "temporal-dsql.serverServiceAccount" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-server" (include "temporal-dsql.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.create is false: set serviceAccount.name to the service account Temporal's services run as" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "temporal-dsql.setupServiceAccount" -}}
{{- if .Values.schema.serviceAccount.create }}
{{- default (printf "%s-setup" (include "temporal-dsql.fullname" .)) .Values.schema.serviceAccount.name }}
{{- else }}
{{- required "schema.serviceAccount.create is false: set schema.serviceAccount.name to the service account the setup jobs run as" .Values.schema.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Pods: non-root, read-only, no privileges; /tmp is the only place written. */}}
{{- define "temporal-dsql.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
automountServiceAccountToken: false
# No <SERVICE>_PORT=tcp://... variables from the namespace's Services: names such as TEMPORAL_FRONTEND_PORT are
# settings here, and the processes would read a Service's address for them.
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "temporal-dsql.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/* Secrets are mounted by reference (an existing Secret of the user's) and read by the image's entrypoint from
     NAME_FILE: never a value in these manifests. The optional credentials and CA bundle are set here too. */}}
{{- define "temporal-dsql.secretVolumes" -}}
{{- $sql := .root.Values.server.config.persistence.default.sql }}
{{- $uses := splitList " " .uses }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and (has "sql" $uses) $sql.existingSecret }}
- name: sql-password
  secret:
    secretName: {{ $sql.existingSecret }}
{{- end }}
{{- if and (has "search" $uses) .root.Values.elasticsearch.existingSecret }}
- name: search-password
  secret:
    secretName: {{ .root.Values.elasticsearch.existingSecret }}
{{- end }}
{{- if and (has "sql" $uses) $sql.tls.caConfigMap }}
- name: sql-ca
  configMap:
    name: {{ $sql.tls.caConfigMap }}
{{- end }}
{{- end }}

{{- define "temporal-dsql.secretMounts" -}}
{{- $sql := .root.Values.server.config.persistence.default.sql }}
{{- $uses := splitList " " .uses }}
- name: tmp
  mountPath: /tmp
{{- if and (has "sql" $uses) $sql.existingSecret }}
- name: sql-password
  mountPath: /run/secrets/sql
  readOnly: true
{{- end }}
{{- if and (has "search" $uses) .root.Values.elasticsearch.existingSecret }}
- name: search-password
  mountPath: /run/secrets/search
  readOnly: true
{{- end }}
{{- if and (has "sql" $uses) $sql.tls.caConfigMap }}
- name: sql-ca
  mountPath: /etc/temporal/sql-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "temporal-dsql.secretEnvironment" -}}
{{- $sql := .root.Values.server.config.persistence.default.sql }}
{{- $search := .root.Values.elasticsearch }}
{{- $uses := splitList " " .uses }}
{{- if and (has "sql" $uses) $sql.existingSecret }}
- name: TEMPORAL_SQL_PASSWORD_FILE
  value: /run/secrets/sql/{{ $sql.secretKey }}
{{- end }}
{{- if and (has "sql" $uses) $sql.tls.caConfigMap }}
- name: TEMPORAL_SQL_TLS_CA_FILE
  value: /etc/temporal/sql-ca/{{ $sql.tls.caKey }}
{{- end }}
{{- if has "search" $uses }}
{{- with $search.username }}
- name: TEMPORAL_ELASTICSEARCH_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if $search.existingSecret }}
- name: TEMPORAL_ELASTICSEARCH_PASSWORD_FILE
  value: /run/secrets/search/{{ $search.secretKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* Spread across zones first, then nodes; a user's own constraints replace these. */}}
{{- define "temporal-dsql.topologySpread" -}}
{{- $spec := index .root.Values.server .role }}
{{- if $spec.topologySpreadConstraints }}
{{- toYaml $spec.topologySpreadConstraints }}
{{- else }}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "temporal-dsql.selectorLabels" (dict "root" .root "component" .role) | nindent 6 }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "temporal-dsql.selectorLabels" (dict "root" .root "component" .role) | nindent 6 }}
{{- end }}
{{- end }}

{{/* The IAM principal schema setup maps the services' DSQL role to: needed on DSQL unless the services connect as the
     admin user themselves; by default the role their service account is annotated with for IRSA. */}}
{{- define "temporal-dsql.servicePrincipalArn" -}}
{{- $sql := .Values.server.config.persistence.default.sql }}
{{- if and (eq $sql.pluginName "dsql") (ne $sql.user $sql.adminUser) }}
{{- $irsa := index .Values.serviceAccount.extraAnnotations "eks.amazonaws.com/role-arn" | default "" }}
{{- required "set schema.servicePrincipalArn to the ARN of the IAM role the services' pods run as (their service account's role), or server.config.persistence.default.sql.user to the admin user" (.Values.schema.servicePrincipalArn | default $irsa) }}
{{- end }}
{{- end }}

{{/* What a release must hold that a values schema cannot say. */}}
{{- define "temporal-dsql.checks" -}}
{{- $sql := .Values.server.config.persistence.default.sql }}
{{- if gt (int $sql.maxIdleConns) (int $sql.maxConns) }}
{{- fail (printf "server.config.persistence.default.sql.maxIdleConns %v is more than maxConns %v: lower it to at most maxConns" $sql.maxIdleConns $sql.maxConns) }}
{{- end }}
{{- $tag := toString (.Values.server.image.tag | default .Chart.AppVersion) }}
{{- if not (hasPrefix .Chart.AppVersion $tag) }}
{{- fail (printf "server.image.tag %s is not Temporal %s, the release this chart's configuration and setup jobs are for: use an image of that release (a tag starting with %s), or the chart `invoke chart` writes for yours" $tag .Chart.AppVersion .Chart.AppVersion) }}
{{- end }}
{{- end }}
