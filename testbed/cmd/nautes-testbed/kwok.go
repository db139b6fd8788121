package main

// The kwok binary has no built-in stages: started without any it exits with
// "no stages found", and with only some it leaves the other objects alone.
// The launcher gives it this configuration (--config), which plays the part of
// a kubelet that starts every container at once:
//
//   - nautes-node-ready: a managed Node whose Ready condition is not True gets
//     the usual kubelet conditions (Ready, no pressure), addresses, capacity and
//     phase Running. Node heartbeats are the node Lease, which kwok renews when
//     started with --node-lease-duration-seconds, so no periodic status stage
//     is needed; if the node lifecycle controller ever marks the Node Unknown
//     (e.g. after a long API server outage) this stage makes it Ready again.
//   - nautes-pod-running: a scheduled Pending Pod becomes Running and Ready with
//     every container running, init containers terminated (sidecars running),
//     a host IP and a pod IP.
//   - nautes-pod-succeeded: a Running Pod owned by a Job terminates with exit
//     code 0, so Jobs complete.
//   - nautes-pod-gone: a Pod being deleted is removed at once, as a kubelet
//     does after its containers stopped.
//   - nautes-pod-running-unready: a scheduled Pending Pod labelled
//     nautes.test/ready-after becomes Running but not Ready, and stays so
//     while the label is there (the two stages above and below leave such
//     Pods alone). A test plays the part of what the Pod waits for: it
//     removes the label once that exists (see tests/it/admission.rs), and
//     nautes-pod-ready-again makes the Pod Ready.
//   - nautes-pod-ready-again: a Running Pod whose Ready condition is not True
//     gets its conditions back, as a kubelet's status manager would report
//     them again. kwok sets them once, but they get lost: a vcluster syncer
//     copies Pod conditions both ways and can erase them (its virtual Pod
//     had none yet), and the node lifecycle controller sets Ready to False
//     on every Pod of a Node it saw not ready, which happens after an API
//     server outage (the Node's Lease was not renewed meanwhile); without
//     this stage those Pods would stay unready for good.
//
// The functions in the templates (Now, Quote, NodeConditions, NodeIP,
// NodeIPsWith, PodIPsWith) are kwok's template functions.
const kwokStages = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: nautes-node-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      conditions:
      {{ range NodeConditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
        lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      {{ if not .status.addresses }}
      addresses:
      {{ with NodeIP }}
      - type: InternalIP
        address: {{ . | Quote }}
      {{ end }}
      - type: Hostname
        address: {{ .metadata.name | Quote }}
      {{ end }}
      {{ if not .status.allocatable }}
      allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
      {{ end }}
      {{ if not .status.capacity }}
      capacity: {cpu: "32", memory: 256Gi, pods: "110"}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: nautes-pod-running
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["nautes.test/ready-after"]'
      operator: DoesNotExist
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: [Pending]
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
      conditions:
      {{ range (list "PodScheduled" "Initialized" "ContainersReady" "Ready") }}
      - type: {{ . }}
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      {{ range .spec.readinessGates }}
      - type: {{ .conditionType | Quote }}
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ with .spec.initContainers }}
      initContainerStatuses:
      {{ range . }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        restartCount: 0
        {{ if eq (or .restartPolicy "") "Always" }}
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
        {{ else }}
        started: false
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
        {{ end }}
      {{ end }}
      {{ end }}
      {{ with NodeIPsWith .spec.nodeName }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ with PodIPsWith .spec.nodeName (or .spec.hostNetwork false) (or .metadata.uid "") (or .metadata.name "") (or .metadata.namespace "") }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: nautes-pod-succeeded
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: [Running]
    - key: '.metadata.ownerReferences.[].kind'
      operator: In
      values: [Job]
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Succeeded
      conditions:
      {{ range (list "ContainersReady" "Ready") }}
      - type: {{ . }}
        status: "False"
        reason: PodCompleted
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        started: false
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: nautes-pod-gone
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: Exists
  next:
    delete: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: nautes-pod-ready-again
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["nautes.test/ready-after"]'
      operator: DoesNotExist
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: [Running]
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range (list "PodScheduled" "Initialized" "ContainersReady" "Ready") }}
      - type: {{ . }}
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      {{ range .spec.readinessGates }}
      - type: {{ .conditionType | Quote }}
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: nautes-pod-running-unready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["nautes.test/ready-after"]'
      operator: Exists
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: [Pending]
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
      conditions:
      {{ range (list "PodScheduled" "Initialized") }}
      - type: {{ . }}
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      {{ range (list "ContainersReady" "Ready") }}
      - type: {{ . }}
        status: "False"
        reason: GatedByTest
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ with NodeIPsWith .spec.nodeName }}
      hostIP: {{ index . 0 | Quote }}
      {{ end }}
      {{ with PodIPsWith .spec.nodeName (or .spec.hostNetwork false) (or .metadata.uid "") (or .metadata.name "") (or .metadata.namespace "") }}
      podIP: {{ index . 0 | Quote }}
      {{ end }}
`
