"""What happens to a session after its create: callbacks, webhooks, results, the relay, jobs."""
