{{- define "tekton-pipeline.labels" -}}
app.kubernetes.io/instance: default
app.kubernetes.io/part-of: tekton-pipelines
app.kubernetes.io/version: {{ printf "v%s" .Chart.AppVersion }}
pipeline.tekton.dev/release: {{ printf "v%s" .Chart.AppVersion }}
{{- end -}}
