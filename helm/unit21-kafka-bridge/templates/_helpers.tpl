{{/* vim: set filetype=mustache: */}}

{{- define "bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bridge
{{- end -}}

{{- define "bridge.labels" -}}
helm.sh/chart: {{ include "bridge.chart" . }}
{{ include "bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: unit21-kafka-bridge
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bridge.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the secret settings (existing or chart-created). */}}
{{- define "bridge.secretName" -}}
{{- default (include "bridge.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "bridge.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end -}}

{{- define "bridge.kafkaTls" -}}
{{- if or (eq .Values.kafka.securityProtocol "SSL") (eq .Values.kafka.securityProtocol "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{- define "bridge.terminationGracePeriodSeconds" -}}
{{- $floor := add (int .Values.bridge.shutdownGraceSeconds) (int .Values.preStopSleepSeconds) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $floor 10 -}}
{{- else -}}
{{- $t := int .Values.terminationGracePeriodSeconds -}}
{{- if le $t $floor -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than bridge.shutdownGraceSeconds (%d) + preStopSleepSeconds (%d) = %d, or the kubelet kills the bridge before it has drained." $t (int .Values.bridge.shutdownGraceSeconds) (int .Values.preStopSleepSeconds) $floor) -}}
{{- end -}}
{{- $t -}}
{{- end -}}
{{- end -}}

{{/* Librdkafka properties the bridge sets itself (mirror of bridge.config.PROTECTED_KAFKA_PROPERTIES). */}}
{{- define "bridge.protectedKafkaProperties" -}}
bootstrap.servers enable.idempotence acks request.required.acks message.timeout.ms delivery.timeout.ms max.in.flight.requests.per.connection max.in.flight
{{- end -}}

{{/* Cross-field checks that values.schema.json cannot express; each message says how to fix it. */}}
{{- define "bridge.validate" -}}
{{- $v := .Values -}}
{{- if $v.existingSecret -}}
{{- if or $v.unit21.webhookSecrets $v.kafka.sasl.password $v.schemaRegistry.basicAuthUserInfo -}}
{{- fail "existingSecret is set, so unit21.webhookSecrets, kafka.sasl.password and schemaRegistry.basicAuthUserInfo must be empty: put them in the existing Secret instead." -}}
{{- end -}}
{{- end -}}
{{- if and (include "bridge.kafkaSasl" .) (not $v.kafka.sasl.mechanism) -}}
{{- fail (printf "kafka.securityProtocol is %s, so kafka.sasl.mechanism must be set (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)." $v.kafka.securityProtocol) -}}
{{- end -}}
{{- if and $v.kafka.tls.caSecret.name (not (include "bridge.kafkaTls" .)) -}}
{{- fail (printf "kafka.tls.caSecret is set but kafka.securityProtocol is %s: use SSL or SASL_SSL." $v.kafka.securityProtocol) -}}
{{- end -}}
{{- $protected := splitList " " (include "bridge.protectedKafkaProperties" .) -}}
{{- range $prop, $_ := $v.kafka.extraProperties -}}
{{- if has $prop $protected -}}
{{- fail (printf "kafka.extraProperties.%s would override the producer's %q, which the bridge sets itself to keep its delivery guarantee (use bridge.deliveryTimeoutSeconds for the deadline)." $prop $prop) -}}
{{- end -}}
{{- if has $prop (list "security.protocol" "sasl.mechanism" "sasl.mechanisms" "sasl.username" "sasl.password" "ssl.ca.location") -}}
{{- fail (printf "kafka.extraProperties.%s is set by a dedicated value (kafka.securityProtocol, kafka.sasl.*, kafka.tls.*): use that instead." $prop) -}}
{{- end -}}
{{- end -}}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set either minAvailable or maxUnavailable, not both (set the other to null)." -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (lt (int $v.autoscaling.maxReplicas) (int $v.autoscaling.minReplicas)) -}}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas." -}}
{{- end -}}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) -}}
{{- fail "httpRoute.enabled needs at least one httpRoute.parentRefs entry (the Gateway to attach to)." -}}
{{- end -}}
{{- if and $v.otel.enabled (eq $v.otel.tracesExporter "otlp") (not (or $v.otel.endpoint $v.otel.tracesEndpoint)) -}}
{{- fail "otel.enabled needs otel.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) or otel.tracesEndpoint." -}}
{{- end -}}
{{- end -}}

{{/* KAFKA_<PROP> variable name of a librdkafka property: compression.type -> KAFKA_COMPRESSION_TYPE. */}}
{{- define "bridge.kafkaEnvName" -}}
{{- printf "KAFKA_%s" (. | replace "." "_" | replace "-" "_" | upper) -}}
{{- end -}}

{{/* Mount paths of the CA/cert Secrets. */}}
{{- define "bridge.kafkaCaDir" -}}/etc/unit21-bridge/kafka-ca{{- end -}}
{{- define "bridge.kafkaClientCertDir" -}}/etc/unit21-bridge/kafka-client{{- end -}}
{{- define "bridge.registryCaDir" -}}/etc/unit21-bridge/registry-ca{{- end -}}
{{- define "bridge.prometheusMultiprocDir" -}}/run/prometheus-multiproc{{- end -}}

{{/*
One worker's worst-case memory in bytes, the same sum as Settings.worst_case_memory_bytes()
(bridge/config.py): 160 MiB baseline + maxConcurrency x 4 x maxBodyBytes + maxConnections x
maxHeaderBytes. A chart test ties the two together.
*/}}
{{- define "bridge.workerMemoryBytes" -}}
{{- $b := .Values.bridge -}}
{{- add 167772160 (mul (int64 $b.maxConcurrency) 4 (int64 $b.maxBodyBytes)) (mul (int64 $b.maxConnections) (int64 $b.maxHeaderBytes)) -}}
{{- end -}}
