{{/* Names, labels and the derived settings every template shares. */}}

{{- define "cortex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cortex.fullname" -}}
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

{{/* The app.kubernetes.io set; pass (dict "ctx" $ "component" "gateway"). */}}
{{- define "cortex.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: cortex
{{ include "cortex.selectorLabels" . }}
{{- end -}}

{{- define "cortex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cortex.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cortex.authSecret" -}}
{{- default (printf "%s-auth" (include "cortex.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "cortex.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag -}}
{{- printf "%s:%s%s" .ctx.Values.image.repository $tag .suffix -}}
{{- end -}}

{{/* The neurons' headless Service, as the gateway resolves it. */}}
{{- define "cortex.neuronDns" -}}
{{- printf "%s-neuron.%s.svc.%s:%d" (include "cortex.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.neuron.port) -}}
{{- end -}}

{{- define "cortex.redisEnabled" -}}
{{- if or .Values.redis.enabled .Values.redis.url .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{/*
  Values arrive as float64 (YAML numbers through JSON): turn the whole ones back into integers,
  in place, so cortex.toml says 30 and 67108864, not 30.0 and 6.7108864e+07.
*/}}
{{- define "cortex.integers" -}}
{{- $table := . -}}
{{- range $key, $value := $table -}}
{{- if and (kindIs "float64" $value) (eq $value (floor $value)) -}}
{{- $_ := set $table $key (int64 $value) -}}
{{- else if kindIs "map" $value -}}
{{- include "cortex.integers" $value -}}
{{- else if kindIs "slice" $value -}}
{{- range $value -}}{{- if kindIs "map" . -}}{{- include "cortex.integers" . -}}{{- end -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* cortex.toml for the gateway: every table of .Values.config but [neuron], plus what the chart owns. */}}
{{- define "cortex.gatewayConfig" -}}
{{- $config := deepCopy (omit .Values.config "neuron") -}}
{{- $gateway := default dict (get $config "gateway") -}}
{{- $_ := set $gateway "listen" (printf "0.0.0.0:%d" (int .Values.gateway.port)) -}}
{{- $_ := set $gateway "metrics_listen" (printf "0.0.0.0:%d" (int .Values.gateway.metricsPort)) -}}
{{- $_ := set $config "gateway" $gateway -}}
{{- $discovery := default dict (get $config "discovery") -}}
{{- $_ := set $discovery "dns" (include "cortex.neuronDns" .) -}}
{{- $_ := set $config "discovery" $discovery -}}
{{- $state := default dict (get $config "state") -}}
{{- if hasKey $state "redis_url" -}}
{{- fail "config.state.redis_url is the chart's: set redis.enabled, redis.url or redis.existingSecret instead" -}}
{{- end -}}
{{- if .Values.redis.enabled -}}
{{- $_ := set $state "redis_url" (printf "redis://%s-redis:6379" (include "cortex.fullname" .)) -}}
{{- else if .Values.redis.url -}}
{{- $_ := set $state "redis_url" .Values.redis.url -}}
{{- end -}}
{{- if $state -}}
{{- $_ := set $config "state" $state -}}
{{- end -}}
{{- if not $config.models -}}
{{- $config = omit $config "models" -}}
{{- end -}}
{{- include "cortex.integers" $config -}}
{{- toToml $config -}}
{{- end -}}

{{/* cortex.toml for a neuron: [log] and [neuron], plus what the chart owns. */}}
{{- define "cortex.neuronConfig" -}}
{{- $neuron := deepCopy (default dict .Values.config.neuron) -}}
{{- $_ := set $neuron "listen" (printf "0.0.0.0:%d" (int .Values.neuron.port)) -}}
{{- $_ := set $neuron "models_dir" .Values.neuron.models.mountPath -}}
{{- $config := dict "neuron" $neuron -}}
{{- if .Values.config.log -}}
{{- $_ := set $config "log" (deepCopy .Values.config.log) -}}
{{- end -}}
{{- include "cortex.integers" $config -}}
{{- toToml $config -}}
{{- end -}}

{{- define "cortex.neuronGrace" -}}
{{- $neuron := default dict .Values.config.neuron -}}
{{- $grace := 30 -}}
{{- if hasKey $neuron "shutdown_grace_s" -}}{{- $grace = int $neuron.shutdown_grace_s -}}{{- end -}}
{{- if kindIs "invalid" .Values.neuron.terminationGracePeriodSeconds -}}
{{- add $grace 30 -}}
{{- else if le (int .Values.neuron.terminationGracePeriodSeconds) $grace -}}
{{- fail (printf "neuron.terminationGracePeriodSeconds (%d) must exceed config.neuron.shutdown_grace_s (%d): Kubernetes would kill a draining neuron mid-request" (int .Values.neuron.terminationGracePeriodSeconds) $grace) -}}
{{- else -}}
{{- int .Values.neuron.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{- define "cortex.gatewayGrace" -}}
{{- $gateway := default dict .Values.config.gateway -}}
{{- $grace := 30 -}}
{{- if hasKey $gateway "shutdown_grace_s" -}}{{- $grace = int $gateway.shutdown_grace_s -}}{{- end -}}
{{- if hasKey $gateway "drain_delay_s" -}}{{- $grace = add $grace (int $gateway.drain_delay_s) -}}{{- end -}}
{{- if kindIs "invalid" .Values.gateway.terminationGracePeriodSeconds -}}
{{- add $grace 15 -}}
{{- else if le (int .Values.gateway.terminationGracePeriodSeconds) $grace -}}
{{- fail (printf "gateway.terminationGracePeriodSeconds (%d) must exceed config.gateway.drain_delay_s + shutdown_grace_s (%d): Kubernetes would kill a draining gateway mid-stream" (int .Values.gateway.terminationGracePeriodSeconds) $grace) -}}
{{- else -}}
{{- int .Values.gateway.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* A gateway replica set larger than one without Redis would answer differently per replica. */}}
{{- define "cortex.checkReplicas" -}}
{{- $key := "gateway.replicas" -}}
{{- $replicas := int .Values.gateway.replicas -}}
{{- if .Values.gateway.autoscaling.enabled -}}
{{- $key = "gateway.autoscaling.maxReplicas" -}}
{{- $replicas = int .Values.gateway.autoscaling.maxReplicas -}}
{{- end -}}
{{- if and (gt $replicas 1) (not (include "cortex.redisEnabled" .)) -}}
{{- fail (printf "%s is %d but no Redis is configured: several gateways must share their state (stored responses for previous_response_id). Set redis.enabled=true, redis.url or redis.existingSecret, or %s=1" $key $replicas $key) -}}
{{- end -}}
{{- end -}}
