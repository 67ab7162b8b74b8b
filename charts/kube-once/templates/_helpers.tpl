{{/* Chart name, overridable. */}}
{{- define "kube-once.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects (Service, webhook configuration, Secret
prefix). The release name alone when it already contains the chart name, so
`helm install kube-once` gives plain "kube-once" everywhere.
*/}}
{{- define "kube-once.fullname" -}}
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

{{- define "kube-once.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-once.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-once.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels. helm.sh/chart and app.kubernetes.io/managed-by are the only
Helm bookkeeping labels: scripts/render-manifests.sh drops exactly these two
from the plain manifests in webhook-config/.
*/}}
{{- define "kube-once.labels" -}}
helm.sh/chart: {{ include "kube-once.chart" . }}
{{ include "kube-once.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: webhook
app.kubernetes.io/part-of: kube-once
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kube-once.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-once.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: repository@digest when a digest is pinned, else repository:tag. */}}
{{- define "kube-once.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Image of the injected kube-once-install initContainer. */}}
{{- define "kube-once.toolsImage" -}}
{{- default (include "kube-once.image" .) .Values.config.toolsImage }}
{{- end }}

{{/* The Secret holding the serving certificate (created by kube-once, by
cert-manager, or by you in mode secret): <fullname>-tls unless named, in
every mode, as the values table says. */}}
{{- define "kube-once.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "kube-once.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{/* Name of the serving Certificate in cert-manager mode (also used by inject-ca-from). */}}
{{- define "kube-once.certificateName" -}}
{{- printf "%s-serving" (include "kube-once.fullname" .) }}
{{- end }}

{{- define "kube-once.selfManaged" -}}
{{- if eq .Values.tls.mode "self-managed" }}true{{ end }}
{{- end }}

{{/* Whether the server talks to the API server: self-managed TLS, or migration Events. */}}
{{- define "kube-once.usesApi" -}}
{{- if or (include "kube-once.selfManaged" .) .Values.events.enabled }}true{{ end }}
{{- end }}

{{/* The Lease that elects the one replica recording migration Events. */}}
{{- define "kube-once.eventsLeaseName" -}}
{{- printf "%s-events" (include "kube-once.fullname" .) }}
{{- end }}

{{/* The webhook configuration file, as the core parses it (camelCase keys). */}}
{{- define "kube-once.configFile" -}}
{{- $config := dict "toolsImage" (include "kube-once.toolsImage" .) "defaults" .Values.config.defaults -}}
{{- with .Values.config.defaultPreset }}
{{- $_ := set $config "defaultPreset" . }}
{{- end }}
{{- if and .Values.config.delivery (ne .Values.config.delivery "initContainer") }}
{{- $_ := set $config "delivery" .Values.config.delivery }}
{{- end }}
{{- with .Values.config.presets }}
{{- $_ := set $config "presets" . }}
{{- end }}
{{- with include "kube-once.installSecurityContext" . | fromYaml }}
{{- $_ := set $config "installSecurityContext" . }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The webhook pod's securityContext (also the helm test pod's). With
`openshift: true` no user or group ID is fixed: OpenShift's restricted-v2 SCC
(and platforms like it) assigns them from the namespace's range, and refuses
fixed ones outside it.
*/}}
{{- define "kube-once.podSecurityContext" -}}
{{- $context := .Values.podSecurityContext | default dict }}
{{- if .Values.openshift }}
{{- $context = omit $context "runAsUser" "runAsGroup" "fsGroup" "supplementalGroups" }}
{{- end }}
{{- toYaml $context }}
{{- end }}

{{/* The webhook container's securityContext (also the helm test container's). */}}
{{- define "kube-once.containerSecurityContext" -}}
{{- $context := .Values.containerSecurityContext | default dict }}
{{- if .Values.openshift }}
{{- $context = omit $context "runAsUser" "runAsGroup" }}
{{- end }}
{{- toYaml $context }}
{{- end }}

{{/*
securityContext of the injected kube-once-install initContainer, rendered
into the config file as `installSecurityContext` (replacing the core's
built-in one whole) only when set, or in OpenShift mode; empty otherwise, and
the core's built-in one (runAsUser 65532) applies.
*/}}
{{- define "kube-once.installSecurityContext" -}}
{{- $context := .Values.config.installSecurityContext | default dict }}
{{- if .Values.openshift }}
{{- if not $context }}
{{- $context = dict "runAsNonRoot" true "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "capabilities" (dict "drop" (list "ALL")) "seccompProfile" (dict "type" "RuntimeDefault") }}
{{- end }}
{{- $context = omit $context "runAsUser" "runAsGroup" }}
{{- end }}
{{- if $context }}
{{- toYaml $context }}
{{- end }}
{{- end }}



{{/* Pod terminationGracePeriodSeconds: longer than the server's own drain. */}}
{{- define "kube-once.terminationGracePeriodSeconds" -}}
{{- $drain := add .Values.server.gracePeriodSeconds .Values.server.requestTimeoutSeconds }}
{{- $value := .Values.server.terminationGracePeriodSeconds | default (add $drain 5) }}
{{- if le (int $value) (int $drain) }}
{{- fail (printf "server.terminationGracePeriodSeconds (%v) must exceed server.gracePeriodSeconds + server.requestTimeoutSeconds (%v), or the kubelet kills admission requests in flight" $value $drain) }}
{{- end }}
{{- $value }}
{{- end }}

{{/*
Whether an optional object of a CRD API is rendered: "true" for enabled true,
or for enabled auto when the cluster serves the API (`helm template`:
--api-versions). Called with (list $ .Values.x.enabled "group/version/Kind").
*/}}
{{- define "kube-once.wanted" -}}
{{- $root := index . 0 }}
{{- $enabled := index . 1 | toString }}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") ($root.Capabilities.APIVersions.Has (index . 2))) }}true{{ end }}
{{- end }}

{{/* The Prometheus selector of the webhook's scrape targets (job = the Service's name). */}}
{{- define "kube-once.targetSelector" -}}
{{- printf "job=%q, namespace=%q" (include "kube-once.fullname" .) .Release.Namespace }}
{{- end }}
