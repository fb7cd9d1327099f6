{{/* vim: set filetype=mustache: */}}

{{- define "bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/*
Helm's convention truncated at 52 rather than 63: a StatefulSet's pods carry the label
controller-revision-hash=<name>-<10-character hash>, which must fit in 63 characters, and
"<name>-headless", "<name>-dashboard" still fit. values.schema.json caps fullnameOverride at 52.
*/}}
{{- define "bridge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname><suffix>" within 63 characters: (dict "ctx" $ "suffix" "-headless"). */}}
{{- define "bridge.suffixedName" -}}
{{- $base := include "bridge.fullname" .ctx | trunc (int (sub 63 (len .suffix))) | trimSuffix "-" -}}
{{- printf "%s%s" $base .suffix -}}
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

{{/*
The pod's shutdown budget, from its parts: the preStop sleep, then SIGTERM and
BRIDGE_SHUTDOWN_GRACE_SECONDS of drain (in-flight requests, the spool to Kafka), then up to
5 s until the process has exited (producer close, trace flush: the app bounds them), then a
margin for the kubelet's own timing. A given value below the sum is refused.
*/}}
{{- define "bridge.appExitSeconds" -}}5{{- end -}}
{{- define "bridge.shutdownMarginSeconds" -}}5{{- end -}}
{{- define "bridge.terminationGracePeriodSeconds" -}}
{{- $v := .Values -}}
{{- $derived := add (int $v.preStopSleepSeconds) (int $v.bridge.shutdownGraceSeconds) (int (include "bridge.appExitSeconds" .)) (int (include "bridge.shutdownMarginSeconds" .)) -}}
{{- if kindIs "invalid" $v.terminationGracePeriodSeconds -}}
{{- $derived -}}
{{- else -}}
{{- $t := int $v.terminationGracePeriodSeconds -}}
{{- if lt $t $derived -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) is below the shutdown budget %d = preStopSleepSeconds (%d) + bridge.shutdownGraceSeconds (%d) + %d s for the process to exit (trace flush included) + %d s margin: the kubelet would kill the bridge while it drains. Leave it empty (null) to derive it, or raise it to at least %d." $t $derived (int $v.preStopSleepSeconds) (int $v.bridge.shutdownGraceSeconds) (int (include "bridge.appExitSeconds" .)) (int (include "bridge.shutdownMarginSeconds" .)) $derived) -}}
{{- end -}}
{{- $t -}}
{{- end -}}
{{- end -}}

{{/* Librdkafka properties the bridge sets itself (mirror of bridge.config.PROTECTED_KAFKA_PROPERTIES). */}}
{{- define "bridge.protectedKafkaProperties" -}}
bootstrap.servers enable.idempotence acks request.required.acks message.timeout.ms delivery.timeout.ms max.in.flight.requests.per.connection max.in.flight
{{- end -}}

{{/* librdkafka properties whose value is a secret: only through kafka.secretProperties. */}}
{{- define "bridge.secretLookingProperty" -}}
{{- if or (regexMatch "(password|secret|passphrase)" .) (regexMatch "(^|\\.)key\\.pem$" .) -}}true{{- end -}}
{{- end -}}

{{/* Cross-field checks that values.schema.json cannot express; each message says how to fix it. */}}
{{- define "bridge.validate" -}}
{{- $v := .Values -}}
{{- /* Values of earlier chart versions: say what replaced them instead of ignoring them. */ -}}
{{- if or (hasKey $v.spool "enabled") (hasKey $v.spool "disabled") -}}
{{- fail "spool.enabled and spool.disabled were replaced by spool.mode: persistent (a StatefulSet with a claim per pod; the new default, was spool.enabled=true), ephemeral (an emptyDir, lost with the pod; was the old default) or off (was spool.disabled=true). Remove them and set spool.mode; README \"Switching spool modes\" has the upgrade steps." -}}
{{- end -}}
{{- if hasKey $v.spool "emptyDirSizeLimit" -}}
{{- fail "spool.emptyDirSizeLimit was renamed spool.ephemeralSizeLimit." -}}
{{- end -}}
{{- if hasKey $v.networkPolicy.egress.kafka "ports" -}}
{{- fail "networkPolicy.egress.kafka.ports was replaced: the ports of kafka.bootstrapServers are always allowed; list any other broker port in networkPolicy.egress.kafka.extraPorts." -}}
{{- end -}}
{{- $persistent := eq $v.spool.mode "persistent" -}}
{{- if eq $v.spool.persistentVolumeClaimRetentionPolicy.whenScaled "Delete" -}}
{{- fail "spool.persistentVolumeClaimRetentionPolicy.whenScaled=Delete deletes a scaled-away pod's claim with the records it could not send yet (they were answered 202). Use Retain, and drain a claim before deleting it (README \"Orphaned claims\")." -}}
{{- end -}}
{{- if $v.autoscaling.enabled -}}
{{- if and (kindIs "invalid" $v.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" $v.autoscaling.targetMemoryUtilizationPercentage) -}}
{{- fail "autoscaling.enabled with neither targetCPUUtilizationPercentage nor targetMemoryUtilizationPercentage: Kubernetes would silently target 80 % CPU. Set one of them, or set autoscaling.enabled=false (replicaCount then applies)." -}}
{{- end -}}
{{- $scaleDown := (($v.autoscaling.behavior | default dict).scaleDown | default dict) -}}
{{- if and $persistent (ne (toString $scaleDown.selectPolicy) "Disabled") (not $v.autoscaling.acknowledgeScaleDownStrandsSpool) -}}
{{- fail "autoscaling with spool.mode=persistent: a scale-down removes the highest pods, and records they could not send before exiting (Kafka unreachable) stay on their retained claims, unsent until the HPA scales back that far. Choose one: autoscaling.behavior.scaleDown.selectPolicy=Disabled (the HPA only scales up), autoscaling.acknowledgeScaleDownStrandsSpool=true (and drain orphaned claims: README \"Orphaned claims\"), or replicaCount without autoscaling." -}}
{{- end -}}
{{- end -}}
{{- if and $v.podDisruptionBudget.enabled (kindIs "invalid" $v.podDisruptionBudget.minAvailable) (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable) -}}
{{- fail "podDisruptionBudget.enabled needs minAvailable or maxUnavailable (one of them, not null), or set podDisruptionBudget.enabled=false." -}}
{{- end -}}
{{- range $i, $host := $v.ingress.hosts -}}
{{- range $j, $p := $host.paths -}}
{{- if ne $p.path (include "bridge.webhookPath" $) -}}
{{- fail (printf "ingress.hosts[%d].paths[%d].path is %q: only %s may be exposed (/metrics, /readyz and /healthz must stay inside the cluster). Use path %s." $i $j $p.path (include "bridge.webhookPath" $) (include "bridge.webhookPath" $)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $i, $p := $v.httpRoute.paths -}}
{{- if ne $p.path (include "bridge.webhookPath" $) -}}
{{- fail (printf "httpRoute.paths[%d].path is %q: only %s may be exposed (/metrics, /readyz and /healthz must stay inside the cluster). Use path %s." $i $p.path (include "bridge.webhookPath" $) (include "bridge.webhookPath" $)) -}}
{{- end -}}
{{- end -}}
{{- range $prop, $_ := $v.kafka.secretProperties -}}
{{- if hasKey $v.kafka.extraProperties $prop -}}
{{- fail (printf "kafka property %s is set in both kafka.extraProperties and kafka.secretProperties: keep it in secretProperties only." $prop) -}}
{{- end -}}
{{- end -}}
{{- if $v.existingSecret -}}
{{- if or $v.unit21.webhookSecrets $v.kafka.sasl.password $v.schemaRegistry.basicAuthUserInfo -}}
{{- fail "existingSecret is set, so unit21.webhookSecrets, kafka.sasl.password and schemaRegistry.basicAuthUserInfo must be empty: put them in the existing Secret instead." -}}
{{- end -}}
{{- end -}}
{{- if and (include "bridge.kafkaSasl" .) (not $v.kafka.sasl.mechanism) -}}
{{- fail (printf "kafka.securityProtocol is %s, so kafka.sasl.mechanism must be set (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)." $v.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (include "bridge.kafkaSasl" .) (ne $v.kafka.sasl.mechanism "OAUTHBEARER") (not $v.existingSecret) -}}
{{- if not $v.kafka.sasl.password -}}
{{- fail (printf "kafka.securityProtocol is %s with mechanism %s but there is no password: set kafka.sasl.password, or existingSecret with the key %s." $v.kafka.securityProtocol $v.kafka.sasl.mechanism $v.existingSecretKeys.kafkaSaslPassword) -}}
{{- end -}}
{{- if not $v.kafka.sasl.username -}}
{{- fail (printf "kafka.securityProtocol is %s with mechanism %s but there is no username: set kafka.sasl.username, or existingSecret with the key %s." $v.kafka.securityProtocol $v.kafka.sasl.mechanism $v.existingSecretKeys.kafkaSaslUsername) -}}
{{- end -}}
{{- end -}}
{{- if and $v.kafka.tls.caSecret.name (not (include "bridge.kafkaTls" .)) -}}
{{- fail (printf "kafka.tls.caSecret is set but kafka.securityProtocol is %s: use SSL or SASL_SSL." $v.kafka.securityProtocol) -}}
{{- end -}}
{{- $protected := splitList " " (include "bridge.protectedKafkaProperties" .) -}}
{{- range $prop, $_ := merge (dict) $v.kafka.extraProperties $v.kafka.secretProperties -}}
{{- if has $prop $protected -}}
{{- fail (printf "kafka property %s (extraProperties or secretProperties) would override the producer's %q, which the bridge sets itself to keep its delivery guarantee (use bridge.deliveryTimeoutSeconds for the deadline)." $prop $prop) -}}
{{- end -}}
{{- if has $prop (list "security.protocol" "sasl.mechanism" "sasl.mechanisms" "sasl.username" "sasl.password" "ssl.ca.location") -}}
{{- fail (printf "kafka property %s (extraProperties or secretProperties) is set by a dedicated value (kafka.securityProtocol, kafka.sasl.*, kafka.tls.*): use that instead." $prop) -}}
{{- end -}}
{{- end -}}
{{- range $prop, $_ := $v.kafka.extraProperties -}}
{{- if include "bridge.secretLookingProperty" $prop -}}
{{- fail (printf "kafka.extraProperties.%s looks like a secret and would be written in plain text into the ConfigMap: move it to kafka.secretProperties (%s: {secretName: <Secret>, key: <key>}), which reads it from a Secret." $prop $prop) -}}
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
(bridge/settings.py): 160 MiB baseline + maxConcurrency x 8 x maxBodyBytes + maxConnections x
maxHeaderBytes. A chart test ties the two together.
*/}}
{{- define "bridge.workerBaselineBytes" -}}167772160{{- end -}}{{/* WORKER_BASELINE_BYTES, 160 MiB */}}
{{- define "bridge.bodyCopies" -}}8{{- end -}}{{/* BODY_COPIES */}}
{{- define "bridge.workerMemoryBytes" -}}
{{- $b := .Values.bridge -}}
{{- add (int64 (include "bridge.workerBaselineBytes" .)) (mul (int64 $b.maxConcurrency) (int64 (include "bridge.bodyCopies" .)) (int64 $b.maxBodyBytes)) (mul (int64 $b.maxConnections) (int64 $b.maxHeaderBytes)) -}}
{{- end -}}

{{/* Memory of uvicorn's supervisor and multiprocessing's resource tracker with workers > 1
(measured 49.7 + 12.1 MiB: bench/worker_memory.py, docs/operations.md § Sizing). */}}
{{- define "bridge.supervisorMemoryBytes" -}}
{{- if gt (int .Values.bridge.workers) 1 }}67108864{{ else }}0{{ end -}}
{{- end -}}

{{/*
Bytes of a Kubernetes quantity: (dict "value" V "name" "spool.size" "binary" true). Integers are
bytes; strings take Ki/Mi/Gi/Ti (and k/M/G/T unless binary). Anything else fails, naming the value.
*/}}
{{- define "bridge.bytes" -}}
{{- $q := .value -}}
{{- if or (kindIs "float64" $q) (kindIs "int" $q) (kindIs "int64" $q) -}}
{{- int64 $q -}}
{{- else -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if not .binary -}}
{{- $units = merge $units (dict "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000) -}}
{{- end -}}
{{- $s := toString $q -}}
{{- $number := regexReplaceAll "^([0-9]+(\\.[0-9]+)?)[A-Za-z]*$" $s "${1}" -}}
{{- $unit := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" $s "" -}}
{{- if or (not (regexMatch "^[0-9]+(\\.[0-9]+)?[A-Za-z]*$" $s)) (not (hasKey $units $unit)) -}}
{{- fail (printf "%s is %q: use %s, e.g. 512Mi or 2Gi." .name $s (ternary "a number of bytes or the binary units Ki, Mi, Gi or Ti (\"MB\" and \"M\" are not binary)" "a Kubernetes quantity (Ki, Mi, Gi, Ti, k, M, G, T)" .binary)) -}}
{{- end -}}
{{- if contains "." $number -}}
{{- mulf (float64 $number) (get $units $unit) | ceil | int64 -}}
{{- else -}}
{{- mul (int64 $number) (get $units $unit) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The pod's memory: bridge.workers x one worker's worst case, plus the supervisor. */}}
{{- define "bridge.podMemoryBytes" -}}
{{- add (mul (int64 .Values.bridge.workers) (int64 (include "bridge.workerMemoryBytes" .))) (int64 (include "bridge.supervisorMemoryBytes" .)) -}}
{{- end -}}

{{/* The container's memory limit (= request), as a quantity: derived and rounded up to Mi, or the
value given, which must cover the derived one. */}}
{{- define "bridge.memoryLimit" -}}
{{- $need := int64 (include "bridge.podMemoryBytes" .) -}}
{{- $needMi := div (add $need 1048575) 1048576 -}}
{{- $limits := .Values.resources.limits | default dict -}}
{{- if hasKey $limits "memory" -}}
{{- $given := int64 (include "bridge.bytes" (dict "value" $limits.memory "name" "resources.limits.memory" "binary" true)) -}}
{{- if lt $given $need -}}
{{- fail (printf "resources.limits.memory %v is below what %d worker(s) can use at worst, %dMi (bridge.workers x (160Mi + bridge.maxConcurrency x 8 x bridge.maxBodyBytes + bridge.maxConnections x bridge.maxHeaderBytes)%s): remove it to let the chart derive it, raise it, or lower those settings." $limits.memory (int .Values.bridge.workers) $needMi (ternary " + 64Mi for the supervisor" "" (gt (int .Values.bridge.workers) 1))) -}}
{{- end -}}
{{- $limits.memory -}}
{{- else -}}
{{- printf "%dMi" $needMi -}}
{{- end -}}
{{- end -}}

{{/* resources with memory request = limit: a pod that may use its limit must not be the first evicted. */}}
{{- define "bridge.resources" -}}
{{- $r := deepCopy .Values.resources -}}
{{- $limit := include "bridge.memoryLimit" . -}}
{{- $requests := $r.requests | default dict -}}
{{- if and (hasKey $requests "memory") (ne (toString $requests.memory) $limit) -}}
{{- fail (printf "resources.requests.memory (%v) must equal the memory limit (%s): a bridge that may use its limit must not be evicted first under node memory pressure. Remove resources.requests.memory; the chart sets it to the limit." $requests.memory $limit) -}}
{{- end -}}
{{- $_ := set $requests "memory" $limit -}}
{{- $_ := set $r "requests" $requests -}}
{{- $limits := $r.limits | default dict -}}
{{- $_ := set $limits "memory" $limit -}}
{{- $_ := set $r "limits" $limits -}}
{{- toYaml $r -}}
{{- end -}}

{{/* BRIDGE_MEMORY_BUDGET_BYTES: one worker's share of the limit (the derived limit gives exactly
bridge.workerMemoryBytes). */}}
{{- define "bridge.memoryBudgetBytes" -}}
{{- if not (hasKey (.Values.resources.limits | default dict) "memory") -}}
{{- include "bridge.workerMemoryBytes" . -}}
{{- else -}}
{{- $limit := int64 (include "bridge.bytes" (dict "value" (include "bridge.memoryLimit" .) "name" "resources.limits.memory" "binary" true)) -}}
{{- $share := div (sub $limit (int64 (include "bridge.supervisorMemoryBytes" .))) (int64 .Values.bridge.workers) -}}
{{- max $share (int64 (include "bridge.workerMemoryBytes" .)) | int64 -}}
{{- end -}}
{{- end -}}

{{/* A quantity value as Kubernetes reads it: strings as given, numbers as whole bytes (never 1e+10). */}}
{{- define "bridge.quantity" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ int64 . }}{{ end -}}
{{- end -}}

{{/* Size of the volume the spool lives on: the claim (persistent) or the emptyDir's sizeLimit. */}}
{{- define "bridge.spoolVolumeBytes" -}}
{{- if eq .Values.spool.mode "persistent" -}}
{{- include "bridge.bytes" (dict "value" .Values.spool.size "name" "spool.size" "binary" false) -}}
{{- else -}}
{{- include "bridge.bytes" (dict "value" .Values.spool.ephemeralSizeLimit "name" "spool.ephemeralSizeLimit" "binary" false) -}}
{{- end -}}
{{- end -}}

{{/*
BRIDGE_SPOOL_MAX_BYTES (each worker's cap). The volume must hold every worker's file at its cap
plus, while a dead worker's file is adopted, that file and the adopter's write-ahead log:
(workers + 2) x cap. Empty derives the largest such cap in whole MiB.
*/}}
{{- define "bridge.spoolMaxBytes" -}}
{{- $v := .Values -}}
{{- $volume := int64 (include "bridge.spoolVolumeBytes" .) -}}
{{- $slots := add (int64 $v.bridge.workers) 2 -}}
{{- $where := ternary "spool.size" "spool.ephemeralSizeLimit" (eq $v.spool.mode "persistent") -}}
{{- if kindIs "invalid" $v.spool.maxBytes -}}
{{- $cap := mul (div (div $volume $slots) 1048576) 1048576 -}}
{{- if lt $cap 67108864 -}}
{{- fail (printf "%s leaves %d MiB per worker's spool ((bridge.workers + 2) files must fit): raise %s to at least %dMi." $where (div $cap 1048576) $where (mul $slots 64)) -}}
{{- end -}}
{{- $cap -}}
{{- else -}}
{{- $cap := int64 $v.spool.maxBytes -}}
{{- if gt (mul $cap $slots) $volume -}}
{{- fail (printf "spool.maxBytes (%d) x (bridge.workers + 2 = %d) needs %dMi but %s holds %dMi: each worker has its own spool file, and adopting a dead worker's file needs room for it and the write-ahead log. Raise %s, lower spool.maxBytes, or leave it empty to derive it." $cap $slots (div (add (mul $cap $slots) 1048575) 1048576) $where (div $volume 1048576) $where) -}}
{{- end -}}
{{- $cap -}}
{{- end -}}
{{- end -}}

{{/* Broker ports the NetworkPolicy allows: every port of kafka.bootstrapServers plus the extra ones (JSON list). */}}
{{- define "bridge.kafkaPorts" -}}
{{- $ports := list -}}
{{- range $entry := splitList "," .Values.kafka.bootstrapServers -}}
{{- $port := regexFind "[0-9]+$" (trim $entry) -}}
{{- if $port -}}
{{- $ports = append $ports (int $port) -}}
{{- end -}}
{{- end -}}
{{- range .Values.networkPolicy.egress.kafka.extraPorts -}}
{{- $ports = append $ports (int .) -}}
{{- end -}}
{{- $ports | uniq | toJson -}}
{{- end -}}

{{/* The only path the Ingress or HTTPRoute may expose; /metrics, /readyz and /healthz stay inside. */}}
{{- define "bridge.webhookPath" -}}/webhooks/unit21{{- end -}}
