"""The HTTP ingress: alert webhooks and Slack, turned into Temporal calls. Stateless."""
