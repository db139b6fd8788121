{{- define "nautes-server.name" -}}nautes-server{{- end -}}
{{- define "nautes-server.registryNamespace" -}}{{ .Values.registryNamespace | default .Release.Namespace }}{{- end -}}
{{- define "nautes-server.labels" -}}
app.kubernetes.io/name: nautes-server
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "nautes-server.selector" -}}
app.kubernetes.io/name: nautes-server
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
