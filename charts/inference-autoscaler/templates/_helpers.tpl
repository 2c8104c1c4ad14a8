{{/* Names and labels shared by every template. */}}

{{- define "ia.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name; components append -router, -keda, ... (kept under 63 characters). */}}
{{- define "ia.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains (include "ia.name" .) .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ia.name" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ia.routerName" -}}{{ include "ia.fullname" . }}-router{{- end -}}

{{- define "ia.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ia.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "root" $ "component" "controller"). */}}
{{- define "ia.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ia.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ia.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ia.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ia.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Where the image keeps the profiles copied from models/ (AUTOSCALER_MODELS_DIR in the Containerfile). */}}
{{- define "ia.modelsDir" -}}/opt/inference-autoscaler/models{{- end -}}

{{/* A profile's ConfigMap key: its name with "/" (not allowed in keys) as "--". */}}
{{/* The namespace the controller watches and holds its Role in; "" only when asked to be cluster-wide. */}}
{{- define "ia.watchNamespace" -}}
{{- if .Values.controller.watchNamespace -}}{{ .Values.controller.watchNamespace }}
{{- else if not .Values.controller.clusterWide -}}{{ .Release.Namespace }}
{{- end -}}
{{- end -}}

{{- define "ia.profileKey" -}}{{ . | replace "/" "--" }}{{- end -}}

{{/* Fail with a clear message when an optional object needs an API the cluster does not serve. */}}
{{- define "ia.requireApi" -}}
{{- if not (.root.Capabilities.APIVersions.Has .api) -}}
{{- fail (printf "%s needs the %s API, which this cluster does not serve (install it first, or pass --api-versions %s to helm template)" .what .api .api) -}}
{{- end -}}
{{- end -}}

{{/* The extra profiles, each mounted over the image's models/ at its name (controller and router alike). */}}
{{- define "ia.profileMounts" -}}
{{- range $profile, $_ := .Values.profiles }}
- name: profiles
  mountPath: {{ include "ia.modelsDir" $ }}/{{ $profile }}
  subPath: {{ include "ia.profileKey" $profile }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ia.profileVolume" -}}
{{- if .Values.profiles }}
- name: profiles
  configMap:
    name: {{ include "ia.fullname" . }}-profiles
{{- end }}
{{- end -}}
