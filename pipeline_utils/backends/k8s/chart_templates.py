"""The chart's templates (seed 002's Deployment, Service, Ingress and ConfigMap, plus an HPA), in the Go-template
subset :mod:`pipeline_utils.backends.k8s.gotemplate` renders. Names come from the chart's name (the deployment's),
so the Services of an endpoint's deployments have known names."""

from __future__ import annotations

from pipeline_utils.deploy.image import APP_FOLDER, IMAGE_USER, PROFILE_ENV, RUNTIME_HOME, SERVING_MARKER

LABELS = """\
    app.kubernetes.io/name: {{ .Chart.Name }}
    app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
    app.kubernetes.io/managed-by: mlops"""

DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ .Chart.Name }}}}
  labels:
{LABELS}
spec:
  {{{{- if not .Values.autoscaling.enabled }}}}
  replicas: {{{{ .Values.replicaCount | int }}}}
  {{{{- end }}}}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{{{ .Chart.Name }}}}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{{{ .Chart.Name }}}}
    spec:
      {{{{- if .Values.imagePullSecrets }}}}
      imagePullSecrets:
        {{{{- toYaml .Values.imagePullSecrets | nindent 8 }}}}
      {{{{- end }}}}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{{{ .Values.terminationGracePeriodSeconds | int }}}}
      securityContext:
        runAsNonRoot: true
        runAsUser: {IMAGE_USER}
        fsGroup: {IMAGE_USER}
      containers:
        - name: model
          image: "{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}"
          imagePullPolicy: {{{{ .Values.image.pullPolicy }}}}
          args:
            - --folder
            - {APP_FOLDER}
            - --name
            - {{{{ .Values.deployment.name | quote }}}}
            - --kernel-filename
            - {{{{ .Values.deployment.kernelFilename | quote }}}}
            {{{{- range .Values.customArgs.names }}}}
            - --custom-arg
            - {{{{ . | quote }}}}
            {{{{- end }}}}
            {{{{- range .Values.settings }}}}
            - --setting
            - {{{{ .name | quote }}}}
            {{{{- end }}}}
          ports:
            - name: http
              containerPort: {{{{ .Values.service.targetPort | int }}}}
              protocol: TCP
          env:
            - name: {PROFILE_ENV}
              value: {{{{ toJson .Values.profile | quote }}}}
            {{{{- range .Values.customArgs.names }}}}
            - name: {{{{ . }}}}
              valueFrom:
                secretKeyRef:
                  name: {{{{ $.Values.customArgs.secretName }}}}
                  key: {{{{ . }}}}
            {{{{- end }}}}
            {{{{- if .Values.settings }}}}
            {{{{- toYaml .Values.settings | nindent 12 }}}}
            {{{{- end }}}}
          startupProbe:
            exec:
              command: ["test", "-f", "{RUNTIME_HOME}/{SERVING_MARKER}"]
            periodSeconds: 2
            failureThreshold: 150
          readinessProbe:
            httpGet:
              path: /v2/health/ready
              port: http
            periodSeconds: 5
            failureThreshold: 2
          livenessProbe:
            httpGet:
              path: /v2/health/live
              port: http
            periodSeconds: 10
            failureThreshold: 3
          resources:
            {{{{- toYaml .Values.resources | nindent 12 }}}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: mlops-home
              mountPath: {RUNTIME_HOME}
            - name: tmp
              mountPath: /tmp
            {{{{- if .Values.config }}}}
            - name: config
              mountPath: {APP_FOLDER}/{{{{ .Values.deployment.configFile }}}}
              subPath: {{{{ .Values.deployment.configFile }}}}
              readOnly: true
            {{{{- end }}}}
      volumes:
        - name: mlops-home
          emptyDir: {{}}
        - name: tmp
          emptyDir: {{}}
        {{{{- if .Values.config }}}}
        - name: config
          configMap:
            name: {{{{ .Chart.Name }}}}-config
        {{{{- end }}}}
"""

SERVICE = f"""\
apiVersion: v1
kind: Service
metadata:
  name: {{{{ .Chart.Name }}}}
  labels:
{LABELS}
spec:
  type: {{{{ .Values.service.type }}}}
  selector:
    app.kubernetes.io/name: {{{{ .Chart.Name }}}}
  ports:
    - name: http
      port: {{{{ .Values.service.port | int }}}}
      targetPort: http
      protocol: TCP
"""

INGRESS = f"""\
{{{{- if .Values.ingress.enabled }}}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{{{ .Chart.Name }}}}
  labels:
{LABELS}
  {{{{- if .Values.ingress.annotations }}}}
  annotations:
    {{{{- toYaml .Values.ingress.annotations | nindent 4 }}}}
  {{{{- end }}}}
spec:
  {{{{- if .Values.ingress.className }}}}
  ingressClassName: {{{{ .Values.ingress.className }}}}
  {{{{- end }}}}
  {{{{- if .Values.ingress.tls }}}}
  tls:
    {{{{- toYaml .Values.ingress.tls | nindent 4 }}}}
  {{{{- end }}}}
  rules:
    {{{{- range .Values.ingress.hosts }}}}
    - host: {{{{ .host | quote }}}}
      http:
        paths:
          {{{{- range .paths }}}}
          - path: {{{{ .path }}}}
            pathType: {{{{ .pathType }}}}
            backend:
              service:
                name: {{{{ $.Chart.Name }}}}
                port:
                  name: http
          {{{{- end }}}}
    {{{{- end }}}}
{{{{- end }}}}
"""

HPA = f"""\
{{{{- if .Values.autoscaling.enabled }}}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{{{ .Chart.Name }}}}
  labels:
{LABELS}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{{{ .Chart.Name }}}}
  minReplicas: {{{{ .Values.autoscaling.minReplicas | int }}}}
  maxReplicas: {{{{ .Values.autoscaling.maxReplicas | int }}}}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{{{ .Values.autoscaling.targetCPUUtilizationPercentage | int }}}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{{{ .Values.autoscaling.scaleDownStabilizationSeconds | int }}}}
    scaleUp:
      stabilizationWindowSeconds: 0
{{{{- end }}}}
"""

CONFIGMAP = f"""\
{{{{- if .Values.config }}}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{{{ .Chart.Name }}}}-config
  labels:
{LABELS}
data:
  {{{{ .Values.deployment.configFile }}}}: {{{{ toJson .Values.config | quote }}}}
{{{{- end }}}}
"""

NOTES = """\
{{ .Chart.Name }} serves deployment {{ .Values.deployment.name }} on port {{ .Values.service.port | int }} of Service \
{{ .Chart.Name }}: POST /dlim/v1/inference/{{ .Values.deployment.name }}.
{{- if .Values.customArgs.names }}
Its custom args are read from Secret {{ .Values.customArgs.secretName }} (create it before the pods can start).
{{- end }}
"""

TEMPLATES: dict[str, str] = {
    "deployment.yaml": DEPLOYMENT,
    "service.yaml": SERVICE,
    "ingress.yaml": INGRESS,
    "hpa.yaml": HPA,
    "configmap.yaml": CONFIGMAP,
    "NOTES.txt": NOTES,
}
"""The chart's ``templates/`` files; all but NOTES.txt render to manifests."""
