{{- define "vault.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vault.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vault.namespace" -}}
{{- default .Release.Namespace .Values.global.namespace -}}
{{- end -}}

{{/* As upstream: "true", or "-" with global.enabled true, turns a component on. */}}
{{- define "vault.injectorEnabled" -}}
{{- $_ := set . "injectorEnabled" (or
  (eq (.Values.injector.enabled | toString) "true")
  (and (eq (.Values.injector.enabled | toString) "-") (eq (.Values.global.enabled | toString) "true"))) -}}
{{- end -}}

{{- define "vault.serverEnabled" -}}
{{- $_ := set . "serverEnabled" (or
  (eq (.Values.server.enabled | toString) "true")
  (and (eq (.Values.server.enabled | toString) "-") (eq (.Values.global.enabled | toString) "true"))) -}}
{{- end -}}

{{- define "vault.injectorLabels" -}}
app.kubernetes.io/name: {{ include "vault.name" . }}-agent-injector
app.kubernetes.io/instance: {{ .Release.Name }}
component: webhook
{{- end -}}

{{/* As upstream: the server's ServiceAccount follows global.enabled, not server.enabled alone. */}}
{{- define "vault.serverServiceAccountEnabled" -}}
{{- $_ := set . "serverServiceAccountEnabled" (and
  (eq (.Values.server.serviceAccount.create | toString) "true")
  (or
    (eq (.Values.server.enabled | toString) "true")
    (eq (.Values.global.enabled | toString) "true"))) -}}
{{- end -}}

{{- define "vault.serverAuthDelegator" -}}
{{- $_ := set . "serverAuthDelegator" (and
  (eq (.Values.server.authDelegator.enabled | toString) "true")
  (or (eq (.Values.server.serviceAccount.create | toString) "true") (ne .Values.server.serviceAccount.name ""))
  (or
    (eq (.Values.server.enabled | toString) "true")
    (eq (.Values.global.enabled | toString) "true"))) -}}
{{- end -}}

{{- define "vault.serviceAccount.name" -}}
{{- if .Values.server.serviceAccount.create -}}
{{- default (include "vault.fullname" .) .Values.server.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.server.serviceAccount.name -}}
{{- end -}}
{{- end -}}
