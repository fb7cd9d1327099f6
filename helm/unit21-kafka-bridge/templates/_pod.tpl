{{/* Pod template shared by the Deployment and the StatefulSet. */}}
{{- define "bridge.podTemplate" -}}
{{- $v := .Values -}}
{{- $keys := $v.existingSecretKeys -}}
metadata:
  labels:
    {{- include "bridge.labels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Roll the pods when the settings or the chart-created Secret change.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if not $v.existingSecret }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "bridge.serviceAccountName" . }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
  # KAFKA_* variables become librdkafka properties: the service links Kubernetes injects for
  # a Service named "kafka" (KAFKA_SERVICE_HOST, KAFKA_PORT, ...) would break start-up.
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ include "bridge.terminationGracePeriodSeconds" . }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml $v.topologySpreadConstraints | nindent 4 }}
  {{- else if $v.topologySpread.enabled }}
  topologySpreadConstraints:
    - topologyKey: topology.kubernetes.io/zone
      maxSkew: {{ $v.topologySpread.zoneSkew }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "bridge.selectorLabels" . | nindent 10 }}
    - topologyKey: kubernetes.io/hostname
      maxSkew: {{ $v.topologySpread.nodeSkew }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "bridge.selectorLabels" . | nindent 10 }}
  {{- end }}
  containers:
    - name: bridge
      image: {{ include "bridge.image" . | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: http
          containerPort: {{ $v.bridge.port }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "bridge.fullname" . }}
        {{- with $v.extraEnvFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        - name: UNIT21_WEBHOOK_SECRETS
          valueFrom:
            secretKeyRef:
              name: {{ include "bridge.secretName" . }}
              key: {{ $keys.webhookSecrets }}
              optional: {{ $v.bridge.allowUnsigned }}
        {{- if include "bridge.kafkaSasl" . }}
        {{- if not $v.kafka.sasl.username }}
        - name: KAFKA_SASL_USERNAME
          valueFrom:
            secretKeyRef:
              name: {{ include "bridge.secretName" . }}
              key: {{ $keys.kafkaSaslUsername }}
              optional: true
        {{- end }}
        - name: KAFKA_SASL_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ include "bridge.secretName" . }}
              key: {{ $keys.kafkaSaslPassword }}
              optional: {{ eq $v.kafka.sasl.mechanism "OAUTHBEARER" }}
        {{- end }}
        - name: SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
          valueFrom:
            secretKeyRef:
              name: {{ include "bridge.secretName" . }}
              key: {{ $keys.schemaRegistryBasicAuthUserInfo }}
              optional: true
        {{- if $v.otel.enabled }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: OTEL_RESOURCE_ATTRIBUTES
          value: {{ include "bridge.otelResourceAttributes" . | quote }}
        {{- end }}
        {{- range $prop, $ref := $v.kafka.secretProperties }}
        - name: {{ include "bridge.kafkaEnvName" $prop }}
          valueFrom:
            secretKeyRef:
              name: {{ $ref.secretName }}
              key: {{ $ref.key }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if $v.startupProbe.enabled }}
      startupProbe:
        httpGet:
          path: {{ $v.startupProbe.path }}
          port: http
        {{- include "bridge.probeTimings" $v.startupProbe | trim | nindent 8 }}
      {{- end }}
      {{- if $v.livenessProbe.enabled }}
      livenessProbe:
        httpGet:
          path: {{ $v.livenessProbe.path }}
          port: http
        {{- include "bridge.probeTimings" $v.livenessProbe | trim | nindent 8 }}
      {{- end }}
      {{- if $v.readinessProbe.enabled }}
      readinessProbe:
        httpGet:
          path: {{ $v.readinessProbe.path }}
          port: http
        {{- include "bridge.probeTimings" $v.readinessProbe | trim | nindent 8 }}
      {{- end }}
      lifecycle:
        preStop:
          # Keep serving while the endpoint is removed from Services and load balancers;
          # SIGTERM (and the app's drain of BRIDGE_SHUTDOWN_GRACE_SECONDS) follows.
          exec:
            command: ["sleep", "{{ int $v.preStopSleepSeconds }}"]
      resources:
        {{- include "bridge.resources" . | nindent 8 }}
      securityContext:
        {{- toYaml $v.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if ne $v.spool.mode "off" }}
        - name: spool
          mountPath: {{ $v.spool.dir }}
        {{- end }}
        {{- if gt (int $v.bridge.workers) 1 }}
        - name: prometheus-multiproc
          mountPath: {{ include "bridge.prometheusMultiprocDir" . }}
        {{- end }}
        {{- if $v.kafka.tls.caSecret.name }}
        - name: kafka-ca
          mountPath: {{ include "bridge.kafkaCaDir" . }}
          readOnly: true
        {{- end }}
        {{- if $v.kafka.tls.clientCertSecret.name }}
        - name: kafka-client-cert
          mountPath: {{ include "bridge.kafkaClientCertDir" . }}
          readOnly: true
        {{- end }}
        {{- if $v.schemaRegistry.tls.caSecret.name }}
        - name: registry-ca
          mountPath: {{ include "bridge.registryCaDir" . }}
          readOnly: true
        {{- end }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.tmpSizeLimit }}
    {{- if eq $v.spool.mode "ephemeral" }}
    - name: spool
      emptyDir:
        sizeLimit: {{ include "bridge.quantity" $v.spool.ephemeralSizeLimit | quote }}
    {{- end }}
    {{- if gt (int $v.bridge.workers) 1 }}
    - name: prometheus-multiproc
      emptyDir:
        sizeLimit: 64Mi
    {{- end }}
    {{- if $v.kafka.tls.caSecret.name }}
    - name: kafka-ca
      secret:
        secretName: {{ $v.kafka.tls.caSecret.name }}
        items:
          - key: {{ $v.kafka.tls.caSecret.key }}
            path: {{ $v.kafka.tls.caSecret.key }}
    {{- end }}
    {{- with $v.kafka.tls.clientCertSecret }}
    {{- if .name }}
    - name: kafka-client-cert
      secret:
        secretName: {{ .name }}
        defaultMode: 0440
        items:
          - key: {{ .certKey }}
            path: {{ .certKey }}
          - key: {{ .keyKey }}
            path: {{ .keyKey }}
    {{- end }}
    {{- end }}
    {{- if $v.schemaRegistry.tls.caSecret.name }}
    - name: registry-ca
      secret:
        secretName: {{ $v.schemaRegistry.tls.caSecret.name }}
        items:
          - key: {{ $v.schemaRegistry.tls.caSecret.key }}
            path: {{ $v.schemaRegistry.tls.caSecret.key }}
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- define "bridge.probeTimings" -}}
{{- if hasKey . "initialDelaySeconds" }}
initialDelaySeconds: {{ .initialDelaySeconds }}
{{- end }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- if hasKey . "successThreshold" }}
successThreshold: {{ .successThreshold }}
{{- end }}
{{- end -}}

{{- define "bridge.otelResourceAttributes" -}}
{{- $attrs := list "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" -}}
{{- range $k, $val := .Values.otel.resourceAttributes -}}
{{- $attrs = append $attrs (printf "%s=%s" $k (toString $val)) -}}
{{- end -}}
{{- join "," $attrs -}}
{{- end -}}
