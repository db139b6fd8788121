{{- define "argo-rollouts.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "argo-rollouts.selectorLabels" -}}
app.kubernetes.io/name: argo-rollouts
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "argo-rollouts.labels" -}}
{{ include "argo-rollouts.selectorLabels" . }}
app.kubernetes.io/part-of: argo-rollouts
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "argo-rollouts.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "argo-rollouts.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
