{{- define "redis-ha.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "redis-ha.labels" -}}
app: redis-ha
release: {{ .Release.Name }}
{{- end -}}
