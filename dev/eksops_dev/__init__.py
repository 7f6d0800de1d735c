"""The local sandbox: template.yaml brought up on a moto server, events routed to handlers as in AWS.

Development-only: imported by the CLI, tests and benchmarks, never by a deployed handler.
"""
