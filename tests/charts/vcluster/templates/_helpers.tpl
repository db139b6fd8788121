{{- define "vcluster.labels" -}}
app: vcluster
chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
release: {{ .Release.Name | quote }}
heritage: {{ .Release.Service | quote }}
{{- end -}}

{{- define "vcluster.selectorLabels" -}}
app: vcluster
release: {{ .Release.Name | quote }}
{{- end -}}

{{/* As upstream: a cluster role is needed when something is synced from the host's cluster-scoped kinds. */}}
{{- define "vcluster.clusterRoleNeeded" -}}
{{- if eq (toString .Values.rbac.clusterRole.enabled) "true" -}}
true
{{- else if eq (toString .Values.rbac.clusterRole.enabled) "auto" -}}
{{- if or .Values.sync.fromHost.nodes.enabled .Values.sync.fromHost.ingressClasses.enabled -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* As upstream: exportKubeConfig.secret and .additionalSecrets exclude each other. */}}
{{- define "vcluster.exportKubeConfig.validate" -}}
{{- $secret := .Values.exportKubeConfig.secret | default dict -}}
{{- $secretSet := or (ne (trim (default "" $secret.name)) "") (ne (trim (default "" $secret.namespace)) "") -}}
{{- $additionalSet := gt (len (default list .Values.exportKubeConfig.additionalSecrets)) 0 -}}
{{- if and $secretSet $additionalSet -}}
{{- fail "exportKubeConfig.secret and exportKubeConfig.additionalSecrets cannot be set at the same time" -}}
{{- end -}}
{{- range .Values.exportKubeConfig.additionalSecrets -}}
{{- if not (or .name .namespace) -}}
{{- fail (cat "additional secret must have name and/or namespace set, found:" (toJson .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
