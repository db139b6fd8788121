{{/* Upstream names everything "hnc-..." whatever the release; so does this fixture. */}}
{{- define "hnc.fullname" -}}
hnc
{{- end -}}

{{- define "hnc.labels" -}}
app.kubernetes.io/name: hnc
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
