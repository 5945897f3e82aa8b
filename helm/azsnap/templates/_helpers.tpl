{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "azsnap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's resources. */}}
{{- define "azsnap.fullname" -}}
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

{{- define "azsnap.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "azsnap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "azsnap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "azsnap.labels" -}}
helm.sh/chart: {{ include "azsnap.chart" . }}
{{ include "azsnap.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: azsnap
{{- end }}

{{- define "azsnap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "azsnap.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when image.digest is set (the tag is then ignored). */}}
{{- define "azsnap.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Mount point of the tenancy allow-list ConfigMap; the operator reads scopes.yaml in it. */}}
{{- define "azsnap.scopesDir" -}}
/etc/azsnap/scopes
{{- end }}

{{/* True ("true") when workload identity wiring applies. */}}
{{- define "azsnap.workloadIdentity" -}}
{{- if eq .Values.azure.credential "workload-identity" }}true{{ end }}
{{- end }}

{{/* The runbook of an alert: runbook_url when prometheusRule.runbookUrl is set, else where to read it. */}}
{{- define "azsnap.runbook" -}}
{{- $base := index . 0 }}
{{- $anchor := index . 1 }}
{{- if $base }}
runbook_url: {{ printf "%s#%s" $base $anchor | quote }}
{{- else }}
runbook: {{ printf "docs/operations.md#%s in the azsnap repository" $anchor | quote }}
{{- end }}
{{- end }}
