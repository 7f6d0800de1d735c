"""image_updater: commits new image tags or digests into the GitOps config repository's kustomizations.

Modules: triggers (events), config (IMAGE_MAP and the repository), policy (which tag), gate (scan findings),
registry (ECR reads), pipeline (what a stage built), kustomize (the byte-exact edit), repo (the backend contract),
codecommit and gitremote (the backends), service (the orchestration). Nothing is imported here: dulwich, ruamel.yaml
and semver are image_updater's own requirements, loaded only where used.
"""
